"""Synchronous HyperBand (Ray Tune's ``HyperBandScheduler``; Li et al., 2018).

Trials fill brackets in turn; bracket ``s`` of a band takes ``ceil(s_max_1 / (s + 1) * eta**s)``
trials and first judges them after ``max_t / eta**s`` units of ``time_attr``. A trial that
reaches its bracket's milestone pauses (its resources go to other trials) until every live trial
of the bracket has reached it; then the best ``1/eta`` resume towards a milestone ``eta`` times
later and the rest stop. A rung is judged once the bracket has all its trials and each has
reached the milestone: a trial that ends or fails early leaves its bracket, so no rung waits for
it, and once the search is finished (``search_finished()``: no trial will come), the last
bracket is judged with the trials it has. Brackets of a band run side by side;
``choose_trial_to_run`` serves the least advanced bracket first."""

from __future__ import annotations

import math
from typing import Any

from ember.tune.experiment.trial import Trial
from ember.tune.schedulers.trial_scheduler import SchedulerContext, TrialScheduler
from ember.tune.schedulers.util import MetricScheduler


class _Bracket:
    """One round of successive halving, by trial id: where each live trial got to and its
    latest score."""

    def __init__(self, size: int, milestone: float, halvings: int, max_t: float, eta: float):
        self.size = size  # how many live trials the current rung holds at most
        self.capacity = size  # how many trials join the bracket in all
        self.joined = 0
        self.milestone = milestone
        self.halvings = halvings  # left to do
        self.max_t = max_t
        self.eta = eta
        self.times: dict[str, float] = {}
        self.scores: dict[str, float] = {}
        self.progress = 0.0
        self.total_work = 0.0
        n, r, previous = size, milestone, 0.0
        for left in reversed(range(halvings + 1)):
            self.total_work += n * (r - previous)
            n, r, previous = math.ceil(n / eta), self._next_milestone(r, left - 1), r

    def _next_milestone(self, milestone: float, halvings_left: int) -> float:
        """``eta`` times later; the last rung is ``max_t`` itself."""
        return self.max_t if halvings_left <= 0 else min(milestone * self.eta, self.max_t)

    def filled(self) -> bool:
        """Trials that ended do not free their place: a controller that adds trials a few at a
        time (those of a model-based searcher) would otherwise put them all in the first
        bracket."""
        return self.joined >= self.capacity

    def add(self, trial_id: str) -> None:
        self.joined += 1
        self.times[trial_id] = 0.0

    def record(self, trial_id: str, time: float, score: float) -> None:
        self.progress += max(time - self.times[trial_id], 0.0)
        self.times[trial_id] = time
        self.scores[trial_id] = score

    def remove(self, trial_id: str) -> None:
        self.times.pop(trial_id, None)
        self.scores.pop(trial_id, None)

    def below_milestone(self, trial_id: str) -> bool:
        return self.times[trial_id] < self.milestone

    def rung_done(self) -> bool:
        return (
            self.filled()
            and bool(self.times)
            and all(t >= self.milestone for t in self.times.values())
        )

    def close(self) -> None:
        """Take no more trials: the rung is judged with, and halves, the trials it has."""
        self.capacity = self.joined
        self.size = min(self.size, self.joined)

    def halve(self) -> list[str]:
        """Move on to the next rung with the best trials; the ids dropped."""
        self.halvings -= 1
        self.size = math.ceil(self.size / self.eta)
        self.milestone = self._next_milestone(self.milestone, self.halvings)
        ranked = sorted(self.times, key=lambda i: self.scores[i], reverse=True)
        dropped = ranked[self.size :]
        for trial_id in dropped:
            self.remove(trial_id)
        return dropped

    def completion(self) -> float:
        return min(self.progress / self.total_work, 1.0) if self.total_work else 1.0

    def to_state(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in ("max_t", "eta")}

    @classmethod
    def from_state(cls, state: dict[str, Any], max_t: float, eta: float) -> _Bracket:
        bracket = cls(1, 1, 0, max_t, eta)
        vars(bracket).update({k: dict(v) if isinstance(v, dict) else v for k, v in state.items()})
        return bracket


class HyperBandScheduler(MetricScheduler):
    """Successive halving in brackets of different sizes; with ``stop_last_trials`` a trial
    stops at the last milestone (``max_t``), otherwise the survivors of the last rung go on."""

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: float = 81,
        reduction_factor: float = 3,
        stop_last_trials: bool = True,
    ) -> None:
        super().__init__(time_attr, metric, mode)
        if max_t <= 0:
            raise ValueError(f"max_t must be positive, not {max_t!r}")
        if reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be greater than 1, not {reduction_factor!r}")
        self._max_t = max_t
        self._eta = reduction_factor
        self._stop_last_trials = stop_last_trials
        self._s_max_1 = round(math.log(max_t) / math.log(reduction_factor)) + 1
        self._bands: list[list[_Bracket]] = [[]]
        self._next_s = 0  # the bracket the band's next one is
        self._current: _Bracket | None = None  # the one new trials join
        self._bracket_of: dict[str, _Bracket] = {}
        self._trials: dict[str, Trial] = {}  # the live trials seen in this session
        self._num_stopped = 0

    # ------------------------------------------------------------------ brackets

    def _new_bracket(self) -> _Bracket:
        """The next bracket of the current band, or the first of a new band; brackets whose
        first milestone would round down to 0 are left out."""
        while True:
            if self._next_s == self._s_max_1:
                self._bands.append([])
                self._next_s = 0
            s = self._next_s
            self._next_s += 1
            milestone = int(self._max_t * self._eta**-s)
            if milestone > 0:
                size = math.ceil(self._s_max_1 / (s + 1) * self._eta**s)
                bracket = _Bracket(size, milestone, s, self._max_t, self._eta)
                self._bands[-1].append(bracket)
                return bracket

    def _decide(self, bracket: _Bracket, trial_id: str) -> str:
        if bracket.halvings == 0 and not self._stop_last_trials:
            return TrialScheduler.CONTINUE
        if bracket.below_milestone(trial_id):
            return TrialScheduler.CONTINUE
        return TrialScheduler.STOP if bracket.halvings == 0 else TrialScheduler.PAUSE

    def _advance(
        self, tune_controller: SchedulerContext, bracket: _Bracket, in_hand: Trial | None
    ) -> str:
        """Halve the bracket while its rung is complete, then stop, resume or leave waiting
        each of its trials; the decision for ``in_hand`` (the trial whose result this is)."""
        action = TrialScheduler.PAUSE
        while bracket.rung_done() and bracket.halvings > 0:
            for trial_id in bracket.halve():
                self._num_stopped += 1
                trial = self._forget(trial_id)
                if trial is None:
                    continue
                if trial is in_hand:
                    action = TrialScheduler.STOP
                else:
                    tune_controller.stop_trial(trial)
        for trial_id in list(bracket.times):
            decision = self._decide(bracket, trial_id)
            trial = self._trials.get(trial_id)
            if trial is None:
                continue
            if trial is in_hand:
                action = decision
                if decision == TrialScheduler.STOP:
                    self._forget(trial_id)
            elif decision == TrialScheduler.STOP:
                self._forget(trial_id)
                tune_controller.stop_trial(trial)
            elif decision == TrialScheduler.CONTINUE and trial.status == Trial.PAUSED:
                tune_controller.resume_trial(trial)
        return action

    def _forget(self, trial_id: str) -> Trial | None:
        bracket = self._bracket_of.pop(trial_id, None)
        if bracket is not None:
            bracket.remove(trial_id)
        return self._trials.pop(trial_id, None)

    def _leave(self, tune_controller: SchedulerContext, trial_id: str) -> None:
        """A trial ended by other means: its bracket goes on without it."""
        bracket = self._bracket_of.get(trial_id)
        self._forget(trial_id)
        if bracket is not None:
            self._advance(tune_controller, bracket, None)

    # ------------------------------------------------------------------ TrialScheduler

    def on_trial_add(self, tune_controller: SchedulerContext, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)
        self._match(tune_controller, trial)

    def _match(self, tune_controller: SchedulerContext, trial: Trial) -> None:
        """Bind a trial to its bracket by id, make it leave if it ended, or join if new."""
        known = trial.trial_id in self._bracket_of
        if trial.is_finished():
            if known:
                self._leave(tune_controller, trial.trial_id)
        elif known:
            self._trials[trial.trial_id] = trial
        else:
            self._join(trial)

    def _join(self, trial: Trial) -> _Bracket:
        """Put a trial in the current bracket, or in a new one when that is full."""
        current = self._current
        if current is None or current.filled():
            current = self._current = self._new_bracket()
        current.add(trial.trial_id)
        self._bracket_of[trial.trial_id] = current
        self._trials[trial.trial_id] = trial
        return current

    def on_trial_result(
        self, tune_controller: SchedulerContext, trial: Trial, result: dict[str, Any]
    ) -> str:
        time, score = self.read(result)
        bracket = self._bracket_of.get(trial.trial_id) or self._join(trial)
        self._trials[trial.trial_id] = trial
        bracket.record(trial.trial_id, time, score)
        action = self._decide(bracket, trial.trial_id)
        if action == TrialScheduler.PAUSE:
            return self._advance(tune_controller, bracket, trial)
        if action == TrialScheduler.STOP:
            self._forget(trial.trial_id)
        return action

    def on_trial_complete(
        self, tune_controller: SchedulerContext, trial: Trial, result: dict[str, Any]
    ) -> None:
        self._leave(tune_controller, trial.trial_id)

    def on_trial_error(self, tune_controller: SchedulerContext, trial: Trial) -> None:
        self._leave(tune_controller, trial.trial_id)

    def on_trial_remove(self, tune_controller: SchedulerContext, trial: Trial) -> None:
        self._leave(tune_controller, trial.trial_id)

    def choose_trial_to_run(self, tune_controller: SchedulerContext) -> Trial | None:
        """A pending trial (or a paused one short of its milestone) of the least advanced
        bracket of the earliest band.

        Once every trial exists and has its place, the bracket that new trials join is
        closed, so that its rung does not wait for trials that will never come."""
        self._reconcile(tune_controller)
        current = self._current
        if current is not None and not current.filled() and tune_controller.search_finished():
            current.close()
            self._advance(tune_controller, current, None)
        return self._runnable()

    def _runnable(self) -> Trial | None:
        for band in self._bands:
            for bracket in sorted(band, key=_Bracket.completion):
                for trial_id in bracket.times:
                    trial = self._trials[trial_id]
                    if trial.status == Trial.PENDING or (
                        trial.status == Trial.PAUSED and bracket.below_milestone(trial_id)
                    ):
                        return trial
        return None

    def _reconcile(self, tune_controller: SchedulerContext) -> None:
        """Match the brackets with the controller's trials. After ``Tuner.restore`` the trials
        are new objects that were never added: the brackets' ones are found by id, those that
        ended meanwhile leave their brackets (no rung waits for them), and unfinished ones the
        brackets lost (a failed trial restarted by the restore) join anew."""
        seen = set()
        for trial in tune_controller.get_trials():
            seen.add(trial.trial_id)
            self._match(tune_controller, trial)
        for trial_id in [i for i in self._bracket_of if i not in seen]:
            self._leave(tune_controller, trial_id)

    def debug_string(self) -> str:
        lines = [f"Using HyperBand: num_stopped={self._num_stopped}"]
        for i, band in enumerate(self._bands):
            lines.append(f"Round #{i}:")
            for b in band:
                lines.append(
                    f"  Bracket(size={b.size}, milestone={b.milestone:g}, "
                    f"completed={b.completion():.1%}, live={len(b.times)})"
                )
        return "\n".join(lines)

    # ------------------------------------------------------------------ Tuner.restore

    def get_state(self) -> dict[str, Any]:
        brackets = [b for band in self._bands for b in band]
        return {
            "bands": [[brackets.index(b) for b in band] for band in self._bands],
            "brackets": [b.to_state() for b in brackets],
            "current": None if self._current is None else brackets.index(self._current),
            "next_s": self._next_s,
            "num_stopped": self._num_stopped,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        brackets = [_Bracket.from_state(s, self._max_t, self._eta) for s in state["brackets"]]
        self._bands = [[brackets[i] for i in band] for band in state["bands"]]
        self._bracket_of = {i: b for b in brackets for i in b.times}
        self._trials = {}
        self._current = None if state["current"] is None else brackets[state["current"]]
        self._next_s = state["next_s"]
        self._num_stopped = state["num_stopped"]
