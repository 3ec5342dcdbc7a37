"""Generalized Advantage Estimation (Schulman et al. 2016), and the flat train batches of
env-runner fragments, shared by the algorithms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]


def compute_gae(
    rewards: Array,
    values: Array,
    next_values: Array,
    dones: npt.NDArray[np.bool_],
    gamma: float,
    lambda_: float,
) -> tuple[Array, Array]:
    """Advantages and value targets along axis 0 (time) of ``[T]`` or ``[T, num_envs]`` arrays.

    ``next_values[t]`` is the value of the state after step t: 0 where the episode terminated,
    the value of the final observation where it was truncated. ``dones`` (terminated or
    truncated) cut the advantage trace, so one array may hold several episodes back to back."""
    deltas = rewards + gamma * next_values - values
    advantages = np.zeros_like(deltas, dtype=np.float32)
    running = np.zeros_like(deltas[0], dtype=np.float32)
    for t in range(len(deltas) - 1, -1, -1):
        running = deltas[t] + gamma * lambda_ * np.where(dones[t], 0.0, running)
        advantages[t] = running
    return advantages, (advantages + values).astype(np.float32)


def flatten(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A ``[T, num_envs, ...]`` fragment array as ``[num_envs * T, ...]``, each env's steps
    together."""
    return np.swapaxes(x, 0, 1).reshape(-1, *x.shape[2:])


def advantages_batch(
    fragments: Sequence[dict[str, Any]], keys: Sequence[str], gamma: float, lambda_: float
) -> dict[str, npt.NDArray[Any]]:
    """One flat batch of the fragments' ``keys`` with each step's ``advantages`` and value
    ``targets`` (GAE over each ``[T, num_envs]`` fragment)."""
    parts: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in (*keys, "advantages", "targets")}
    for f in fragments:
        dones = f["terminateds"] | f["truncateds"]
        adv, targets = compute_gae(
            f["rewards"], f["vf_preds"], f["next_vf_preds"], dones, gamma, lambda_
        )
        for key in keys:
            parts[key].append(flatten(f[key]))
        parts["advantages"].append(flatten(adv))
        parts["targets"].append(flatten(targets))
    return {k: np.concatenate(v) for k, v in parts.items()}
