"""A3C's worker: an ``EnvRunner`` that also computes the actor-critic gradients of the fragment
it samples, so that only gradients (and the episodes' metrics) go back to the learner."""

from __future__ import annotations

from typing import Any

import numpy as np

from ember.rllib.env.env_runner import EnvRunner, WeightsT


class A3CEnvRunner(EnvRunner):
    def compute_gradients(
        self,
        weights: WeightsT,
        version: int,
        num_steps: int,
        filter_state: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Sample ``num_steps`` per env with these weights (the learner's ``version``-th),
        then the gradients of the A3C loss on that fragment, by parameter name."""
        from ember.rllib.algorithms.a3c.torch.a3c_torch_learner import module_loss, postprocess

        torch = self._torch
        fragment = self.sample(weights, num_steps, filter_state)
        batch = {k: torch.as_tensor(v) for k, v in postprocess([fragment], self.config).items()}
        self.module.zero_grad()
        loss, stats = module_loss(self.module, batch, self.config)
        loss.backward()  # type: ignore[no-untyped-call]
        gradients: dict[str, np.ndarray] = {
            name: p.grad.numpy().copy()
            for name, p in self.module.named_parameters()
            if p.grad is not None
        }
        return {
            "gradients": gradients,
            "version": version,
            "stats": stats,
            "num_env_steps": int(fragment["rewards"].size),
            "episode_returns": fragment["episode_returns"],
            "episode_lens": fragment["episode_lens"],
            "filter_delta": fragment["filter_delta"],
        }
