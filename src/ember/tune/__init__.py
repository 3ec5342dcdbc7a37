"""Ember Tune: hyperparameter search on Ember, with Ray Tune's API (``ray.tune``)."""
