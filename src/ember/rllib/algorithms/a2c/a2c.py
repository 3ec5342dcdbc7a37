"""Advantage Actor-Critic, A3C's synchronous sibling: every env runner samples a fragment with
the same weights (put once), and the learner takes one optimizer step on A3C's loss over all
of them together; repeated until an iteration's steps reach ``train_batch_size``. No gradient
is stale, and with any number of runners the same config and seed repeat the same run."""

from __future__ import annotations

from typing import Any

from ember.rllib.algorithms.a3c.a3c import A3C, A3CConfig
from ember.rllib.algorithms.algorithm import Algorithm


class A2CConfig(A3CConfig):
    """A3C's settings (``A3CConfig.training``), for the synchronous algorithm."""

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        super().__init__(algo_class=algo_class or A2C)


class A2C(A3C):
    @classmethod
    def get_default_config(cls) -> A2CConfig:
        return A2CConfig(algo_class=cls)

    def training_step(self) -> dict[str, Any]:
        return self.updates(self._step_on_all)[1]

    def _step_on_all(self) -> tuple[dict[str, float], int, int]:
        """One optimizer step on a fragment of every runner, all sampled with one weights."""
        batches = self.sample()
        stats = self.learner.update(batches, self._env_steps_lifetime)
        steps = sum(b["rewards"].size for b in batches)
        return stats, steps, sum(len(b["episode_returns"]) for b in batches)
