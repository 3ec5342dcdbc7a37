"""The numpy pieces of Evolution Strategies (Salimans et al. 2017): the shared noise table that
perturbations are read from by index, centered-rank fitness shaping, the weighted sum of noise
that estimates the gradient, and running observation statistics for the filter."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any

import numpy as np


def create_shared_noise(size: int, seed: int | None) -> np.ndarray:
    """``size`` standard normal float32 values, made once from ``seed``: every perturbation is a
    slice of this table, so a worker names one by its start index instead of sending it."""
    return np.random.default_rng(seed).standard_normal(size, dtype=np.float32)


class SharedNoiseTable:
    """Read-only view of the noise table (in a runner, a zero-copy view of the object store)."""

    def __init__(self, noise: np.ndarray) -> None:
        self.noise = noise

    def get(self, index: int, dim: int) -> np.ndarray:
        """The perturbation ``eps`` of length ``dim`` that starts at ``index``."""
        return self.noise[index : index + dim]

    def sample_index(self, rng: np.random.Generator, dim: int) -> int:
        """A start index whose slice of length ``dim`` fits in the table."""
        return int(rng.integers(0, len(self.noise) - dim + 1))


def compute_centered_ranks(x: np.ndarray) -> np.ndarray:
    """Each value's rank among all of ``x``, scaled to [-0.5, 0.5]: the update then depends on
    the order of the returns only, not on their scale or outliers. Equal values share their
    average rank, so a mirrored pair with equal returns (both capped, say) adds nothing."""
    flat = x.ravel()
    order = flat.argsort(kind="stable")
    _, first, counts = np.unique(flat[order], return_index=True, return_counts=True)
    ranks = np.empty(flat.size, dtype=np.float64)
    ranks[order] = np.repeat(first + (counts - 1) / 2, counts)
    scaled = ranks / (flat.size - 1) - 0.5 if flat.size > 1 else np.zeros(flat.size)
    return scaled.astype(np.float32).reshape(x.shape)


def batched_weighted_sum(
    weights: np.ndarray, vectors: Iterable[np.ndarray], batch_size: int = 500
) -> np.ndarray:
    """``sum_i weights[i] * vectors[i]``, a few hundred vectors at a time, so that the noise
    slices of a large population are never all in memory at once."""
    total: np.ndarray | None = None
    vectors = iter(vectors)
    for start in range(0, len(weights), batch_size):
        chunk = np.stack(list(islice(vectors, batch_size)))
        part = weights[start : start + len(chunk)].astype(np.float32) @ chunk
        total = part if total is None else total + part
    if total is None:
        raise ValueError("batched_weighted_sum needs at least one vector")
    return total


class Adam:
    """Adam (Kingma and Ba 2015) on one flat parameter vector: ``step(grad)`` returns the change
    to add to the parameters, for the gradient of a loss to minimize."""

    def __init__(
        self,
        dim: int,
        stepsize: float,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
    ) -> None:
        self.stepsize, self.beta1, self.beta2, self.epsilon = stepsize, beta1, beta2, epsilon
        self.t = 0
        self.m: np.ndarray = np.zeros(dim)
        self.v: np.ndarray = np.zeros(dim)

    def step(self, grad: np.ndarray) -> np.ndarray:
        self.t += 1
        a = self.stepsize * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t)
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        step: np.ndarray = (-a * self.m / (np.sqrt(self.v) + self.epsilon)).astype(np.float32)
        return step

    def get_state(self) -> dict[str, Any]:
        return {"t": self.t, "m": self.m.copy(), "v": self.v.copy()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        self.m = np.array(state["m"], dtype=np.float64)
        self.v = np.array(state["v"], dtype=np.float64)
