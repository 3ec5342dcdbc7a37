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
        epsilon: float = 0.0,
    ) -> dict[str, Any]:
        """``num_steps`` epsilon-greedy steps of every env: ``[T, num_envs]`` arrays of
        ``obs``, ``actions``, ``rewards``, ``next_obs``, ``terminateds``, ``truncateds``, and
        the returns and lengths of the episodes that ended meanwhile."""
        self._sync(weights, filter_state)
        self.module.epsilon = epsilon
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
            for j, env in enumerate(self.envs):
                obs, reward, terminated, truncated, _ = env.step(int(act_buf[t, j]))
                rew_buf[t, j], term_buf[t, j], trunc_buf[t, j] = reward, terminated, truncated
                next_buf[t, j] = obs
                self._episode_return[j] += reward
                self._episode_len[j] += 1
                if terminated or truncated:
                    returns.append(float(self._episode_return[j]))
                    lengths.append(int(self._episode_len[j]))
                    self._episode_return[j], self._episode_len[j] = 0.0, 0
                    obs, _ = env.reset()
                self._obs[j] = obs
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
