"""Making environments from what ``config.environment(env=...)`` names: a Gymnasium id, a
``gymnasium.Env`` class (called with ``env_config``), or a name given to
``ember.tune.register_env``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ember.rllib.utils import did_you_mean
from ember.tune.registry import get_env_creator


def env_creator(env: Any, env_creator_fn: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """A function ``env_config -> gymnasium.Env`` for ``env``; a clear ValueError if there is
    none (checked when the config is validated, before any actor starts)."""
    import gymnasium as gym

    if env_creator_fn is not None:
        return env_creator_fn
    if env is None:
        raise ValueError(
            "no environment: call config.environment('CartPole-v1') (a Gymnasium id, a "
            "gymnasium.Env class, or a name given to ember.tune.register_env)"
        )
    if isinstance(env, type):
        if not issubclass(env, gym.Env):
            raise ValueError(f"environment class {env.__name__} is not a gymnasium.Env")
        return env
    if not isinstance(env, str):
        raise ValueError(
            f"environment must be a Gymnasium id, a gymnasium.Env class or a registered "
            f"name, not {type(env).__name__}"
        )
    registered = get_env_creator(env)
    if registered is not None:
        return registered
    if env not in gym.registry:
        raise ValueError(
            f"unknown environment {env!r}{did_you_mean(env, gym.registry)}: give a Gymnasium "
            "id, a gymnasium.Env class, or register a creator with "
            "ember.tune.register_env(name, creator)"
        )

    def make(env_config: dict[str, Any]) -> Any:
        return gym.make(env, **env_config)

    return make


def make_env(creator: Callable[..., Any], env_config: dict[str, Any]) -> Any:
    import gymnasium as gym

    env = creator(dict(env_config))
    if not isinstance(env, gym.Env):
        raise ValueError(
            f"the environment creator returned {type(env).__name__}, not a gymnasium.Env"
        )
    return env
