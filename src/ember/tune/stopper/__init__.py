"""Stopping trials and experiments (``ray.tune.stopper``)."""

from ember.tune.stopper.experiment_plateau import ExperimentPlateauStopper
from ember.tune.stopper.function_stopper import FunctionStopper
from ember.tune.stopper.maximum_iteration import MaximumIterationStopper
from ember.tune.stopper.noop import NoopStopper
from ember.tune.stopper.stopper import CombinedStopper, Stopper
from ember.tune.stopper.timeout import TimeoutStopper
from ember.tune.stopper.trial_plateau import TrialPlateauStopper

__all__ = [
    "CombinedStopper",
    "ExperimentPlateauStopper",
    "FunctionStopper",
    "MaximumIterationStopper",
    "NoopStopper",
    "Stopper",
    "TimeoutStopper",
    "TrialPlateauStopper",
]
