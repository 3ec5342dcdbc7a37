"""Ember RLlib: reinforcement learning on Ember actors, with Ray RLlib's API (``ray.rllib``).

Env-runner actors sample Gymnasium environments with the latest weights (put in the object store
once per iteration); the algorithm's learner updates a PyTorch model on their batches. An
algorithm is a ``tune.Trainable``, so Tune runs, logs and checkpoints it. PyTorch and Gymnasium
load only when an algorithm is built: ``import ember.rllib`` stays light."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ember.rllib.algorithms.algorithm import Algorithm
    from ember.rllib.algorithms.algorithm_config import AlgorithmConfig

_WHERE = {
    "Algorithm": "ember.rllib.algorithms.algorithm",
    "AlgorithmConfig": "ember.rllib.algorithms.algorithm_config",
}

__all__ = ["Algorithm", "AlgorithmConfig"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ember.rllib' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
