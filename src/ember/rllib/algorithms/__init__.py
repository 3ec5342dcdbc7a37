"""The algorithms and their configs; ``registry`` maps Ray's names ("PPO") to them."""

from __future__ import annotations

from ember.rllib.algorithms.algorithm import Algorithm
from ember.rllib.algorithms.algorithm_config import AlgorithmConfig
from ember.rllib.algorithms.ppo import PPO, PPOConfig

__all__ = ["PPO", "Algorithm", "AlgorithmConfig", "PPOConfig"]
