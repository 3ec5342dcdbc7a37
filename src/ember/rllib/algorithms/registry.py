"""Algorithm names, as ``tune.Tuner("PPO", ...)`` and the CLI spell them, to their classes.

Classes load on lookup, so asking for one name imports one algorithm."""

from __future__ import annotations

import importlib
from typing import Any

ALGORITHMS: dict[str, str] = {
    "PPO": "ember.rllib.algorithms.ppo.ppo:PPO",
    "ES": "ember.rllib.algorithms.es.es:ES",
    "DQN": "ember.rllib.algorithms.dqn.dqn:DQN",
    "A3C": "ember.rllib.algorithms.a3c.a3c:A3C",
    "A2C": "ember.rllib.algorithms.a2c.a2c:A2C",
}


def get_algorithm_class(name: str) -> Any:
    """The ``Algorithm`` subclass registered as ``name``, or None for a name not known here."""
    where = ALGORITHMS.get(name)
    if where is None:
        return None
    module, _, attr = where.partition(":")
    return getattr(importlib.import_module(module), attr)
