"""``tune.run`` and the seed's ``tune.run_experiments``: the older entry points, which run
through the same controller as ``Tuner`` and return an ``ExperimentAnalysis`` (or trials)."""

from __future__ import annotations

import os
from typing import Any

from ember.tune.analysis.experiment_analysis import ExperimentAnalysis
from ember.tune.error import TuneError
from ember.tune.experiment.experiment import Experiment
from ember.tune.experiment.trial import Trial
from ember.tune.registry import trainable_name
from ember.tune.tune_config import (
    CheckpointConfig,
    FailureConfig,
    RunConfig,
    TuneConfig,
    default_storage_path,
)
from ember.tune.tuner import ExperimentPlan, resolve_trainable, run_experiment


def run(
    run_or_experiment: Any,
    *,
    name: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
    stop: Any = None,
    time_budget_s: float | None = None,
    config: dict[str, Any] | None = None,
    resources_per_trial: Any = None,
    num_samples: int = 1,
    storage_path: str | None = None,
    search_alg: Any = None,
    scheduler: Any = None,
    checkpoint_config: CheckpointConfig | None = None,
    verbose: int = 3,
    progress_reporter: Any = None,
    max_failures: int = 0,
    fail_fast: bool | str = False,
    trial_name_creator: Any = None,
    trial_dirname_creator: Any = None,
    log_to_file: bool | str = False,
    reuse_actors: bool | None = None,
    raise_on_failed_trial: bool = True,
    callbacks: list[Any] | None = None,
    max_concurrent_trials: int | None = None,
    keep_checkpoints_num: int | None = None,
    checkpoint_score_attr: str | None = None,
    checkpoint_freq: int = 0,
    checkpoint_at_end: bool = False,
    local_dir: str | None = None,
    resume: Any = None,
) -> ExperimentAnalysis:
    """Run one experiment (Ray Tune's functional API) and return its analysis."""
    if isinstance(run_or_experiment, Experiment):
        exp = run_or_experiment
        run_or_experiment = exp.run
        name, stop, config = exp.name, exp.stop, exp.config
        resources_per_trial = resources_per_trial or exp.resources
        num_samples, storage_path = exp.num_samples, exp.storage_path
        checkpoint_config = exp.checkpoint_config
        max_failures = exp.max_failures
        time_budget_s = time_budget_s or exp.time_budget_s
        callbacks = callbacks or exp.callbacks
        trial_name_creator = trial_name_creator or exp.trial_name_creator
        trial_dirname_creator = trial_dirname_creator or exp.trial_dirname_creator
        log_to_file = log_to_file or exp.log_to_file
    if resume:
        raise ValueError(
            "tune.run(resume=...) is not supported; resume an experiment with "
            "Tuner.restore(path, trainable).fit()"
        )
    resolve_trainable(run_or_experiment)
    if checkpoint_config is None:
        checkpoint_config = CheckpointConfig(
            num_to_keep=keep_checkpoints_num,
            checkpoint_score_attribute=checkpoint_score_attr,
            checkpoint_frequency=checkpoint_freq,
            checkpoint_at_end=checkpoint_at_end,
        )
    storage = os.path.expanduser(storage_path or local_dir or default_storage_path())
    from datetime import datetime

    name = name or f"{trainable_name(run_or_experiment)}_{datetime.now():%Y-%m-%d_%H-%M-%S}"
    plan = ExperimentPlan(
        trainable=run_or_experiment,
        param_space=dict(config or {}),
        tune_config=TuneConfig(
            metric=metric,
            mode=mode,
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=num_samples,
            max_concurrent_trials=max_concurrent_trials,
            time_budget_s=time_budget_s,
            reuse_actors=reuse_actors,
            trial_name_creator=trial_name_creator,
            trial_dirname_creator=trial_dirname_creator,
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage,
            stop=stop,
            checkpoint_config=checkpoint_config,
            failure_config=FailureConfig(max_failures=max_failures, fail_fast=fail_fast),
            log_to_file=log_to_file,
            callbacks=callbacks,
            verbose=verbose,
            progress_reporter=progress_reporter,
        ),
        resources=_resources(resources_per_trial),
        experiment_path=os.path.join(os.path.abspath(storage), name),
    )
    analysis, interrupted = run_experiment(plan)
    failed = [t for t in analysis.trials if t.status == Trial.ERROR]
    if failed and raise_on_failed_trial and not interrupted:
        raise TuneError(f"Trials did not complete: {failed}")
    return analysis


def _resources(resources: Any) -> Any:
    if resources is None or callable(resources):
        return resources
    if not isinstance(resources, dict):
        raise TypeError(
            f"resources_per_trial must be a dict such as {{'cpu': 1, 'gpu': 0}}, not "
            f"{type(resources).__name__}"
        )
    return dict(resources)


def run_experiments(
    experiments: Any,
    scheduler: Any = None,
    verbose: int = 2,
    progress_reporter: Any = None,
    reuse_actors: bool | None = None,
    raise_on_failed_trial: bool = True,
    concurrent: bool = True,
    callbacks: list[Any] | None = None,
) -> list[Trial]:
    """Run the seed's experiments: ``{"name": {"run": ..., "config": ..., "stop": ...}}``,
    an ``Experiment``, or a list of them, one after another; returns all their trials."""
    if isinstance(experiments, Experiment):
        experiments = [experiments]
    elif isinstance(experiments, dict):
        experiments = [Experiment.from_json(name, spec) for name, spec in experiments.items()]
    elif not isinstance(experiments, list) or not all(
        isinstance(e, Experiment) for e in experiments
    ):
        raise TypeError(
            "run_experiments takes a dict {name: spec}, an Experiment or a list of Experiments"
        )
    trials: list[Trial] = []
    for exp in experiments:
        analysis = run(
            exp,
            scheduler=scheduler,
            verbose=verbose,
            progress_reporter=progress_reporter,
            reuse_actors=reuse_actors,
            raise_on_failed_trial=raise_on_failed_trial,
            callbacks=callbacks,
        )
        trials.extend(analysis.trials)
    return trials
