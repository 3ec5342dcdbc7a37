from ember.rllib.algorithms.a3c.a3c import A3C, A3CConfig

__all__ = ["A3C", "A3CConfig"]
