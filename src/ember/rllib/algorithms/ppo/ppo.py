"""Proximal Policy Optimization (Schulman et al. 2017): sample a batch with every env runner,
estimate advantages with GAE, then run epochs of minibatch SGD on the clipped surrogate, a
value loss and an entropy bonus, with an adaptive KL penalty as in Ray RLlib.

The defaults follow Ray's PPO, tuned towards CartPole-sized problems the way Stable-Baselines3's
are (smaller network and batch, ``lambda`` 0.95, clip 0.2), so that the simple case learns fast."""

from __future__ import annotations

from typing import Any

from ember.rllib.algorithms.algorithm import Algorithm
from ember.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided, unit_interval
from ember.rllib.utils import metrics as M


class PPOConfig(AlgorithmConfig):
    """``PPOConfig().environment("CartPole-v1").env_runners(num_env_runners=2)
    .training(lr=3e-4, num_epochs=10).build_algo()``."""

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        super().__init__(algo_class=algo_class or PPO)
        self.lr = 0.0003
        self.train_batch_size = 2000
        self.minibatch_size = 128
        self.num_epochs = 10
        self.lambda_ = 0.95
        self.use_gae = True
        self.clip_param = 0.2
        self.vf_clip_param: float | None = 10.0
        self.vf_loss_coeff = 0.5
        self.entropy_coeff = 0.0
        self.use_kl_loss = True
        self.kl_coeff = 0.2
        self.kl_target = 0.01
        self.grad_clip = 0.5

    def training(
        self,
        *,
        gamma: float = NotProvided,
        lr: float | list[list[float]] = NotProvided,
        train_batch_size: int = NotProvided,
        train_batch_size_per_learner: int = NotProvided,
        grad_clip: float | None = NotProvided,
        model: dict[str, Any] = NotProvided,
        minibatch_size: int = NotProvided,
        num_epochs: int = NotProvided,
        lambda_: float = NotProvided,
        use_gae: bool = NotProvided,
        clip_param: float = NotProvided,
        vf_clip_param: float | None = NotProvided,
        vf_loss_coeff: float = NotProvided,
        entropy_coeff: float = NotProvided,
        use_kl_loss: bool = NotProvided,
        kl_coeff: float = NotProvided,
        kl_target: float = NotProvided,
    ) -> PPOConfig:
        """PPO's settings besides the shared ones: ``vf_clip_param`` bounds how far the value
        prediction moves from the sampled one (None: no clipping); ``kl_coeff`` adapts
        towards ``kl_target`` when ``use_kl_loss``."""
        self._set_training(locals())
        return self

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.minibatch_size, int) or self.minibatch_size < 1:
            raise ValueError(f"minibatch_size must be an int >= 1, not {self.minibatch_size!r}")
        if self.minibatch_size > self.train_batch_size:
            raise ValueError(
                f"minibatch_size ({self.minibatch_size}) is larger than train_batch_size "
                f"({self.train_batch_size}): no minibatch can be filled; lower minibatch_size "
                "or raise train_batch_size"
            )
        envs = max(1, self.num_env_runners) * self.num_envs_per_env_runner
        per_iteration = envs * self.get_rollout_fragment_length()
        if per_iteration < self.minibatch_size:
            raise ValueError(
                f"an iteration samples {per_iteration} steps ({envs} envs x "
                f"rollout_fragment_length {self.get_rollout_fragment_length()}), fewer than "
                f"minibatch_size {self.minibatch_size}: raise rollout_fragment_length or use "
                "'auto'"
            )
        if not isinstance(self.num_epochs, int) or self.num_epochs < 1:
            raise ValueError(f"num_epochs must be an int >= 1, not {self.num_epochs!r}")
        unit_interval(self, "lambda_")
        if self.clip_param <= 0:
            raise ValueError(f"clip_param must be > 0, not {self.clip_param!r}")


class PPO(Algorithm):
    @classmethod
    def get_default_config(cls) -> PPOConfig:
        return PPOConfig(algo_class=cls)

    def build_learner(self, config: dict[str, Any]) -> Any:
        from ember.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner

        return PPOTorchLearner(config, self.observation_space, self.action_space)

    def training_step(self) -> dict[str, Any]:
        batches = self.sample()
        result = self.env_runner_results(batches)
        stats = self.learner.update(batches, self._env_steps_lifetime)
        result[M.LEARNER_RESULTS] = {M.DEFAULT_MODULE_ID: stats}
        return result

    def get_counters(self) -> dict[str, Any]:
        return {**super().get_counters(), "kl_coeff": self.learner.kl_coeff}

    def set_counters(self, counters: dict[str, Any]) -> None:
        super().set_counters(counters)
        self.learner.kl_coeff = counters["kl_coeff"]
