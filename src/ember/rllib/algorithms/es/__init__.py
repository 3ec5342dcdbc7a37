from ember.rllib.algorithms.es.es import ES, ESConfig

__all__ = ["ES", "ESConfig"]
