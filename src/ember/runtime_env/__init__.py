"""Runtime environments for jobs, tasks and actors, at Ray's ``ray.runtime_env``."""

from ember._api.runtime_env import RuntimeEnv, RuntimeEnvConfig

__all__ = ["RuntimeEnv", "RuntimeEnvConfig"]
