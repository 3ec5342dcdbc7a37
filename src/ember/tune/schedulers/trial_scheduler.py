"""The scheduler interface (Ray Tune's ``TrialScheduler``) and the default FIFO scheduler.

A scheduler decides, for each result of a running trial, whether it goes on, pauses (its actor
and resources are released; it resumes later from its checkpoint) or stops; and which waiting
trial runs next. It sees the experiment through the few methods of ``SchedulerContext``, which
the controller implements and unit tests fake with plain values."""

from __future__ import annotations

from typing import Any, Protocol

from ember.tune.experiment.trial import Trial


class SchedulerContext(Protocol):
    """What a scheduler may ask of the controller (passed as ``tune_controller``, as in Ray)."""

    def get_trials(self) -> list[Trial]:
        """Every trial of the experiment, in the order they were created."""
        ...

    def stop_trial(self, trial: Trial) -> None:
        """End a trial now (TERMINATED); its actor is released."""
        ...

    def pause_trial(self, trial: Trial, should_checkpoint: bool = True) -> None:
        """Release a running trial's actor, keeping its checkpoint (saved first when asked and
        possible); the trial becomes PAUSED."""
        ...

    def resume_trial(self, trial: Trial) -> None:
        """Make a PAUSED trial eligible to run again (PENDING), from its checkpoint."""
        ...

    def search_finished(self) -> bool:
        """Whether every trial of the experiment exists already (no more will be added)."""
        ...

    def request_checkpoint(self, trial: Trial) -> None:
        """Ask a running trial to save a checkpoint after its current step; it arrives later
        as the trial's ``checkpoint``."""
        ...


class TrialScheduler:
    """Base class of schedulers; the default methods schedule first in, first out."""

    CONTINUE = "CONTINUE"
    PAUSE = "PAUSE"
    STOP = "STOP"
    NOOP = "NOOP"  # the scheduler already acted on the trial through the context

    _metric: str | None = None
    _mode: str | None = None
    # Whether it decides on every result: then a trial waits for the decision on each result
    # before it goes on, as in Ray; FIFO lets fast trials run ahead in batches.
    needs_every_decision = True

    @property
    def metric(self) -> str | None:
        return self._metric

    @property
    def mode(self) -> str | None:
        return self._mode

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Take the experiment's metric and mode unless set already; False if they conflict."""
        if self._metric and metric and self._metric != metric:
            return False
        if self._mode and mode and self._mode != mode:
            return False
        if metric and not self._metric:
            self._metric = metric
        if mode and not self._mode:
            self._mode = mode
        return True

    def on_trial_add(self, tune_controller: SchedulerContext, trial: Trial) -> None:
        pass

    def on_trial_error(self, tune_controller: SchedulerContext, trial: Trial) -> None:
        pass

    def on_trial_result(
        self, tune_controller: SchedulerContext, trial: Trial, result: dict[str, Any]
    ) -> str:
        return TrialScheduler.CONTINUE

    def on_trial_complete(
        self, tune_controller: SchedulerContext, trial: Trial, result: dict[str, Any]
    ) -> None:
        pass

    def on_trial_remove(self, tune_controller: SchedulerContext, trial: Trial) -> None:
        pass

    def choose_trial_to_run(self, tune_controller: SchedulerContext) -> Trial | None:
        """The next trial to start: the first pending one, then the first paused one."""
        trials = tune_controller.get_trials()
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in trials:
                if trial.status == status:
                    return trial
        return None

    def debug_string(self) -> str:
        return f"Using {type(self).__name__} scheduling algorithm."

    def get_state(self) -> dict[str, Any]:
        """What ``Tuner.restore`` needs to go on; schedulers that keep none start afresh."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        pass


class FIFOScheduler(TrialScheduler):
    """Runs trials in the order they were created, each to its end."""

    needs_every_decision = False
