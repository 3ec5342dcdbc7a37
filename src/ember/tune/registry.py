"""Trainables and environments registered by name (``tune.register_trainable``,
``tune.register_env``), as the seed's ``run_experiments({"run": "my_func"})`` names them.

Names are resolved on the driver, which ships the trainable itself to the trial actors, so
the registry needs no cluster-wide store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_trainables: dict[str, Any] = {}
_envs: dict[str, Callable[..., Any]] = {}


def register_trainable(name: str, trainable: Any, warn: bool = True) -> None:
    """Register a function or ``Trainable`` class under ``name``."""
    from ember.tune.trainable.trainable import Trainable

    if not isinstance(name, str) or not name:
        raise TypeError(f"register_trainable: the name must be a non-empty str, not {name!r}")
    if not (
        callable(trainable) or (isinstance(trainable, type) and issubclass(trainable, Trainable))
    ):
        raise TypeError(
            f"register_trainable({name!r}, ...): the trainable must be a function or a "
            f"tune.Trainable subclass, not {type(trainable).__name__}"
        )
    _trainables[name] = trainable


def register_env(name: str, env_creator: Callable[..., Any]) -> None:
    """Register an environment creator ``f(env_config) -> env`` under ``name``."""
    if not callable(env_creator):
        raise TypeError(f"register_env({name!r}, ...): the creator must be callable")
    _envs[name] = env_creator


def get_trainable_cls(name: str) -> Any:
    if name in _trainables:
        return _trainables[name]
    # RLlib's algorithms ("PPO") by name, as in Ray; asked only for a name not registered here.
    from ember.rllib.algorithms.registry import get_algorithm_class

    algorithm = get_algorithm_class(name)
    if algorithm is not None:
        return algorithm
    known = ", ".join(sorted(_trainables)) or "none"
    raise ValueError(
        f"unknown trainable {name!r}: register it first with "
        f"tune.register_trainable({name!r}, f) (registered: {known})"
    )


def get_env_creator(name: str) -> Callable[..., Any] | None:
    return _envs.get(name)


def trainable_name(trainable: Any) -> str:
    """The name a trainable's trials and experiment are named after."""
    if isinstance(trainable, str):
        return trainable
    name = getattr(trainable, "__name__", None) or type(trainable).__name__
    return str(name)
