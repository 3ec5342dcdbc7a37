"""The ES worker: given the current weights theta, it picks perturbations eps by their index in
the shared noise table and plays F(theta + sigma*eps) and F(theta - sigma*eps), one episode
each from the same start. It sends back only the indices, returns and lengths (and the
observation statistics for the filter), never a parameter vector."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ember.rllib.algorithms.es.utils import SharedNoiseTable
from ember.rllib.env.utils import make_env
from ember.rllib.utils.filter import RunningStat


class ESEnvRunner:
    """One environment and a copy of the policy. As an Ember actor it gets the noise table
    once, at construction, as a zero-copy view of the object store.

    Its perturbations, episode starts and evaluation draws come from a generator seeded by the
    config's seed and ``worker_index``."""

    def __init__(
        self,
        config: dict[str, Any],
        creator: Callable[..., Any],
        noise: np.ndarray,
        worker_index: int = 0,
    ) -> None:
        import torch

        from ember.rllib.algorithms.es.es_torch_policy import ESTorchPolicy

        torch.set_num_threads(1)  # one observation at a time: one thread is fastest
        self.env = make_env(creator, config["env_config"])
        self.policy = ESTorchPolicy(self.env.observation_space, self.env.action_space, config)
        self.noise = SharedNoiseTable(noise)
        seed = config["seed"]
        self.rng = np.random.default_rng(None if seed is None else [seed, worker_index])
        self.noise_stdev = float(config["noise_stdev"])
        self.action_noise_std = float(config["action_noise_std"])
        self.eval_prob = float(config["eval_prob"])

    def do_rollouts(
        self, params: dict[str, np.ndarray], min_episodes: int, min_steps: int
    ) -> dict[str, Any]:
        """Mirrored pairs until at least ``min_episodes`` perturbed episodes and ``min_steps``
        of their steps; with probability ``eval_prob`` an episode of theta itself instead, for
        the reported return."""
        self.policy.set_params(params)
        theta, dim = params["weights"], self.policy.num_params
        stat = RunningStat(tuple(self.env.observation_space.shape or ()))
        indices: list[int] = []
        returns: list[tuple[float, float]] = []
        lengths: list[tuple[int, int]] = []
        eval_returns: list[float] = []
        eval_lengths: list[int] = []
        steps = 0
        while 2 * len(indices) < min_episodes or steps < min_steps:
            start = int(self.rng.integers(2**31))
            if self.rng.random() < self.eval_prob:
                self.policy.set_flat(theta)
                ret, length = self.policy.rollout(self.env, start)
                eval_returns.append(ret)
                eval_lengths.append(length)
                continue
            index = self.noise.sample_index(self.rng, dim)
            eps = self.noise.get(index, dim)
            pair = []
            for sign in (1.0, -1.0):
                self.policy.set_flat(theta + sign * self.noise_stdev * eps)
                pair.append(
                    self.policy.rollout(self.env, start, self.action_noise_std, self.rng, stat)
                )
            (ret_pos, len_pos), (ret_neg, len_neg) = pair
            indices.append(index)
            returns.append((ret_pos, ret_neg))
            lengths.append((len_pos, len_neg))
            steps += len_pos + len_neg
        return {
            "noise_indices": np.array(indices, dtype=np.int64),
            "noisy_returns": np.array(returns, dtype=np.float64).reshape(-1, 2),
            "noisy_lengths": np.array(lengths, dtype=np.int64).reshape(-1, 2),
            "eval_returns": eval_returns,
            "eval_lengths": eval_lengths,
            "obs_stat": stat,
        }

    def ping(self) -> bool:
        return True

    def stop(self) -> None:
        self.env.close()
