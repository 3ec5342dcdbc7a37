"""Generalized Advantage Estimation (Schulman et al. 2016), shared by the on-policy algorithms."""

from __future__ import annotations

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
