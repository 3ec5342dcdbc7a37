"""Experience replay for off-policy algorithms: env-runner fragments become (n-step)
transitions, kept in a fixed-size ring of numpy arrays and sampled uniformly with a seeded
generator, so the same seed replays the same minibatches."""

from __future__ import annotations

from typing import Any

import numpy as np

from ember.rllib.utils.postprocessing import flatten

# Each transition: the n-step return from ``obs`` after ``actions``, the observation it
# bootstraps from, whether the episode terminated before it, and gamma**k for its k steps.
FIELDS = ("obs", "actions", "rewards", "next_obs", "terminateds", "discounts")


def n_step_transitions(batch: dict[str, np.ndarray], n_step: int, gamma: float) -> dict[str, Any]:
    """Flat transitions from a fragment of ``[T, num_envs]`` arrays (``obs``, ``actions``,
    ``rewards``, ``next_obs``, ``terminateds``, ``truncateds``).

    A transition sums at most ``n_step`` discounted rewards and stops at its episode's end:
    after a termination it does not bootstrap, after a truncation it bootstraps from the final
    observation. The fragment's last steps see fewer than ``n_step`` steps ahead and bootstrap
    from where the fragment ends (``discounts`` says how far that is)."""
    rewards, terms = batch["rewards"], batch["terminateds"]
    dones = terms | batch["truncateds"]
    steps, envs = rewards.shape
    ret = np.zeros((steps, envs), dtype=np.float32)
    discount = np.ones((steps, envs), dtype=np.float32)
    end = np.zeros((steps, envs), dtype=np.int64)
    for j in range(envs):
        for t in range(steps):
            total, scale, s = 0.0, 1.0, t
            for s in range(t, min(t + n_step, steps)):
                total += scale * float(rewards[s, j])
                scale *= gamma
                if dones[s, j]:
                    break
            ret[t, j], discount[t, j], end[t, j] = total, scale, s
    cols = np.arange(envs)[None, :]
    return {
        "obs": flatten(batch["obs"]),
        "actions": flatten(batch["actions"]),
        "rewards": flatten(ret),
        "next_obs": flatten(batch["next_obs"][end, cols]),
        "terminateds": flatten(terms[end, cols]),
        "discounts": flatten(discount),
    }


class ReplayBuffer:
    """A uniform replay buffer of ``capacity`` transitions; the oldest are overwritten."""

    def __init__(self, capacity: int, seed: int | None = None) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"replay buffer capacity must be an int >= 1, not {capacity!r}")
        self.capacity = capacity
        self._rng = np.random.default_rng(seed)
        self._storage: dict[str, np.ndarray] = {}
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, transitions: dict[str, np.ndarray]) -> None:
        """Append transitions (flat arrays, one row each), wrapping around at capacity."""
        count = len(transitions["rewards"])
        if not self._storage:
            self._storage = {
                k: np.zeros((self.capacity, *np.shape(v)[1:]), dtype=np.asarray(v).dtype)
                for k, v in transitions.items()
            }
        if count > self.capacity:  # only the newest fit
            transitions = {k: v[-self.capacity :] for k, v in transitions.items()}
            count = self.capacity
        rows = (self._next + np.arange(count)) % self.capacity
        for k, v in transitions.items():
            self._storage[k][rows] = v
        self._next = int((self._next + count) % self.capacity)
        self._size = min(self.capacity, self._size + count)

    def sample(self, num_items: int) -> dict[str, np.ndarray]:
        """``num_items`` transitions drawn uniformly with replacement."""
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = self._rng.integers(0, self._size, num_items)
        return {k: v[idx] for k, v in self._storage.items()}
