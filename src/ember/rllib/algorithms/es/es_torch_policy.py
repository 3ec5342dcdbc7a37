"""The policy Evolution Strategies optimizes: the shared model builder's ``TorchRLModule``
acting deterministically (the most likely action, or the Gaussian's mean), the parameters its
actions depend on seen as one flat float32 vector, and the observation filter.

ES never differentiates the policy: it moves the flat vector, so the value head and a Gaussian's
log-std (which greedy actions do not use) are left out of it."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ember.rllib.core.rl_module.torch_rl_module import TorchRLModule
from ember.rllib.utils.filter import RunningStat

FILTERS = ("NoFilter", "MeanStdFilter")


class ESTorchPolicy:
    """``get_flat``/``set_flat`` the action parameters; ``rollout`` one episode.

    With ``observation_filter="MeanStdFilter"`` observations are normalized by the mean and
    std in ``obs_mean``/``obs_std``, which stay fixed while an iteration's episodes run; the
    driver adds what the runners saw to ``obs_stat`` and ``refresh_filter`` moves the mean and
    std to it."""

    def __init__(
        self,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
        config: dict[str, Any],
    ) -> None:
        self.module = TorchRLModule(observation_space, action_space, config["model"])
        self.module.eval()
        self.action_space = action_space
        self._box = isinstance(action_space, gym.spaces.Box)
        self.params = _action_parameters(self.module, observation_space, self._box)
        self.num_params = sum(p.numel() for p in self.params)
        self._filter = config["observation_filter"] == "MeanStdFilter"
        shape = tuple(observation_space.shape or ())
        self.obs_stat = RunningStat(shape)
        self.obs_mean = np.zeros(shape, dtype=np.float32)
        self.obs_std = np.ones(shape, dtype=np.float32)

    # ------------------------------------------------------------------ parameters

    def get_flat(self) -> np.ndarray:
        flat = torch.nn.utils.parameters_to_vector(self.params).detach()
        return np.array(flat.numpy(), dtype=np.float32)

    def set_flat(self, theta: np.ndarray) -> None:
        torch.nn.utils.vector_to_parameters(torch.tensor(theta, dtype=torch.float32), self.params)

    def get_params(self) -> dict[str, np.ndarray]:
        """What a runner acts with: the flat weights and the filter's mean and std."""
        return {"weights": self.get_flat(), "obs_mean": self.obs_mean, "obs_std": self.obs_std}

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        self.set_flat(params["weights"])
        self.obs_mean, self.obs_std = params["obs_mean"], params["obs_std"]

    def refresh_filter(self) -> None:
        if self._filter:
            self.obs_mean = self.obs_stat.mean.astype(np.float32)
            # At least 0.01, so that a constant feature does not blow up when divided by it.
            self.obs_std = np.maximum(self.obs_stat.std, 0.01).astype(np.float32)

    def get_state(self) -> dict[str, Any]:
        return {"weights": self.get_flat(), "obs_stat": self.obs_stat.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.set_flat(state["weights"])
        self.obs_stat = RunningStat.from_state(state["obs_stat"])
        self.refresh_filter()

    # ------------------------------------------------------------------ acting

    def compute_action(
        self,
        observation: Any,
        action_noise_std: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> Any:
        """The deterministic action; a Box action gets Gaussian noise of ``action_noise_std``
        (drawn from ``rng``) before it is clipped to the space."""
        obs = np.array(observation, dtype=np.float32)
        if self._filter:
            obs = (obs - self.obs_mean) / self.obs_std
        action = self.module.forward_inference(torch.from_numpy(obs[None]))[0].numpy()
        if not self._box:
            return int(action)
        if action_noise_std > 0:
            generator = rng if rng is not None else np.random.default_rng()
            action = action + action_noise_std * generator.standard_normal(action.shape)
        space = self.action_space
        return np.clip(action, space.low, space.high).astype(space.dtype)  # type: ignore[attr-defined]

    def rollout(
        self,
        env: gym.Env[Any, Any],
        seed: int | None,
        action_noise_std: float = 0.0,
        rng: np.random.Generator | None = None,
        stat: RunningStat | None = None,
    ) -> tuple[float, int]:
        """One episode from ``env.reset(seed=seed)``: its return and length; its observations
        are added to ``stat`` if one is given."""
        obs, _ = env.reset(seed=seed)
        seen = []
        total, length, done = 0.0, 0, False
        while not done:
            if stat is not None:
                seen.append(obs)
            action = self.compute_action(obs, action_noise_std, rng)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            length += 1
            done = terminated or truncated
        if stat is not None:
            stat.push(np.asarray(seen, dtype=np.float64))
        return total, length


def _action_parameters(
    module: TorchRLModule, observation_space: gym.Space[Any], box: bool
) -> list[torch.nn.Parameter]:
    """The parameters the deterministic action depends on: those a probe batch's action outputs
    have a nonzero gradient for (works for a user's own network too)."""
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn((8, *(observation_space.shape or ())), generator=generator)
    params = [p for p in module.parameters() if p.requires_grad]
    with torch.enable_grad():
        out = module.net(probe)[0]
        if box:
            out = out.chunk(2, dim=-1)[0]
        mix = torch.randn(out.shape, generator=generator)
        grads = torch.autograd.grad((out * mix).sum(), params, allow_unused=True)
    chosen = [p for p, g in zip(params, grads, strict=True) if g is not None and bool(g.any())]
    if not chosen:
        raise ValueError("the model's action outputs depend on none of its parameters")
    return chosen
