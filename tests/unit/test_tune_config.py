"""Tune's settings refuse bad values when they are built, naming what was wrong."""

from __future__ import annotations

from typing import Any

import pytest

from ember import tune
from ember.tune import CheckpointConfig, FailureConfig, RunConfig, TuneConfig, Tuner


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TuneConfig(mode="maximum"), "'min' or 'max'"),
        (lambda: TuneConfig(num_samples=0), "num_samples"),
        (lambda: TuneConfig(max_concurrent_trials=0), "max_concurrent_trials"),
        (lambda: TuneConfig(time_budget_s=-1), "time_budget_s"),
        (lambda: CheckpointConfig(num_to_keep=0), "num_to_keep"),
        (lambda: CheckpointConfig(checkpoint_score_order="up"), "'min' or 'max'"),
        (lambda: FailureConfig(max_failures=-2), "max_failures"),
        (lambda: FailureConfig(fail_fast="yes"), "fail_fast"),
        (lambda: RunConfig(verbose=7), "verbose"),
        (lambda: RunConfig(log_to_file=True), "log_to_file"),
        (lambda: RunConfig(sync_config=object()), "sync_config"),
        (lambda: RunConfig(storage_filesystem=object()), "storage_filesystem"),
    ],
)
def test_bad_settings_are_refused_when_built(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def f(config: dict[str, Any]) -> None:
    tune.report({"x": 1})


class NotATrainable:
    pass


@pytest.mark.parametrize(
    ("trainable", "error", "message"),
    [
        (None, TypeError, "needs a trainable"),
        (42, TypeError, "must be a function"),
        (NotATrainable, TypeError, "not a tune.Trainable"),
        ("never_registered", ValueError, "register it first"),
    ],
)
def test_a_bad_trainable_is_refused_by_the_tuner(
    trainable: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Tuner(trainable)


def test_bad_param_space_and_configs_are_refused_by_the_tuner() -> None:
    with pytest.raises(TypeError, match="param_space must be a dict"):
        Tuner(f, param_space=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="TuneConfig"):
        Tuner(f, tune_config={"metric": "x"})  # type: ignore[arg-type]


def test_checkpoint_frequency_with_a_function_trainable_is_refused_before_it_starts(
    tmp_path: Any,
) -> None:
    tuner = Tuner(
        f,
        run_config=RunConfig(
            storage_path=str(tmp_path), checkpoint_config=CheckpointConfig(checkpoint_frequency=2)
        ),
    )
    with pytest.raises(ValueError, match="tune.Trainable classes"):
        tuner.fit()


def test_a_scheduler_with_another_metric_than_the_tune_config_is_refused(tmp_path: Any) -> None:
    from ember.tune.schedulers import ASHAScheduler

    tuner = Tuner(
        f,
        tune_config=TuneConfig(
            metric="x", mode="max", scheduler=ASHAScheduler(metric="y", mode="max")
        ),
        run_config=RunConfig(storage_path=str(tmp_path)),
    )
    with pytest.raises(ValueError, match="metric"):
        tuner.fit()


def test_restore_of_a_folder_without_an_experiment_says_what_to_pass(tmp_path: Any) -> None:
    assert not Tuner.can_restore(tmp_path)
    with pytest.raises(ValueError, match="no experiment to restore"):
        Tuner.restore(str(tmp_path), trainable=f)
