"""Asynchronous successive halving (ASHA; Ray Tune's ``AsyncHyperBandScheduler``).

Each bracket has rungs at ``grace_period * reduction_factor ** k`` units of ``time_attr``. When a
trial reaches a rung it is compared with the scores recorded there so far: below their
``1 - 1/reduction_factor`` quantile it stops, otherwise it goes on. No trial ever waits for
another, which is what makes it asynchronous (Li et al., "A System for Massively Parallel
Hyperparameter Tuning", 2020)."""

from __future__ import annotations

import math
import random
from typing import Any

from ember.tune.experiment.trial import Trial
from ember.tune.schedulers.trial_scheduler import SchedulerContext, TrialScheduler
from ember.tune.schedulers.util import MetricScheduler, quantile


class _Bracket:
    """Rungs from the highest milestone down, each with the scores recorded there."""

    def __init__(self, grace_period: float, max_t: float, reduction_factor: float, s: int):
        self.reduction_factor = reduction_factor
        count = 0
        while grace_period * reduction_factor ** (count + s) <= max_t * (1 + 1e-9):
            count += 1
        self.rungs: list[tuple[float, dict[str, float]]] = [
            (grace_period * reduction_factor ** (k + s), {}) for k in reversed(range(count))
        ]

    def on_result(self, trial_id: str, time: float, score: float) -> str:
        """Judge a trial at the highest rung it has reached and not yet been judged at."""
        for milestone, recorded in self.rungs:
            if time < milestone:
                continue
            if trial_id in recorded:
                break
            cutoff = quantile(list(recorded.values()), 1 - 1 / self.reduction_factor)
            recorded[trial_id] = score
            if score < cutoff:
                return TrialScheduler.STOP
            break
        return TrialScheduler.CONTINUE


class AsyncHyperBandScheduler(MetricScheduler):
    """Stops trials that fall in the bottom of a rung; ``brackets > 1`` adds brackets whose
    first rung is later (hedging against metrics that mislead early)."""

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: float = 100,
        grace_period: float = 1,
        reduction_factor: float = 4,
        brackets: int = 1,
        stop_last_trials: bool = True,
    ) -> None:
        super().__init__(time_attr, metric, mode)
        if max_t <= 0:
            raise ValueError(f"max_t must be positive, not {max_t!r}")
        if grace_period <= 0:
            raise ValueError(f"grace_period must be positive, not {grace_period!r}")
        if grace_period > max_t:
            raise ValueError(f"grace_period ({grace_period}) must not exceed max_t ({max_t})")
        if reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be greater than 1, not {reduction_factor!r}")
        if brackets < 1:
            raise ValueError(f"brackets must be at least 1, not {brackets!r}")
        self._max_t = max_t
        self._stop_last_trials = stop_last_trials
        self._brackets = [
            _Bracket(grace_period, max_t, reduction_factor, s) for s in range(brackets)
        ]
        self._bracket_of: dict[str, int] = {}
        self._num_stopped = 0

    def on_trial_add(self, tune_controller: SchedulerContext, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)
        self._bracket_for(trial.trial_id)

    def _bracket_for(self, trial_id: str) -> _Bracket:
        """A trial's bracket, drawn when the trial is first met: when added, or at its first
        result after ``Tuner.restore`` if it was new since the state was saved. Brackets with
        more rungs are likelier, as in Ray (a softmax over the rung counts)."""
        index = self._bracket_of.get(trial_id)
        if index is None:
            sizes = [len(b.rungs) for b in self._brackets]
            weights = [math.exp(size - max(sizes)) for size in sizes]
            index = random.choices(range(len(self._brackets)), weights=weights)[0]
            self._bracket_of[trial_id] = index
        return self._brackets[index]

    def on_trial_result(
        self, tune_controller: SchedulerContext, trial: Trial, result: dict[str, Any]
    ) -> str:
        time, score = self.read(result)
        if self._stop_last_trials and time >= self._max_t:
            action = TrialScheduler.STOP
        else:
            action = self._bracket_for(trial.trial_id).on_result(trial.trial_id, time, score)
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(
        self, tune_controller: SchedulerContext, trial: Trial, result: dict[str, Any]
    ) -> None:
        index = self._bracket_of.get(trial.trial_id)
        if index is not None and self.has_keys(result):
            time, score = self.read(result)
            self._brackets[index].on_result(trial.trial_id, time, score)

    def debug_string(self) -> str:
        lines = [f"Using AsyncHyperBand: num_stopped={self._num_stopped}"]
        for i, bracket in enumerate(self._brackets):
            rungs = ", ".join(f"{m:g}: {len(r)}" for m, r in bracket.rungs)
            lines.append(f"Bracket {i}: trials recorded per milestone {{{rungs}}}")
        return "\n".join(lines)

    def get_state(self) -> dict[str, Any]:
        return {
            "rungs": [[dict(r) for _, r in b.rungs] for b in self._brackets],
            "bracket_of": dict(self._bracket_of),
            "num_stopped": self._num_stopped,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        for bracket, recorded in zip(self._brackets, state["rungs"], strict=True):
            bracket.rungs = [
                (m, dict(r)) for (m, _), r in zip(bracket.rungs, recorded, strict=True)
            ]
        self._bracket_of = dict(state["bracket_of"])
        self._num_stopped = state["num_stopped"]


ASHAScheduler = AsyncHyperBandScheduler
