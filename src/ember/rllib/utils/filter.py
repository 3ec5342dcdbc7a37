"""Observation normalization (Ray's ``observation_filter="MeanStdFilter"``): a running mean
and variance of the observations, merged across env runners once per iteration.

Each runner starts an iteration from the algorithm's merged statistics, keeps updating them
while it samples, and returns what it saw in that iteration as a ``RunningStat``; the
algorithm merges those (Chan et al.'s parallel variance) into its own and sends them back
with the next weights."""

from __future__ import annotations

from typing import Any

import numpy as np

FILTERS = ("NoFilter", "MeanStdFilter")
_CLIP = 10.0  # normalized observations are clipped to [-10, 10], as Ray does


class RunningStat:
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.count = 0
        self.mean = np.zeros(shape)
        self.m2 = np.zeros(shape)  # sum of squared deviations from the mean

    def push(self, batch: np.ndarray) -> None:
        """Add a batch of observations ``[n, *shape]``."""
        other = RunningStat(self.mean.shape)
        other.count = len(batch)
        other.mean = batch.mean(axis=0)
        other.m2 = ((batch - other.mean) ** 2).sum(axis=0)
        self.merge(other)

    def merge(self, other: RunningStat) -> None:
        total = self.count + other.count
        if other.count == 0:
            return
        delta = other.mean - self.mean
        self.mean = self.mean + delta * other.count / total
        self.m2 = self.m2 + other.m2 + delta**2 * self.count * other.count / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        var = self.m2 / (self.count - 1) if self.count > 1 else np.ones_like(self.m2)
        return np.sqrt(var)

    def copy(self) -> RunningStat:
        new = RunningStat(self.mean.shape)
        new.count, new.mean, new.m2 = self.count, self.mean.copy(), self.m2.copy()
        return new

    def get_state(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean.copy(), "m2": self.m2.copy()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RunningStat:
        new = cls(np.shape(state["mean"]))
        new.count, new.mean, new.m2 = state["count"], np.array(state["mean"]), np.array(state["m2"])
        return new


class MeanStdFilter:
    """Normalizes observations by the running statistics, updating them on the way unless
    ``update=False``; ``buffer`` holds what was pushed since the last ``sync``."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.stat = RunningStat(shape)
        self.buffer = RunningStat(shape)

    def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        if update:
            self.stat.push(obs)
            self.buffer.push(obs)
        normalized = (obs - self.stat.mean) / (self.stat.std + 1e-8)
        return np.clip(normalized, -_CLIP, _CLIP).astype(np.float32)

    def sync(self, stat: RunningStat) -> None:
        """Start over from the merged statistics, with an empty buffer."""
        self.stat = stat.copy()
        self.buffer = RunningStat(self.stat.mean.shape)
