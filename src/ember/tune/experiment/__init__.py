"""Trials and experiments (``ray.tune.experiment``)."""

from ember.tune.experiment.trial import Trial

__all__ = ["Trial"]
