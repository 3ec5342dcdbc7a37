"""Ember Tune: hyperparameter search on Ember, with Ray Tune's API (``ray.tune``).

Trials run in Ember actors holding their resources; the driver's controller asks a search
algorithm for configurations, a scheduler for early stopping, and writes every result in Ray's
layout. Names load on first use, so ``import ember.tune`` stays light."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ember.tune import logger, schedulers, search, stopper
    from ember.tune.analysis.experiment_analysis import ExperimentAnalysis
    from ember.tune.callback import Callback
    from ember.tune.error import TuneError
    from ember.tune.experiment.experiment import Experiment
    from ember.tune.experiment.trial import Trial
    from ember.tune.progress_reporter import CLIReporter, JupyterNotebookReporter, ProgressReporter
    from ember.tune.registry import register_env, register_trainable
    from ember.tune.result_grid import Result, ResultGrid
    from ember.tune.search.sample import (
        choice,
        grid_search,
        lograndint,
        loguniform,
        qlograndint,
        qloguniform,
        qrandint,
        qrandn,
        quniform,
        randint,
        randn,
        sample_from,
        uniform,
    )
    from ember.tune.stopper import Stopper
    from ember.tune.trainable.checkpoint import Checkpoint
    from ember.tune.trainable.session import TuneContext, get_checkpoint, get_context, report
    from ember.tune.trainable.trainable import Trainable
    from ember.tune.trainable.util import with_parameters, with_resources
    from ember.tune.tune import run, run_experiments
    from ember.tune.tune_config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
    from ember.tune.tuner import Tuner

_WHERE = {
    "ExperimentAnalysis": "ember.tune.analysis.experiment_analysis",
    "Callback": "ember.tune.callback",
    "TuneError": "ember.tune.error",
    "Experiment": "ember.tune.experiment.experiment",
    "Trial": "ember.tune.experiment.trial",
    "CLIReporter": "ember.tune.progress_reporter",
    "JupyterNotebookReporter": "ember.tune.progress_reporter",
    "ProgressReporter": "ember.tune.progress_reporter",
    "register_env": "ember.tune.registry",
    "register_trainable": "ember.tune.registry",
    "Result": "ember.tune.result_grid",
    "ResultGrid": "ember.tune.result_grid",
    "Stopper": "ember.tune.stopper",
    "Checkpoint": "ember.tune.trainable.checkpoint",
    "TuneContext": "ember.tune.trainable.session",
    "get_checkpoint": "ember.tune.trainable.session",
    "get_context": "ember.tune.trainable.session",
    "report": "ember.tune.trainable.session",
    "Trainable": "ember.tune.trainable.trainable",
    "with_parameters": "ember.tune.trainable.util",
    "with_resources": "ember.tune.trainable.util",
    "run": "ember.tune.tune",
    "run_experiments": "ember.tune.tune",
    "CheckpointConfig": "ember.tune.tune_config",
    "FailureConfig": "ember.tune.tune_config",
    "RunConfig": "ember.tune.tune_config",
    "TuneConfig": "ember.tune.tune_config",
    "Tuner": "ember.tune.tuner",
}
_SAMPLERS = (
    "choice",
    "grid_search",
    "lograndint",
    "loguniform",
    "qlograndint",
    "qloguniform",
    "qrandint",
    "qrandn",
    "quniform",
    "randint",
    "randn",
    "sample_from",
    "uniform",
)
_WHERE.update(dict.fromkeys(_SAMPLERS, "ember.tune.search.sample"))
_SUBMODULES = ("logger", "schedulers", "search", "stopper")

__all__ = [
    "CLIReporter",
    "Callback",
    "Checkpoint",
    "CheckpointConfig",
    "Experiment",
    "ExperimentAnalysis",
    "FailureConfig",
    "JupyterNotebookReporter",
    "ProgressReporter",
    "Result",
    "ResultGrid",
    "RunConfig",
    "Stopper",
    "Trainable",
    "Trial",
    "TuneConfig",
    "TuneContext",
    "TuneError",
    "Tuner",
    "choice",
    "get_checkpoint",
    "get_context",
    "grid_search",
    "logger",
    "lograndint",
    "loguniform",
    "qlograndint",
    "qloguniform",
    "qrandint",
    "qrandn",
    "quniform",
    "randint",
    "randn",
    "register_env",
    "register_trainable",
    "report",
    "run",
    "run_experiments",
    "sample_from",
    "schedulers",
    "search",
    "stopper",
    "uniform",
    "with_parameters",
    "with_resources",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"ember.tune.{name}")
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ember.tune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
