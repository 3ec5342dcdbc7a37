"""The median stopping rule (Ray Tune's ``MedianStoppingRule``; Golovin et al., "Google
Vizier", 2017): stop a trial whose best result so far is worse than the median, over the other
trials that got as far, of their mean result from the grace period up to that point."""

from __future__ import annotations

import statistics
from typing import Any

from ember.tune.experiment.trial import Trial
from ember.tune.schedulers.trial_scheduler import SchedulerContext, TrialScheduler
from ember.tune.schedulers.util import MetricScheduler


class MedianStoppingRule(MetricScheduler):
    """Judges a trial once it is past ``grace_period`` and at least ``min_samples_required``
    other trials reached the same ``time_attr``. While there are too few, it yields to waiting
    trials (pauses this one at most once per ``min_time_slice``). ``hard_stop=False`` pauses a
    trial instead of stopping it."""

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: str | None = None,
        mode: str | None = None,
        grace_period: float = 60.0,
        min_samples_required: int = 3,
        min_time_slice: float = 0,
        hard_stop: bool = True,
    ) -> None:
        super().__init__(time_attr, metric, mode)
        if grace_period < 0:
            raise ValueError(f"grace_period must not be negative, not {grace_period!r}")
        if min_samples_required < 1:
            raise ValueError(f"min_samples_required must be at least 1, not {min_samples_required}")
        self._grace_period = grace_period
        self._min_samples_required = min_samples_required
        self._min_time_slice = min_time_slice
        self._hard_stop = hard_stop
        # trial id -> its (time, signed score) results, in order
        self._results: dict[str, list[tuple[float, float]]] = {}
        self._stopped: set[str] = set()
        self._last_pause: dict[str, float] = {}

    def on_trial_result(
        self, tune_controller: SchedulerContext, trial: Trial, result: dict[str, Any]
    ) -> str:
        time, score = self.read(result)
        if trial.trial_id in self._stopped:  # paused by the rule and resumed: left alone
            return TrialScheduler.CONTINUE
        history = self._results.setdefault(trial.trial_id, [])
        history.append((time, score))
        if time < self._grace_period:
            return TrialScheduler.CONTINUE
        others = [i for i, h in self._results.items() if i != trial.trial_id and h[-1][0] >= time]
        if len(others) < self._min_samples_required:
            return self._on_insufficient_samples(tune_controller, trial, time)
        median = statistics.median(self._running_mean(i, time) for i in others)
        if max(score for _, score in history) < median:
            self._stopped.add(trial.trial_id)
            return TrialScheduler.STOP if self._hard_stop else TrialScheduler.PAUSE
        return TrialScheduler.CONTINUE

    def on_trial_complete(
        self, tune_controller: SchedulerContext, trial: Trial, result: dict[str, Any]
    ) -> None:
        history = self._results.setdefault(trial.trial_id, [])
        if self.has_keys(result):
            time, score = self.read(result)
            if not history or history[-1] != (time, score):
                history.append((time, score))

    def _running_mean(self, trial_id: str, time: float) -> float:
        scores = [s for t, s in self._results[trial_id] if self._grace_period <= t <= time]
        return statistics.fmean(scores)

    def _on_insufficient_samples(
        self, tune_controller: SchedulerContext, trial: Trial, time: float
    ) -> str:
        if time - self._last_pause.get(trial.trial_id, float("-inf")) <= self._min_time_slice:
            return TrialScheduler.CONTINUE
        waiting = any(
            t.status in (Trial.PENDING, Trial.PAUSED) and t is not trial
            for t in tune_controller.get_trials()
        )
        if not waiting:
            return TrialScheduler.CONTINUE
        self._last_pause[trial.trial_id] = time
        return TrialScheduler.PAUSE

    def debug_string(self) -> str:
        return f"Using MedianStoppingRule: num_stopped={len(self._stopped)}."

    def get_state(self) -> dict[str, Any]:
        return {
            "results": {i: list(h) for i, h in self._results.items()},
            "stopped": sorted(self._stopped),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._results = {i: [(t, v) for t, v in h] for i, h in state["results"].items()}
        self._stopped = set(state["stopped"])
