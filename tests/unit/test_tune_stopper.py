"""Stoppers (ember.tune.stopper) and the ``stop`` argument, with plain results."""

from __future__ import annotations

import datetime
import pickle
from typing import Any

import pytest

from ember.tune.error import TuneError
from ember.tune.stopper import (
    CombinedStopper,
    ExperimentPlateauStopper,
    FunctionStopper,
    MaximumIterationStopper,
    NoopStopper,
    Stopper,
    TimeoutStopper,
    TrialPlateauStopper,
)
from ember.tune.stopper._stop_argument import CriteriaStopper, as_stopper, plain_criteria


def feed(stopper: Stopper, trial_id: str, values: list[float], metric: str = "m") -> list[bool]:
    return [stopper(trial_id, {metric: v}) for v in values]


def test_maximum_iteration_counts_results_per_trial() -> None:
    stopper = MaximumIterationStopper(3)
    assert feed(stopper, "a", [0, 0, 0]) == [False, False, True]
    assert feed(stopper, "b", [0]) == [False]
    assert not stopper.stop_all()
    with pytest.raises(ValueError, match="max_iter"):
        MaximumIterationStopper(0)


def test_trial_plateau_waits_for_grace_period_and_window() -> None:
    stopper = TrialPlateauStopper("m", std=0.01, num_results=3, grace_period=5)
    assert feed(stopper, "a", [1.0, 1.0, 1.0, 1.0, 1.0]) == [False] * 4 + [True]
    assert feed(stopper, "b", [1.0, 2.0, 3.0, 4.0, 4.0, 4.0]) == [False] * 5 + [True]


def test_trial_plateau_threshold_needs_the_right_side() -> None:
    stopper = TrialPlateauStopper(
        "m", num_results=2, grace_period=0, metric_threshold=0.5, mode="min"
    )
    assert feed(stopper, "a", [0.9, 0.9]) == [False, False]  # flat, but above the threshold
    assert feed(stopper, "b", [0.1, 0.1]) == [False, True]
    assert not stopper("c", {"other": 1})  # results without the metric are skipped
    with pytest.raises(ValueError, match="mode"):
        TrialPlateauStopper("m", metric_threshold=1.0)
    with pytest.raises(ValueError, match="mode"):
        TrialPlateauStopper("m", mode="avg")


def test_experiment_plateau_stops_all_when_top_values_agree() -> None:
    stopper = ExperimentPlateauStopper("m", std=0.01, top=3, mode="max", patience=0)
    assert feed(stopper, "a", [0.5, 0.9]) == [False, False]
    assert not stopper.stop_all()
    assert stopper("b", {"m": 0.1}) is False  # top three: 0.9, 0.5, 0.1
    assert stopper("c", {"m": 0.9}) is False  # 0.9, 0.9, 0.5
    assert stopper("d", {"m": 0.9}) is True  # 0.9, 0.9, 0.9
    assert stopper.stop_all()


def test_experiment_plateau_patience_counts_plateaued_results() -> None:
    stopper = ExperimentPlateauStopper("m", top=2, mode="min", patience=3)
    assert feed(stopper, "a", [1.0, 1.0, 5.0, 5.0]) == [False, False, False, True]
    with pytest.raises(ValueError, match="mode"):
        ExperimentPlateauStopper("m", mode=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top"):
        ExperimentPlateauStopper("m", top=0)


def test_timeout_stopper() -> None:
    assert TimeoutStopper(0).stop_all()
    long = TimeoutStopper(datetime.timedelta(hours=1))
    assert not long.stop_all() and not long("a", {})
    restored = pickle.loads(pickle.dumps(long))
    assert not restored.stop_all()
    assert 3500 < restored.__getstate__()["budget"] <= 3600
    with pytest.raises(TypeError, match="timedelta"):
        TimeoutStopper("1h")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        TimeoutStopper(-1)


def test_combined_stopper_shows_every_result_to_every_stopper() -> None:
    first = MaximumIterationStopper(1)
    second = MaximumIterationStopper(2)
    combined = CombinedStopper(first, second, TimeoutStopper(3600))
    assert combined("a", {}) is True
    assert combined("a", {}) is True
    assert second("a", {}) is True  # it saw both earlier results: this is its third
    assert not combined.stop_all()
    assert CombinedStopper(TimeoutStopper(0)).stop_all()
    with pytest.raises(TypeError, match="FunctionStopper"):
        CombinedStopper(lambda trial_id, result: True)  # type: ignore[arg-type]


def test_function_stopper() -> None:
    stopper = FunctionStopper(lambda trial_id, result: result["m"] > 1)
    assert feed(stopper, "a", [0, 2]) == [False, True]
    assert not stopper.stop_all()

    class NotAStopper:
        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            return True

    with pytest.raises(TypeError, match="subclass Stopper"):
        FunctionStopper(NotAStopper())


def test_stop_argument_forms() -> None:
    assert as_stopper(None) is None
    assert not NoopStopper()("a", {}) and not NoopStopper().stop_all()
    given = MaximumIterationStopper(1)
    assert as_stopper(given) is given
    assert as_stopper(lambda trial_id, result: True)("a", {})
    with pytest.raises(TypeError, match="dict of criteria"):
        as_stopper(5)


def test_dict_criteria_stop_at_or_past_any_threshold() -> None:
    stopper = as_stopper({"training_iteration": 3, "info/acc": 0.9})
    assert isinstance(stopper, CriteriaStopper)
    assert not stopper("a", {"training_iteration": 2, "info": {"acc": 0.5}})
    assert stopper("a", {"training_iteration": 3, "info": {"acc": 0.5}})
    assert stopper("a", {"training_iteration": 1, "info": {"acc": 0.95}})
    assert stopper("a", {"training_iteration": 1, "info/acc": 0.95})  # already flat
    assert plain_criteria(stopper) == {"training_iteration": 3}
    assert plain_criteria(MaximumIterationStopper(1)) == {}


def test_dict_criterion_missing_from_result_names_key_and_reported_keys() -> None:
    stopper = as_stopper({"mean_accuracy": 0.9})
    with pytest.raises(TuneError, match=r"'mean_accuracy'.*\['loss', 'training_iteration'\]"):
        stopper("a", {"loss": 1.0, "training_iteration": 1})
    with pytest.raises(ValueError, match="'/'"):
        as_stopper({"info": {"acc": 0.9}})
