"""DQN's env runner: ``EnvRunner``'s environments and seeding, acting epsilon-greedily with
the Q-module and returning transitions (with each step's next observation, the final one
where an episode ended) for the replay buffer."""

from __future__ import annotations

from typing import Any

import numpy as np

from ember.rllib.env.env_runner import EnvRunner, WeightsT


class DQNEnvRunner(EnvRunner):
    def build_module(
        self, observation_space: Any, action_space: Any, config: dict[str, Any]
    ) -> Any:
        from ember.rllib.algorithms.dqn.torch.default_dqn_torch_rl_module import (
            DefaultDQNTorchRLModule,
        )

        return DefaultDQNTorchRLModule(
            observation_space, action_space, config["model"], bool(config["dueling"])
        )

    def sample(
        self,
        weights: WeightsT | None,
        num_steps: int,
        filter_state: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``num_steps`` epsilon-greedy steps of every env (the weights carry epsilon):
        ``[T, num_envs]`` arrays of
        ``obs``, ``actions``, ``rewards``, ``next_obs``, ``terminateds``, ``truncateds``, and
        the returns and lengths of the episodes that ended meanwhile."""
        self._sync(weights, filter_state)
        torch = self._torch
        n = len(self.envs)
        obs_buf = np.zeros((num_steps, *self._obs.shape), dtype=np.float32)
        next_buf = np.zeros_like(obs_buf)
        act_buf = np.zeros((num_steps, n), dtype=np.int64)
        rew_buf = np.zeros((num_steps, n), dtype=np.float32)
        term_buf = np.zeros((num_steps, n), dtype=bool)
        trunc_buf = np.zeros((num_steps, n), dtype=bool)
        returns: list[float] = []
        lengths: list[int] = []
        for t in range(num_steps):
            obs_buf[t] = self._obs
            actions = self.module.forward_exploration(torch.from_numpy(self._obs), self._generator)
            act_buf[t] = actions[0].numpy()
            rew_buf[t], term_buf[t], trunc_buf[t], next_buf[t] = self.step_envs(
                act_buf[t], returns, lengths
            )
        return {
            "obs": obs_buf,
            "actions": act_buf,
            "rewards": rew_buf,
            "next_obs": next_buf,
            "terminateds": term_buf,
            "truncateds": trunc_buf,
            "episode_returns": returns,
            "episode_lens": lengths,
            "filter_delta": None,  # DQN takes no observation filter (validate() says so)
        }
