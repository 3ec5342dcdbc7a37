"""The env runner every algorithm samples with: a few Gymnasium environments stepped in lock
step with one batched forward pass of the policy. As an Ember actor it gets the latest weights
as an ``ObjectRef`` (put once per iteration, shared by all runners) and returns numpy arrays.

A runner's environments and action sampling are seeded from the config's seed, its index
and the env's index, so the same config and seed sample the same steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ember.rllib.env.utils import make_env
from ember.rllib.utils.filter import MeanStdFilter, RunningStat

WeightsT = dict[str, np.ndarray]


class EnvRunner:
    """Samples ``rollout_fragment_length`` steps from each of ``num_envs_per_env_runner``
    environments per ``sample()`` call; completed episodes are counted in its metrics.

    ``worker_index`` 0 is the algorithm's own (local) runner; 1.. are the remote ones."""

    def __init__(
        self,
        config: dict[str, Any],
        creator: Callable[..., Any],
        worker_index: int = 0,
        num_envs: int | None = None,
    ) -> None:
        import gymnasium as gym
        import torch

        torch.set_num_threads(1)  # tiny batches: one thread is fastest, and leaves cores free
        self._torch = torch
        self.config = config
        self.worker_index = worker_index
        n = int(num_envs or config["num_envs_per_env_runner"])
        self.envs = [make_env(creator, config["env_config"]) for _ in range(n)]
        space = self.envs[0]
        self.module = self.build_module(space.observation_space, space.action_space, config)
        self.module.eval()
        seed = config["seed"]
        base = None if seed is None else int(seed) + 1000 * worker_index
        self._generator = torch.Generator()
        if base is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(base)
        self._box = isinstance(space.action_space, gym.spaces.Box)
        self._obs = np.stack(
            [
                env.reset(seed=None if base is None else base + j)[0]
                for j, env in enumerate(self.envs)
            ]
        ).astype(np.float32)
        for j, env in enumerate(self.envs):
            env.action_space.seed(None if base is None else base + j)
        self.filter: MeanStdFilter | None = None
        if config["observation_filter"] == "MeanStdFilter":
            self.filter = MeanStdFilter(self._obs.shape[1:])
        self._episode_return = np.zeros(n)
        self._episode_len = np.zeros(n, dtype=np.int64)

    def build_module(
        self, observation_space: Any, action_space: Any, config: dict[str, Any]
    ) -> Any:
        """The module this runner acts with; an algorithm's runner returns its own (it must
        have the learner's parameters and ``forward_inference``)."""
        from ember.rllib.core.rl_module.torch_rl_module import TorchRLModule

        return TorchRLModule(observation_space, action_space, config["model"])

    # ------------------------------------------------------------------ weights

    def set_weights(self, weights: WeightsT) -> None:
        from ember.rllib.core.rl_module.torch_rl_module import set_weights

        set_weights(self.module, weights)

    def get_weights(self) -> WeightsT:
        from ember.rllib.core.rl_module.torch_rl_module import get_weights

        return get_weights(self.module)

    # ------------------------------------------------------------------ sampling

    def _filtered(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        return obs if self.filter is None else self.filter(obs, update)

    def _sync(self, weights: WeightsT | None, filter_state: dict[str, Any] | None) -> None:
        if weights is not None:
            self.set_weights(weights)
        if self.filter is not None and filter_state is not None:
            self.filter.sync(RunningStat.from_state(filter_state))

    def sample(
        self, weights: WeightsT | None, num_steps: int, filter_state: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """``num_steps`` steps of every env with these weights (and observation statistics):
        ``[T, num_envs]`` arrays, the returns and lengths of the episodes that ended meanwhile,
        and the observation statistics of this sample (``filter_delta``)."""
        self._sync(weights, filter_state)
        torch = self._torch
        n = len(self.envs)
        obs_buf = np.zeros((num_steps, *self._obs.shape), dtype=np.float32)
        act_buf: list[np.ndarray] = []
        logp_buf = np.zeros((num_steps, n), dtype=np.float32)
        vf_buf = np.zeros((num_steps, n), dtype=np.float32)
        rew_buf = np.zeros((num_steps, n), dtype=np.float32)
        term_buf = np.zeros((num_steps, n), dtype=bool)
        trunc_buf = np.zeros((num_steps, n), dtype=bool)
        next_vf = np.zeros((num_steps, n), dtype=np.float32)
        returns: list[float] = []
        lengths: list[int] = []
        for t in range(num_steps):
            obs_buf[t] = self._filtered(self._obs)
            actions, logp, values = self.module.forward_exploration(
                torch.from_numpy(obs_buf[t]), self._generator
            )
            act = actions.numpy()
            act_buf.append(act)
            logp_buf[t], vf_buf[t] = logp.numpy(), values.numpy()
            rew_buf[t], term_buf[t], trunc_buf[t], next_obs = self.step_envs(act, returns, lengths)
            cut = trunc_buf[t] & ~term_buf[t]  # bootstrap from where an episode was cut off
            if cut.any():
                final = torch.from_numpy(self._filtered(next_obs[cut], update=False))
                next_vf[t, cut] = self.module.value(final).numpy()
        last_obs = torch.from_numpy(self._filtered(self._obs, update=False))
        last = self.module.value(last_obs).numpy()
        following = np.concatenate([vf_buf[1:], last[None]], axis=0)
        done = term_buf | trunc_buf
        next_vf = np.where(done, next_vf, following).astype(np.float32)
        return {
            "obs": obs_buf,
            "actions": np.stack(act_buf),
            "action_logp": logp_buf,
            "vf_preds": vf_buf,
            "rewards": rew_buf,
            "terminateds": term_buf,
            "truncateds": trunc_buf,
            "next_vf_preds": next_vf,
            "episode_returns": returns,
            "episode_lens": lengths,
            "filter_delta": None if self.filter is None else self.filter.buffer,
        }

    def step_envs(
        self, actions: np.ndarray, returns: list[float], lengths: list[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step every env with its action and reset the ones whose episode ended (adding its
        return and length to ``returns`` and ``lengths``): the rewards, terminateds,
        truncateds and next observations, the final one where an episode ended (the
        runner's current observations are the reset ones there)."""
        n = len(self.envs)
        rewards = np.zeros(n, dtype=np.float32)
        terminateds = np.zeros(n, dtype=bool)
        truncateds = np.zeros(n, dtype=bool)
        next_obs = np.empty_like(self._obs)
        for j, env in enumerate(self.envs):
            obs, reward, terminated, truncated, _ = env.step(self._env_action(env, actions[j]))
            rewards[j], terminateds[j], truncateds[j] = reward, terminated, truncated
            next_obs[j] = obs
            self._episode_return[j] += reward
            self._episode_len[j] += 1
            if terminated or truncated:
                returns.append(float(self._episode_return[j]))
                lengths.append(int(self._episode_len[j]))
                self._episode_return[j], self._episode_len[j] = 0.0, 0
                obs, _ = env.reset()
            self._obs[j] = obs
        return rewards, terminateds, truncateds, next_obs

    def sample_episodes(
        self,
        weights: WeightsT | None,
        num_episodes: int,
        explore: bool = False,
        filter_state: dict[str, Any] | None = None,
    ) -> dict[str, list[Any]]:
        """Run ``num_episodes`` whole episodes (greedy unless ``explore``), each env from a
        fresh reset; for evaluation (the observation statistics stay as given)."""
        self._sync(weights, filter_state)
        torch = self._torch
        returns: list[float] = []
        lengths: list[int] = []
        env = self.envs[0]
        for _ in range(num_episodes):
            obs, _ = env.reset()
            total, length, done = 0.0, 0, False
            while not done:
                raw = np.asarray(obs, dtype=np.float32)[None]
                batch = torch.from_numpy(self._filtered(raw, update=False))
                if explore:
                    action = self.module.forward_exploration(batch, self._generator)[0]
                else:
                    action = self.module.forward_inference(batch)
                obs, reward, terminated, truncated, _ = env.step(
                    self._env_action(env, action.numpy()[0])
                )
                total += float(reward)
                length += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
        return {"episode_returns": returns, "episode_lens": lengths}

    def _env_action(self, env: Any, action: np.ndarray) -> Any:
        if self._box:
            return np.clip(action, env.action_space.low, env.action_space.high)
        return int(action)

    def ping(self) -> bool:
        return True

    def stop(self) -> None:
        for env in self.envs:
            env.close()
