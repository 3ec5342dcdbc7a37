"""Asynchronous Advantage Actor-Critic (Mnih et al. 2016), as Ray RLlib's A3C ran it:

    every runner, in parallel:   sample a fragment with the weights it was sent
                                 g = gradient of the actor-critic loss on that fragment
                                 send back g
    the learner, as each g arrives: apply g (clipped, Adam), put the new weights once
                                 and send them to that runner with its next call

Each runner always has one call in flight, so sampling and learning overlap: a gradient may
come from weights a few updates old (``weights_staleness``: the mean lag, in updates). An
iteration ends once the gradients it applied cover ``train_batch_size`` env steps (Ray used
a time slice, ``min_time_s_per_iteration``; steps keep iterations comparable and seeded runs
repeatable). With ``num_env_runners=0`` the algorithm's own runner computes each gradient in
turn, synchronously.

The defaults differ from Ray's (lr 1e-4, one env per runner, fragment 10, entropy 0.01,
grad_clip 40): these, closer to Stable-Baselines3's A2C with Adam, learn CartPole reliably; a
fragment of 50 (400 steps a gradient) kept the greedy return at 500 where 20 let it collapse
on some seeds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ember
from ember.rllib.algorithms.algorithm import Algorithm
from ember.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided, unit_interval
from ember.rllib.utils import metrics as M


class A3CConfig(AlgorithmConfig):
    """``A3CConfig().environment("CartPole-v1").env_runners(num_env_runners=2,
    rollout_fragment_length=50).training(lr=1e-3, entropy_coeff=0.0).build_algo()``.

    ``train_batch_size`` is the number of env steps an iteration's gradients cover; each
    gradient covers ``num_envs_per_env_runner`` x ``rollout_fragment_length`` of them."""

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        super().__init__(algo_class=algo_class or A3C)
        self.num_env_runners = 2
        self.num_envs_per_env_runner = 8
        self.rollout_fragment_length = 50
        self.lr = 0.001
        self.train_batch_size = 2000
        self.grad_clip = 0.5
        self.lambda_ = 1.0
        self.use_gae = True
        self.vf_loss_coeff = 0.5
        self.entropy_coeff = 0.0

    def training(
        self,
        *,
        gamma: float = NotProvided,
        lr: float | list[list[float]] = NotProvided,
        train_batch_size: int = NotProvided,
        train_batch_size_per_learner: int = NotProvided,
        grad_clip: float | None = NotProvided,
        model: dict[str, Any] = NotProvided,
        lambda_: float = NotProvided,
        use_gae: bool = NotProvided,
        vf_loss_coeff: float = NotProvided,
        entropy_coeff: float = NotProvided,
    ) -> A3CConfig:
        """The loss: ``-logp * advantage + vf_loss_coeff * (value - target)^2
        - entropy_coeff * entropy`` (batch means), advantages by GAE with ``lambda_``
        (``use_gae=False``: discounted returns minus the value)."""
        self._set_training(locals())
        return self

    def validate(self) -> None:
        super().validate()
        unit_interval(self, "lambda_")
        for name in ("vf_loss_coeff", "entropy_coeff"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, not {value!r}")
        if not isinstance(self.use_gae, bool):
            raise ValueError(f"use_gae must be True or False, not {self.use_gae!r}")


class A3C(Algorithm):
    algo_config: A3CConfig

    @classmethod
    def get_default_config(cls) -> A3CConfig:
        return A3CConfig(algo_class=cls)

    def env_runner_class(self) -> type:
        from ember.rllib.algorithms.a3c.a3c_env_runner import A3CEnvRunner

        return A3CEnvRunner

    def setup(self, config: dict[str, Any]) -> None:
        self._version = 0  # optimizer steps taken: the weights' version
        self._pending: dict[Any, Any] = {}  # a runner's call in flight -> the runner
        super().setup(config)

    def build_learner(self, config: dict[str, Any]) -> Any:
        from ember.rllib.algorithms.a3c.torch.a3c_torch_learner import A3CTorchLearner

        return A3CTorchLearner(config, self.observation_space, self.action_space)

    def training_step(self) -> dict[str, Any]:
        stats, result = self.updates(self._apply_next)
        learner = result[M.LEARNER_RESULTS][M.DEFAULT_MODULE_ID]
        learner["max_weights_staleness"] = max(s["weights_staleness"] for s in stats)
        learner["weights_version"] = self._version
        return result

    def updates(
        self, update: Callable[[], tuple[dict[str, float], int, int]]
    ) -> tuple[list[dict[str, float]], dict[str, Any]]:
        """Run ``update`` (one optimizer step: its statistics, env steps and episodes) until
        the iteration's steps reach ``train_batch_size``: every step's statistics, and the
        iteration's result with their means."""
        stats: list[dict[str, float]] = []
        steps = episodes = 0
        while steps < self.algo_config.train_batch_size:
            step_stats, step_steps, step_episodes = update()
            stats.append(step_stats)
            steps += step_steps
            episodes += step_episodes
        learner = {k: sum(s[k] for s in stats) / len(stats) for k in stats[0]}
        learner["num_gradients_applied"] = len(stats)
        return stats, {
            **self.env_runner_counts(steps, episodes),
            M.LEARNER_RESULTS: {M.DEFAULT_MODULE_ID: learner},
        }

    def _apply_next(self) -> tuple[dict[str, float], int, int]:
        """Apply the next gradients to arrive and send their runner the new weights."""
        result = self._next_gradients()
        staleness = self._version - result["version"]
        applied = self.learner.apply(result["gradients"], self._env_steps_lifetime)
        self._version += 1
        self._record(result["episode_returns"], result["episode_lens"], result["num_env_steps"])
        self._merge_filter(result["filter_delta"])
        self._send(result.get("runner"))
        stats = {**result["stats"], **applied, "weights_staleness": float(staleness)}
        return stats, result["num_env_steps"], len(result["episode_returns"])

    def _call(self, runner: Any, weights: Any) -> Any:
        args = (weights, self._version, self._fragment, self._filter_state())
        if runner is self.env_runner:
            return runner.compute_gradients(*args)
        return runner.compute_gradients.remote(*args)

    def _next_gradients(self) -> dict[str, Any]:
        """The next runner's gradients: the local runner's, computed now, or whichever remote
        runner's call finishes first (every runner gets a call with the current weights when
        none is in flight)."""
        if self.env_runner is not None:
            return dict(self._call(self.env_runner, self.learner.get_weights()))
        if not self._pending:
            ref = ember.put(self.learner.get_weights())
            self._pending = {self._call(r, ref): r for r in self._remote_runners}
        [done], _ = ember.wait(list(self._pending), num_returns=1)
        return {**ember.get(done), "runner": self._pending.pop(done)}

    def _send(self, runner: Any) -> None:
        """The new weights, put once, to the runner whose gradients were just applied."""
        if runner is not None:
            self._pending[self._call(runner, ember.put(self.learner.get_weights()))] = runner

    def _drain(self) -> None:
        """Wait for the calls in flight and drop their gradients."""
        if self._pending:
            ember.wait(list(self._pending), num_returns=len(self._pending))
            self._pending = {}

    def cleanup(self) -> None:
        self._pending = {}  # the runners are killed: nothing to wait for
        super().cleanup()

    def load_checkpoint(self, checkpoint: dict[str, Any] | str) -> None:
        self._drain()  # gradients of the weights being replaced
        super().load_checkpoint(checkpoint)

    def get_counters(self) -> dict[str, Any]:
        return {**super().get_counters(), "weights_version": self._version}

    def set_counters(self, counters: dict[str, Any]) -> None:
        super().set_counters(counters)
        self._version = counters["weights_version"]
