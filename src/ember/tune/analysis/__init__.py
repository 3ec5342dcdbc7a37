"""Reading an experiment's results (``ray.tune.analysis``)."""

from ember.tune.analysis.experiment_analysis import ExperimentAnalysis

__all__ = ["ExperimentAnalysis"]
