"""Advantage Actor-Critic, A3C's synchronous sibling: every env runner samples a fragment with
the same weights (put once), and the learner takes one optimizer step on A3C's loss over all
of them together; repeated until an iteration's steps reach ``train_batch_size``. No gradient
is stale, and with any number of runners the same config and seed repeat the same run."""

from __future__ import annotations

from typing import Any

from ember.rllib.algorithms.a3c.a3c import A3C, A3CConfig
from ember.rllib.algorithms.algorithm import Algorithm
from ember.rllib.utils import metrics as M


class A2CConfig(A3CConfig):
    """A3C's settings (``A3CConfig.training``), for the synchronous algorithm."""

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        super().__init__(algo_class=algo_class or A2C)


class A2C(A3C):
    @classmethod
    def get_default_config(cls) -> A2CConfig:
        return A2CConfig(algo_class=cls)

    def training_step(self) -> dict[str, Any]:
        steps, episodes = 0, 0
        stats: list[dict[str, float]] = []
        while steps < self.algo_config.train_batch_size:
            batches = self.sample()
            stats.append(self.learner.update(batches, self._env_steps_lifetime))
            steps += sum(b["rewards"].size for b in batches)
            episodes += sum(len(b["episode_returns"]) for b in batches)
        learner = {k: sum(s[k] for s in stats) / len(stats) for k in stats[0]}
        learner["num_gradients_applied"] = len(stats)
        return {
            **self.env_runner_counts(steps, episodes),
            M.LEARNER_RESULTS: {M.DEFAULT_MODULE_ID: learner},
        }
