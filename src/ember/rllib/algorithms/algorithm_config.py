"""``AlgorithmConfig``: Ray RLlib's builder for an algorithm's settings.

Builder methods (``environment``, ``env_runners``, ``training``, ...) set attributes and return
the config; ``to_dict()`` is the flat dict Tune passes to trials, ``update_from_dict()`` reads
one back. ``validate()`` runs at ``build_algo()`` (and when a trial starts), before any actor:
every mistake it can see is a ValueError saying what to change."""

from __future__ import annotations

import copy as _copy
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ember.rllib.utils import did_you_mean
from ember.rllib.utils.schedules import Scheduler

if TYPE_CHECKING:
    from ember.rllib.algorithms.algorithm import Algorithm

MODEL_DEFAULTS: dict[str, Any] = {
    "fcnet_hiddens": [64, 64],
    "fcnet_activation": "tanh",
    "vf_share_layers": False,
    "custom_model": None,
    "custom_model_config": {},
}

# Attribute names that Ray's dicts spell differently (``lambda`` is a Python keyword).
_DICT_NAMES = {"lambda_": "lambda", "framework_str": "framework"}
_ATTR_NAMES = {v: k for k, v in _DICT_NAMES.items()}
# With one learner, Ray's per-learner batch size is the train batch size.
_ATTR_NAMES["train_batch_size_per_learner"] = "train_batch_size"


class _NotProvided:
    """A builder argument left out (None may be a meaningful value)."""

    def __repr__(self) -> str:
        return "NotProvided"


NotProvided: Any = _NotProvided()


# The training settings every algorithm has (AlgorithmConfig.training's parameters).
_SHARED_TRAINING = (
    "gamma",
    "lr",
    "train_batch_size",
    "train_batch_size_per_learner",
    "grad_clip",
    "model",
)


class AlgorithmConfig:
    """The settings every algorithm shares; subclasses add their own in ``__init__`` and
    ``training()``, and name their algorithm in ``algo_class``."""

    algo_class: type[Algorithm] | None = None

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        if algo_class is not None:
            self.algo_class = algo_class
        # environment()
        self.env: Any = None
        self.env_config: dict[str, Any] = {}
        self.env_creator: Callable[..., Any] | None = None
        # env_runners()
        self.num_env_runners = 0
        self.num_envs_per_env_runner = 1
        self.num_cpus_per_env_runner = 1.0
        self.rollout_fragment_length: int | str = "auto"
        self.observation_filter = "NoFilter"
        self.metrics_num_episodes_for_smoothing = 100
        # training()
        self.gamma = 0.99
        self.lr: float | list[list[float]] = 0.001
        self.train_batch_size = 4000
        self.grad_clip: float | None = None
        self.model: dict[str, Any] = dict(MODEL_DEFAULTS)
        # evaluation()
        self.evaluation_interval: int | None = None
        self.evaluation_duration = 10
        self.evaluation_config: dict[str, Any] = {"explore": False}
        # learners(), resources(), framework(), debugging()
        self.num_learners = 0
        self.num_gpus_per_learner = 0.0
        self.num_cpus_for_main_process = 1.0
        self.framework_str = "torch"
        self.seed: int | None = None
        self._unknown: list[str] = []

    # ------------------------------------------------------------------ builders

    def environment(
        self, env: Any = NotProvided, *, env_config: dict[str, Any] | None = NotProvided
    ) -> AlgorithmConfig:
        """``env``: a Gymnasium id, a ``gymnasium.Env`` class, or a name registered with
        ``ember.tune.register_env``; ``env_config`` goes to the class or the creator."""
        if env is not NotProvided:
            self.env = env
            self.env_creator = None
            if isinstance(env, str):
                from ember.tune.registry import get_env_creator

                # Carried with the config, so that a Tune trial's process can make it too.
                self.env_creator = get_env_creator(env)
        if env_config is not NotProvided:
            self.env_config = dict(env_config or {})
        return self

    def env_runners(
        self,
        *,
        num_env_runners: int = NotProvided,
        num_envs_per_env_runner: int = NotProvided,
        num_cpus_per_env_runner: float = NotProvided,
        rollout_fragment_length: int | str = NotProvided,
        observation_filter: str = NotProvided,
        metrics_num_episodes_for_smoothing: int = NotProvided,
    ) -> AlgorithmConfig:
        """``num_env_runners`` 0 samples in the algorithm's own process;
        ``observation_filter="MeanStdFilter"`` normalizes observations by running statistics
        shared by all runners."""
        return self._set(locals())

    def training(
        self,
        *,
        gamma: float = NotProvided,
        lr: float | list[list[float]] = NotProvided,
        train_batch_size: int = NotProvided,
        train_batch_size_per_learner: int = NotProvided,
        grad_clip: float | None = NotProvided,
        model: dict[str, Any] = NotProvided,
    ) -> AlgorithmConfig:
        """``lr`` may be a schedule, ``[[timestep, value], ...]``; ``model`` updates the
        defaults (``fcnet_hiddens``, ``fcnet_activation``, ``vf_share_layers``,
        ``custom_model``, ``custom_model_config``)."""
        if model is not NotProvided:
            model = {**self.model, **model}
        if train_batch_size_per_learner is not NotProvided:
            train_batch_size = train_batch_size_per_learner
        del train_batch_size_per_learner
        return self._set(locals())

    def evaluation(
        self,
        *,
        evaluation_interval: int | None = NotProvided,
        evaluation_duration: int = NotProvided,
        evaluation_config: dict[str, Any] = NotProvided,
    ) -> AlgorithmConfig:
        """Evaluate every ``evaluation_interval`` iterations for ``evaluation_duration``
        episodes, greedily unless ``evaluation_config={"explore": True}``."""
        if evaluation_config is not NotProvided:
            evaluation_config = {**self.evaluation_config, **evaluation_config}
        return self._set(locals())

    def learners(
        self, *, num_learners: int = NotProvided, num_gpus_per_learner: float = NotProvided
    ) -> AlgorithmConfig:
        """A GPU learner when ``num_gpus_per_learner`` > 0 and PyTorch sees a GPU."""
        return self._set(locals())

    def resources(self, *, num_cpus_for_main_process: float = NotProvided) -> AlgorithmConfig:
        return self._set(locals())

    def framework(self, framework: str = NotProvided) -> AlgorithmConfig:
        if framework is not NotProvided:
            self.framework_str = framework
        return self

    def debugging(self, *, seed: int | None = NotProvided) -> AlgorithmConfig:
        return self._set(locals())

    def _set_training(self, args: dict[str, Any]) -> None:
        """An algorithm's ``training(...)``: the shared settings go through
        ``AlgorithmConfig.training`` (merging ``model``, the per-learner batch size), the
        algorithm's own are set as given."""
        shared = {k: args[k] for k in _SHARED_TRAINING}
        AlgorithmConfig.training(self, **shared)
        self._set({k: v for k, v in args.items() if k not in _SHARED_TRAINING})

    def _set(self, args: dict[str, Any]) -> AlgorithmConfig:
        for key, value in args.items():
            if key not in ("self", "__class__") and value is not NotProvided:
                setattr(self, key, value)
        return self

    # ------------------------------------------------------------------ dicts

    def to_dict(self) -> dict[str, Any]:
        """The settings as a flat dict (Ray's keys), e.g. a Tuner's ``param_space``."""
        out = {
            _DICT_NAMES.get(k, k): _copy.deepcopy(v)
            for k, v in vars(self).items()
            if not k.startswith("_")
        }
        out["model"] = dict(self.model)  # a custom model class is kept, not copied
        return out

    def update_from_dict(self, config: dict[str, Any]) -> AlgorithmConfig:
        """Set the settings a dict names; a key this config does not have is reported by
        ``validate()``, with the nearest valid name."""
        known = self._known_keys()
        for key, value in config.items():
            attr = _ATTR_NAMES.get(key, key)
            if attr not in known:
                self._unknown.append(key)
            elif attr == "env" and "env_creator" not in config:
                self.environment(value)  # a name registered with tune.register_env
            elif attr == "model":
                self.model = {**self.model, **value}
            elif attr == "evaluation_config":
                self.evaluation_config = {**self.evaluation_config, **value}
            else:
                setattr(self, attr, value)
        return self

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> AlgorithmConfig:
        return cls().update_from_dict(config)

    def copy(self) -> AlgorithmConfig:
        return _copy.deepcopy(self)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, _ATTR_NAMES.get(key, key), default)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, _ATTR_NAMES.get(key, key))

    def _known_keys(self) -> set[str]:
        return {k for k in vars(self) if not k.startswith("_")}

    # ------------------------------------------------------------------ building

    def build_algo(self) -> Algorithm:
        """Validate, then build the algorithm (its env runners and learner)."""
        if self.algo_class is None:
            raise ValueError(
                f"{type(self).__name__} names no algorithm: use an algorithm's config "
                "(PPOConfig) or AlgorithmConfig(algo_class=...)"
            )
        self.validate()
        return self.algo_class(config=self)

    build = build_algo

    def get_rollout_fragment_length(self) -> int:
        """Steps per env per sample: ``auto`` divides the train batch among all envs."""
        if self.rollout_fragment_length != "auto":
            return int(self.rollout_fragment_length)
        envs = max(1, self.num_env_runners) * self.num_envs_per_env_runner
        return max(1, math.ceil(self.train_batch_size / envs))

    def validate(self) -> None:
        """Raise ValueError for a setting that cannot work; checks the environment too (one
        instance is made, to see its spaces)."""
        if self._unknown:
            known = sorted(_DICT_NAMES.get(k, k) for k in self._known_keys())
            lines = []
            for key in self._unknown:
                lines.append(f"{key!r}{did_you_mean(key, known)}")
            raise ValueError(f"unknown config key(s) for {type(self).__name__}: {', '.join(lines)}")
        unknown_model = set(self.model) - set(MODEL_DEFAULTS)
        if unknown_model:
            key = sorted(unknown_model)[0]
            raise ValueError(
                f"unknown model key {key!r}{did_you_mean(key, MODEL_DEFAULTS)}; "
                f"model keys: {sorted(MODEL_DEFAULTS)}"
            )
        if self.framework_str != "torch":
            raise ValueError(f"framework {self.framework_str!r} is not supported: use 'torch'")
        if self.num_learners != 0:
            raise ValueError("num_learners must be 0: the learner runs in the algorithm's process")
        _positive_int(self, "num_envs_per_env_runner")
        _positive_int(self, "train_batch_size")
        if not isinstance(self.num_env_runners, int) or self.num_env_runners < 0:
            raise ValueError(f"num_env_runners must be an int >= 0, not {self.num_env_runners!r}")
        if self.rollout_fragment_length != "auto":
            _positive_int(self, "rollout_fragment_length")
        if self.observation_filter not in ("NoFilter", "MeanStdFilter"):
            raise ValueError(
                f"observation_filter must be 'NoFilter' or 'MeanStdFilter', not "
                f"{self.observation_filter!r}"
            )
        if self.seed is not None and not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int or None, not {self.seed!r}")
        unit_interval(self, "gamma")
        clip = self.grad_clip
        if clip is not None and (not isinstance(clip, (int, float)) or not clip > 0):
            raise ValueError(f"grad_clip must be > 0 or None (no clipping), not {clip!r}")
        rates = Scheduler(self.lr, "lr").values()
        if rates[0] <= 0 or min(rates) < 0:
            raise ValueError(f"lr must start above 0 and never fall below it, not {self.lr!r}")
        self.validate_env()

    def validate_env(self) -> None:
        from ember.rllib.env.utils import env_creator, make_env

        env = make_env(env_creator(self.env, self.env_creator), self.env_config)
        try:
            self.validate_spaces(env.observation_space, env.action_space)
        finally:
            env.close()

    def validate_spaces(self, observation_space: Any, action_space: Any) -> None:
        import gymnasium as gym

        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(
                f"{self._algo_name()} supports Box observation spaces, not {observation_space}"
            )
        if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.Box)):
            raise ValueError(
                f"{self._algo_name()} supports Discrete and Box action spaces, not {action_space}"
            )

    def _algo_name(self) -> str:
        return self.algo_class.__name__ if self.algo_class else type(self).__name__


def unit_interval(config: AlgorithmConfig, name: str) -> None:
    """A setting that must be a number within [0, 1], such as ``gamma`` or ``lambda_``."""
    value = getattr(config, name)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"{_DICT_NAMES.get(name, name)} must be within [0, 1], not {value!r}")


def _positive_int(config: AlgorithmConfig, name: str) -> None:
    value = getattr(config, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, not {value!r}")
