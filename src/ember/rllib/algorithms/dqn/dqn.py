"""Deep Q-Networks (Mnih et al. 2015), with Ray RLlib's options: double Q-learning (van Hasselt
et al. 2016), a dueling head (Wang et al. 2016) and n-step returns.

Each iteration samples ``rollout_fragment_length`` epsilon-greedy steps per env, adds them to
a uniform replay buffer as n-step transitions, and, once the buffer holds
``num_steps_sampled_before_learning_starts`` transitions, runs gradient steps on replayed
minibatches of ``train_batch_size``: one per iteration, or as many as replay
``training_intensity`` times the sampled steps. The target network moves towards the online
one (``tau``) after an iteration's gradient steps once ``target_network_update_freq`` env
steps have passed since it last did.

Checkpoints keep the Q and target weights, the optimizer and the counters, not the replay
buffer: a restored DQN refills it before it learns again."""

from __future__ import annotations

from typing import Any

from ember.rllib.algorithms.algorithm import Algorithm
from ember.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ember.rllib.utils import did_you_mean
from ember.rllib.utils import metrics as M
from ember.rllib.utils.replay_buffers import ReplayBuffer, n_step_transitions
from ember.rllib.utils.schedules import Scheduler

BUFFER_TYPES = ("EpisodeReplayBuffer", "ReplayBuffer")
_PRIORITIZED = ("PrioritizedEpisodeReplayBuffer", "PrioritizedReplayBuffer")
_BUFFER_KEYS = ("type", "capacity")
_LOSS_FNS = ("huber", "mse")


class DQNConfig(AlgorithmConfig):
    """``DQNConfig().environment("CartPole-v1").training(lr=5e-4, n_step=3,
    epsilon=[[0, 1.0], [10_000, 0.05]]).build_algo()``; Ray's defaults."""

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        super().__init__(algo_class=algo_class or DQN)
        self.lr = 0.0005
        self.train_batch_size = 32
        self.grad_clip = 40.0
        self.rollout_fragment_length = 4
        self.model = {**self.model, "fcnet_hiddens": [256], "fcnet_activation": "relu"}
        self.replay_buffer_config: dict[str, Any] = {
            "type": "EpisodeReplayBuffer",
            "capacity": 50_000,
        }
        self.num_steps_sampled_before_learning_starts = 1000
        self.target_network_update_freq = 500
        self.tau = 1.0
        self.double_q = True
        self.dueling = True
        self.n_step = 1
        self.epsilon: float | list[list[float]] = [[0, 1.0], [10_000, 0.05]]
        self.training_intensity: float | None = None
        self.td_error_loss_fn = "huber"

    def training(
        self,
        *,
        gamma: float = NotProvided,
        lr: float | list[list[float]] = NotProvided,
        train_batch_size: int = NotProvided,
        train_batch_size_per_learner: int = NotProvided,
        grad_clip: float | None = NotProvided,
        model: dict[str, Any] = NotProvided,
        replay_buffer_config: dict[str, Any] = NotProvided,
        num_steps_sampled_before_learning_starts: int = NotProvided,
        target_network_update_freq: int = NotProvided,
        tau: float = NotProvided,
        double_q: bool = NotProvided,
        dueling: bool = NotProvided,
        n_step: int = NotProvided,
        epsilon: float | list[list[float]] = NotProvided,
        training_intensity: float | None = NotProvided,
        td_error_loss_fn: str = NotProvided,
    ) -> DQNConfig:
        """DQN's settings besides the shared ones (``train_batch_size`` is the replayed
        minibatch): ``replay_buffer_config`` updates ``{"type", "capacity"}``; ``epsilon`` is
        a number or a schedule ``[[env_step, value], ...]``; ``training_intensity`` is the
        ratio of replayed to sampled env steps (None: one gradient step per iteration);
        ``td_error_loss_fn`` is "huber" or "mse"."""
        if replay_buffer_config is not NotProvided:
            replay_buffer_config = {**self.replay_buffer_config, **replay_buffer_config}
        self._set_training(locals())
        return self

    def update_from_dict(self, config: dict[str, Any]) -> DQNConfig:
        if "replay_buffer_config" in config:  # merged with the defaults, as training() does
            merged = {**self.replay_buffer_config, **config["replay_buffer_config"]}
            config = {**config, "replay_buffer_config": merged}
        super().update_from_dict(config)
        return self

    def sampled_per_iteration(self) -> int:
        envs = max(1, self.num_env_runners) * self.num_envs_per_env_runner
        return envs * self.get_rollout_fragment_length()

    def num_gradient_steps(self) -> int:
        """Gradient steps per iteration, from ``training_intensity`` (validate() keeps it at
        one or more)."""
        if self.training_intensity is None:
            return 1
        ratio = self.training_intensity * self.sampled_per_iteration() / self.train_batch_size
        return max(1, round(ratio))

    def validate(self) -> None:
        super().validate()
        buffer = self.replay_buffer_config
        for key in buffer:
            if key not in _BUFFER_KEYS:
                raise ValueError(
                    f"unknown replay_buffer_config key {key!r}{did_you_mean(key, _BUFFER_KEYS)}; "
                    f"keys: {list(_BUFFER_KEYS)}"
                )
        kind = buffer.get("type")
        if kind in _PRIORITIZED:
            raise ValueError(
                f"replay buffer type {kind!r} is not supported: DQN here replays uniformly; "
                f"use one of {list(BUFFER_TYPES)}"
            )
        if kind not in BUFFER_TYPES:
            raise ValueError(
                f"unknown replay buffer type {kind!r}{did_you_mean(str(kind), BUFFER_TYPES)}; "
                f"use one of {list(BUFFER_TYPES)}"
            )
        capacity = buffer.get("capacity")
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"replay_buffer_config capacity must be an int >= 1, not {capacity!r}")
        starts = self.num_steps_sampled_before_learning_starts
        if not isinstance(starts, int) or starts < 0:
            raise ValueError(
                f"num_steps_sampled_before_learning_starts must be an int >= 0, not {starts!r}"
            )
        if starts > capacity:
            raise ValueError(
                f"num_steps_sampled_before_learning_starts ({starts}) is more than the replay "
                f"buffer's capacity ({capacity}): learning would never start; lower it or "
                "raise the capacity"
            )
        if not isinstance(self.n_step, int) or isinstance(self.n_step, bool) or self.n_step < 1:
            raise ValueError(f"n_step must be an int >= 1, not {self.n_step!r}")
        if not isinstance(self.target_network_update_freq, int) or (
            self.target_network_update_freq < 0
        ):
            raise ValueError(
                "target_network_update_freq must be an int >= 0 (env steps), not "
                f"{self.target_network_update_freq!r}"
            )
        for name in ("double_q", "dueling"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if self.dueling and self.model["custom_model"] is not None:
            raise ValueError(
                "dueling builds the default Q-network's head, and a custom_model computes its "
                "own Q-values: set dueling=False (and build a dueling head in the model if "
                "you want one)"
            )
        if not 0 < self.tau <= 1:
            raise ValueError(f"tau must be within (0, 1], not {self.tau!r}")
        if self.td_error_loss_fn not in _LOSS_FNS:
            raise ValueError(
                f"td_error_loss_fn must be one of {list(_LOSS_FNS)}, not "
                f"{self.td_error_loss_fn!r}{did_you_mean(str(self.td_error_loss_fn), _LOSS_FNS)}"
            )
        epsilon = Scheduler(self.epsilon, "epsilon")
        if not all(0 <= v <= 1 for v in epsilon.values()):
            raise ValueError(f"epsilon values must be within [0, 1]: {self.epsilon!r}")
        intensity = self.training_intensity
        if intensity is not None:
            lowest = self.train_batch_size / self.sampled_per_iteration()
            if not isinstance(intensity, (int, float)) or intensity < lowest:
                raise ValueError(
                    f"training_intensity {intensity!r} is below {lowest:g}, one gradient step "
                    f"(train_batch_size {self.train_batch_size}) per iteration of "
                    f"{self.sampled_per_iteration()} sampled steps: raise it, or sample more "
                    "per iteration (rollout_fragment_length), or leave it None"
                )
        if self.observation_filter != "NoFilter":
            raise ValueError(
                "DQN supports observation_filter 'NoFilter' only: replayed observations would "
                "be normalized by statistics that have moved since"
            )

    def validate_spaces(self, observation_space: Any, action_space: Any) -> None:
        import gymnasium as gym

        super().validate_spaces(observation_space, action_space)
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError(
                f"{self._algo_name()} supports Discrete action spaces only, not {action_space}: "
                "use PPO for a Box action space"
            )


class DQN(Algorithm):
    @classmethod
    def get_default_config(cls) -> DQNConfig:
        return DQNConfig(algo_class=cls)

    def env_runner_class(self) -> type:
        from ember.rllib.algorithms.dqn.dqn_env_runner import DQNEnvRunner

        return DQNEnvRunner

    def setup(self, config: dict[str, Any]) -> None:
        super().setup(config)
        cfg = self.algo_config
        assert isinstance(cfg, DQNConfig)
        seed = None if cfg.seed is None else cfg.seed + 7_919  # apart from the env streams
        self.replay_buffer = ReplayBuffer(cfg.replay_buffer_config["capacity"], seed)
        self._epsilon = Scheduler(cfg.epsilon, "epsilon")
        self._num_gradient_steps = cfg.num_gradient_steps()
        self._last_target_update = 0

    def build_learner(self, config: dict[str, Any]) -> Any:
        from ember.rllib.algorithms.dqn.torch.dqn_torch_learner import DQNTorchLearner

        return DQNTorchLearner(config, self.observation_space, self.action_space)

    def training_step(self) -> dict[str, Any]:
        cfg = self.algo_config
        assert isinstance(cfg, DQNConfig)
        epsilon = self._epsilon.value(self._env_steps_lifetime)
        self.learner.module.set_epsilon(epsilon)  # goes to the runners with the weights
        batches = self.sample()
        for batch in batches:
            self.replay_buffer.add(n_step_transitions(batch, cfg.n_step, cfg.gamma))
        result = self.env_runner_results(batches)
        stats: dict[str, float] = {"curr_epsilon": epsilon}
        steps = self._env_steps_lifetime
        if len(self.replay_buffer) >= max(1, cfg.num_steps_sampled_before_learning_starts):
            count = self._num_gradient_steps
            replayed = self.replay_buffer.sample(count * cfg.train_batch_size)
            stats.update(self.learner.update(replayed, count, steps))
            if steps - self._last_target_update >= cfg.target_network_update_freq:
                self.learner.update_target(cfg.tau)
                self._last_target_update = steps
        result[M.LEARNER_RESULTS] = {M.DEFAULT_MODULE_ID: stats}
        return result

    def get_counters(self) -> dict[str, Any]:
        return {**super().get_counters(), "last_target_update": self._last_target_update}

    def set_counters(self, counters: dict[str, Any]) -> None:
        super().set_counters(counters)
        self._last_target_update = counters["last_target_update"]
