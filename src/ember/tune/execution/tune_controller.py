"""The driver's loop of an experiment: it asks the search algorithm for trials, starts them
when resources allow, feeds each batch of results to the stopper, the scheduler, the searcher
and the callbacks, persists checkpoints, and recovers failed trials.

It is a plain object driven by the news of its ``TrialExecutor``: the real one runs trials in
Ember actors (``actor_executor.py``); unit tests give it one that plays scripted news."""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import cloudpickle

from ember.tune.callback import Callback
from ember.tune.error import TuneError
from ember.tune.experiment.trial import Trial
from ember.tune.result import (
    CHECKPOINT_DIR_NAME,
    CONFIG,
    DONE,
    EPISODES_TOTAL,
    EXPR_ERROR_FILE,
    EXPR_ERROR_PICKLE_FILE,
    TIME_TOTAL_S,
    TIMESTEPS_TOTAL,
    TRAINING_ITERATION,
)
from ember.tune.schedulers.trial_scheduler import TrialScheduler
from ember.tune.search.search_algorithm import SearchAlgorithm
from ember.tune.trainable.checkpoint import Checkpoint, pack, unpack
from ember.tune.trainable.session import CONTINUE, PAUSE, SAVE, STOP, Event, TrialStart

# A stopped trial whose code does not reach its next report in this long is killed (a paused
# one, which saves a checkpoint first, gets longer).
STOP_GRACE_S = 5.0
PAUSE_GRACE_S = 30.0
# How many trials may wait for resources before the search algorithm is asked for more: all
# of a grid or random search (so that schedulers such as HyperBand see the population, as in
# Ray), a few of a model-based searcher (which learns from the results of earlier ones).
MAX_PENDING_VARIANTS = 1000
MAX_PENDING_SUGGESTIONS = 16
# Trials made per step of the loop, so that the first ones start at once.
NEW_TRIALS_PER_STEP = 64
# The experiment's state is written for Tuner.restore when it changed, at most this often.
STATE_PERIOD_S = 1.0
_CHECKPOINT_STATE = ".tune_state.json"  # the metrics a checkpoint was saved with
STATE_FILE_PREFIX = "experiment_state"


class TrialExecutor(Protocol):
    """What the controller asks of whatever runs its trials."""

    def fits_a_node(self, resources: dict[str, float]) -> bool: ...
    def can_start(self, resources: dict[str, float]) -> bool: ...
    def start(self, trial_id: str, resources: dict[str, float], start: TrialStart) -> None: ...
    def poll(self, trial_id: str, decision: str) -> None: ...
    def stop(self, trial_id: str, save: bool = False) -> None: ...
    def release(self, trial_id: str, reusable: bool = True) -> None: ...
    def wait(self, timeout: float) -> list[tuple[str, list[Any] | BaseException]]: ...
    def shutdown(self) -> None: ...


@dataclass
class ControllerSettings:
    experiment_name: str
    experiment_path: str
    trainable_name: str
    metric: str | None = None
    mode: str | None = None
    resources: Callable[[dict[str, Any]], dict[str, float]] = lambda config: {"CPU": 1.0}
    stopper: Callable[[str, dict[str, Any]], bool] | None = None
    stop_all: Callable[[], bool] | None = None
    stop_criteria: dict[str, float] = field(default_factory=dict)  # also checked in the actor
    max_failures: int = 0
    fail_fast: bool | str = False
    trial_name_creator: Callable[[Trial], str] | None = None
    trial_dirname_creator: Callable[[Trial], str] | None = None
    max_concurrent_trials: int = 0
    time_budget_s: float | None = None
    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool = False
    callbacks: list[Callback] = field(default_factory=list)
    may_run_ahead: bool = False
    # Ran by Tuner.fit() to leave a state that Tuner.restore() can go on from.
    write_state: bool = True


class _Run:
    """A trial whose code is running in an actor."""

    __slots__ = ("ending", "ending_since", "save_next", "results")

    def __init__(self) -> None:
        self.ending: str | None = None  # STOP or PAUSE once the controller ended the trial
        self.ending_since = 0.0
        self.save_next = False
        self.results = 0


class TuneController:
    """Runs one experiment to its end (``run``), one ``step`` at a time."""

    def __init__(
        self,
        executor: TrialExecutor,
        search_alg: SearchAlgorithm,
        scheduler: TrialScheduler,
        settings: ControllerSettings,
        trials: list[Trial] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._executor = executor
        self._search = search_alg
        self._scheduler = scheduler
        self._settings = settings
        self._clock = clock
        self._trials: list[Trial] = list(trials or [])
        self._by_id = {t.trial_id: t for t in self._trials}
        self._runs: dict[str, _Run] = {}
        self._iteration = 0
        self._started = clock()
        self._uid = uuid.uuid4().hex[:5]
        self._counter = len(self._trials)
        self._saved_state_at = clock()
        self._state_file = os.path.join(
            settings.experiment_path,
            f"{STATE_FILE_PREFIX}-{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}.json",
        )
        self._interrupted = threading.Event()
        self._changed = True
        self._checked_metric: set[str] = set()

    # ------------------------------------------------------------------ SchedulerContext

    def get_trials(self) -> list[Trial]:
        return self._trials

    def get_live_trials(self) -> list[Trial]:
        return [t for t in self._trials if not t.is_finished()]

    def stop_trial(self, trial: Trial) -> None:
        if trial.is_finished():
            return
        self._end_run(trial, STOP)
        trial.status = Trial.TERMINATED
        if trial.path is not None:
            os.makedirs(trial.path, exist_ok=True)  # a trial that never ran has a folder too
        self._scheduler.on_trial_complete(self, trial, trial.last_result)
        self._search.on_trial_complete(trial.trial_id, trial.last_result)
        self._call("on_trial_complete", trial=trial)

    def pause_trial(self, trial: Trial, should_checkpoint: bool = True) -> None:
        if trial.status == Trial.RUNNING:
            self._end_run(trial, PAUSE if should_checkpoint else STOP)
        if trial.status in (Trial.RUNNING, Trial.PENDING):
            trial.status = Trial.PAUSED

    def resume_trial(self, trial: Trial) -> None:
        if trial.status == Trial.PAUSED:
            trial.status = Trial.PENDING

    def request_checkpoint(self, trial: Trial) -> None:
        run = self._runs.get(trial.trial_id)
        if run is not None and run.ending is None:
            run.save_next = True

    def _end_run(self, trial: Trial, how: str) -> None:
        run = self._runs.get(trial.trial_id)
        if run is not None and run.ending is None:
            run.ending = how
            run.ending_since = self._clock()
            self._executor.stop(trial.trial_id, save=how == PAUSE)

    # ------------------------------------------------------------------ the loop

    def run(self) -> list[Trial]:
        """Run to the end; Ctrl-C ends the experiment cleanly (a second one at once)."""
        self._call_setup()
        restore = _on_sigint(self._interrupted.set)
        try:
            while not self.is_finished() and not self._interrupted.is_set():
                self.step()
        finally:
            restore()
            self._finish()
        return self._trials

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    def step(self) -> None:
        self._iteration += 1
        self._call("on_step_begin")
        self._start_trials()
        timeout = 0.5 if self._runs else 0.05
        news = self._executor.wait(timeout)
        if not news and not self._runs and self._waiting_for_resources():
            time.sleep(timeout)  # nothing runs and nothing fits: poll the cluster's resources
        for trial_id, items in news:
            self._on_news(self._by_id[trial_id], items)
            self._changed = True
        self._check_limits()
        self._call("on_step_end")
        if (
            self._settings.write_state
            and self._changed
            and self._clock() - self._saved_state_at >= STATE_PERIOD_S
        ):
            self.save_state()

    def is_finished(self) -> bool:
        if self._runs:
            return False
        if any(t.status == Trial.PENDING for t in self._trials):
            return False
        if not self._search.is_finished() and not self._stopped_all:
            return False
        # Paused trials that no scheduler resumes would wait forever: they stay PAUSED.
        return self._scheduler.choose_trial_to_run(self) is None

    _stopped_all = False

    def _waiting_for_resources(self) -> bool:
        return any(t.status == Trial.PENDING for t in self._trials)

    # ------------------------------------------------------------------ starting trials

    def _start_trials(self) -> None:
        self._add_trials()
        limit = self._settings.max_concurrent_trials
        while not self._stopped_all:
            if limit and len(self._runs) >= limit:
                return
            trial = self._scheduler.choose_trial_to_run(self)
            if trial is None or trial.trial_id in self._runs:
                return  # nothing to start, or the chosen trial's actor is still ending
            if not self._executor.can_start(trial.resources):
                return
            self._start(trial)

    def _add_trials(self) -> None:
        if self._stopped_all:
            return
        cap = (
            MAX_PENDING_SUGGESTIONS if self._search.total_samples is None else MAX_PENDING_VARIANTS
        )
        pending = sum(1 for t in self._trials if t.status == Trial.PENDING)
        for _ in range(min(cap - pending, NEW_TRIALS_PER_STEP)):
            if self._new_trial() is None:
                return

    def search_finished(self) -> bool:
        """Whether every trial the search algorithm will make exists already."""
        return self._stopped_all or self._search.is_finished()

    def _new_trial(self) -> Trial | None:
        if self._search.is_finished():
            return None
        trial_id = f"{self._uid}_{self._counter:05d}"
        suggestion = self._search.next_trial(trial_id)
        if suggestion is None:
            return None
        self._counter += 1
        s = self._settings
        resources = _normalize_resources(s.resources(suggestion.config))
        if not self._executor.fits_a_node(resources):
            raise TuneError(
                f"a trial asks for {resources}, more than any node of the cluster has "
                f"(see ember.cluster_resources()); give trials fewer resources with "
                "tune.with_resources(trainable, {...}) or add nodes"
            )
        trial = Trial(
            s.trainable_name,
            config=suggestion.config,
            trial_id=trial_id,
            experiment_tag=suggestion.experiment_tag,
            evaluated_params=suggestion.evaluated_params,
            resources=resources,
            stopping_criterion=s.stop_criteria,
            max_failures=s.max_failures,
        )
        if s.trial_name_creator is not None:
            trial.custom_trial_name = str(s.trial_name_creator(trial))
        dirname = (s.trial_dirname_creator or _trial_dirname)(trial)
        trial.path = os.path.join(s.experiment_path, dirname)
        self._trials.append(trial)
        self._by_id[trial_id] = trial
        self._scheduler.on_trial_add(self, trial)
        return trial

    def _start(self, trial: Trial) -> None:
        checkpoint = _existing(trial.restore_from or trial.checkpoint)
        trial.restore_from = None
        s = self._settings
        start = TrialStart(
            trial_id=trial.trial_id,
            trial_name=str(trial),
            experiment_name=s.experiment_name,
            experiment_tag=trial.experiment_tag,
            trial_dir=trial.path or "",
            config=trial.config,
            resources=trial.resources,
            checkpoint=pack(checkpoint.path) if checkpoint is not None else None,
            resume_from=_checkpoint_metrics(checkpoint),
            may_run_ahead=s.may_run_ahead,
            stop_criteria=s.stop_criteria,
            checkpoint_frequency=s.checkpoint_frequency,
            checkpoint_at_end=s.checkpoint_at_end,
        )
        os.makedirs(trial.path or "", exist_ok=True)
        self._executor.start(trial.trial_id, trial.resources, start)
        self._runs[trial.trial_id] = _Run()
        trial.status = Trial.RUNNING
        if trial.start_time is None:
            trial.start_time = time.time()
        self._call("on_trial_start", trial=trial)
        if checkpoint is not None:
            self._call("on_trial_restore", trial=trial)

    # ------------------------------------------------------------------ a trial's news

    def _on_news(self, trial: Trial, items: list[Event] | BaseException) -> None:
        run = self._runs[trial.trial_id]
        if isinstance(items, BaseException):
            # The actor died, or its answer could not travel (a result that does not pickle):
            # either way its process is not reused.
            self._on_failure(trial, _describe(items), items, reusable=False)
            return
        decision = CONTINUE
        for event in items:
            if event.kind == "result":
                if run.ending is None and self._runs.get(trial.trial_id) is run:
                    decision = self._on_result(trial, run, event)
            elif event.kind == "checkpoint":
                if event.checkpoint is not None:
                    self._persist(trial, event.checkpoint, event.result or {})
            elif event.kind == "error":
                self._on_failure(trial, event.error or "", event.exception, reusable=True)
                return
            else:  # "done" or "stopped": the trial's code has ended
                self._executor.release(trial.trial_id)
                del self._runs[trial.trial_id]
                if trial.status == Trial.RUNNING:
                    trial.last_result = {**trial.last_result, DONE: True}
                    self.stop_trial(trial)
                return
        if run.ending is not None:
            self._executor.poll(trial.trial_id, run.ending)
            return
        if run.save_next and decision == CONTINUE:
            decision = SAVE
        run.save_next = False
        self._executor.poll(trial.trial_id, decision)

    def _on_result(self, trial: Trial, run: _Run, event: Event) -> str:
        result = event.result or {}
        result[CONFIG] = trial.config
        if run.results == 0:
            self._check_metric(result)
        run.results += 1
        if event.checkpoint is not None:
            self._persist(trial, event.checkpoint, result)
        else:
            result[CHECKPOINT_DIR_NAME] = None
        trial.update_last_result(result)
        stopper = self._settings.stopper
        if (stopper is not None and stopper(trial.trial_id, result)) or result.get(DONE):
            self._call("on_trial_result", trial=trial, result=result)
            self.stop_trial(trial)
            return STOP
        self._search.on_trial_result(trial.trial_id, result)
        self._call("on_trial_result", trial=trial, result=result)
        action = self._scheduler.on_trial_result(self, trial, result)
        if action == TrialScheduler.STOP:
            self.stop_trial(trial)
        elif action == TrialScheduler.PAUSE:
            self.pause_trial(trial)
        return run.ending or CONTINUE

    def _check_metric(self, result: dict[str, Any]) -> None:
        metric = self._settings.metric
        if metric is None or metric in self._checked_metric:
            return
        if metric not in result:
            reported = sorted(k for k in result if k != CONFIG)
            raise TuneError(
                f"the trainable's results do not include the metric {metric!r} that "
                f"TuneConfig(metric=...) names; it reported {reported}. Report it "
                f"(tune.report({{{metric!r}: ...}})) or set metric to one of these"
            )
        self._checked_metric.add(metric)

    def _on_failure(self, trial: Trial, error: str, exception: Any, *, reusable: bool) -> None:
        self._executor.release(trial.trial_id, reusable=reusable)
        del self._runs[trial.trial_id]
        if trial.status != Trial.RUNNING:
            return  # it had been stopped or paused already
        trial.num_failures += 1
        max_failures = trial.max_failures
        if max_failures < 0 or trial.num_failures <= max_failures:
            trial.status = Trial.PENDING
            trial.restore_from = trial.checkpoint
            self._call("on_trial_recover", trial=trial)
            return
        trial.status = Trial.ERROR
        trial.error_msg = error
        trial.error = exception if isinstance(exception, BaseException) else None
        if trial.path is not None:
            with open(os.path.join(trial.path, EXPR_ERROR_FILE), "a", encoding="utf-8") as f:
                f.write(f"Failure # {trial.num_failures} (occurred at {datetime.now()})\n{error}\n")
            if exception is not None:
                try:
                    data = pickle.dumps(exception)
                except Exception:
                    data = None
                if data is not None:
                    with open(os.path.join(trial.path, EXPR_ERROR_PICKLE_FILE), "wb") as f:
                        f.write(data)
        self._scheduler.on_trial_error(self, trial)
        self._search.on_trial_complete(trial.trial_id, trial.last_result or None, error=True)
        self._call("on_trial_error", trial=trial)
        if self._settings.fail_fast:
            self.stop_all()
            if self._settings.fail_fast == "raise":
                raise trial.error or TuneError(f"trial {trial} failed:\n{error}")

    # ------------------------------------------------------------------ checkpoints

    def _persist(self, trial: Trial, data: bytes, result: dict[str, Any]) -> None:
        """Write a checkpoint that came from the trial's actor into the trial's folder."""
        assert trial.path is not None
        index = len(trial.checkpoint_history) + trial.checkpoints_deleted
        name = f"checkpoint_{index:06d}"
        checkpoint = unpack(data, os.path.join(trial.path, name))
        metrics = {k: v for k, v in result.items() if k != CONFIG}
        with open(os.path.join(checkpoint.path, _CHECKPOINT_STATE), "w", encoding="utf-8") as f:
            json.dump(
                {
                    k: metrics[k]
                    for k in (TRAINING_ITERATION, TIME_TOTAL_S, TIMESTEPS_TOTAL, EPISODES_TOTAL)
                    if k in metrics
                },
                f,
            )
        result[CHECKPOINT_DIR_NAME] = name
        trial.checkpoint = checkpoint
        trial.checkpoint_history.append((checkpoint, metrics))
        self._prune_checkpoints(trial)
        self._call("on_checkpoint", trial=trial, checkpoint=checkpoint)
        self._call("on_trial_save", trial=trial)

    def _prune_checkpoints(self, trial: Trial) -> None:
        keep = self._settings.num_to_keep
        history = trial.checkpoint_history
        if not keep or len(history) <= keep:
            return
        attribute = self._settings.checkpoint_score_attribute
        # The latest is always kept (a restore starts from it), and so is one that a trial
        # is about to start from (a PBT clone's donor checkpoint).
        wanted = {t.restore_from.path for t in self._trials if t.restore_from is not None}
        candidates = [entry for entry in history[:-1] if entry[0].path not in wanted]
        if not candidates:
            return
        if attribute is None:
            doomed = candidates[0]  # the oldest
        else:
            sign = 1.0 if self._settings.checkpoint_score_order == "max" else -1.0

            def score(entry: tuple[Checkpoint, dict[str, Any]]) -> float:
                value = entry[1].get(attribute)
                return sign * float(value) if isinstance(value, (int, float)) else -float("inf")

            doomed = min(candidates, key=score)
        history.remove(doomed)
        trial.checkpoints_deleted += 1
        shutil.rmtree(doomed[0].path, ignore_errors=True)

    # ------------------------------------------------------------------ limits and the end

    def _check_limits(self) -> None:
        now = self._clock()
        for trial_id, run in list(self._runs.items()):
            grace = PAUSE_GRACE_S if run.ending == PAUSE else STOP_GRACE_S
            if run.ending is not None and now - run.ending_since > grace:
                self._executor.release(trial_id, reusable=False)
                del self._runs[trial_id]
        s = self._settings
        over_budget = s.time_budget_s is not None and now - self._started >= s.time_budget_s
        if over_budget or (s.stop_all is not None and s.stop_all()):
            self.stop_all()

    def stop_all(self) -> None:
        """End the experiment: every live trial stops, and no new one is made."""
        self._stopped_all = True
        self._search.set_finished()
        for trial in self._trials:
            if not trial.is_finished():
                self.stop_trial(trial)

    def _finish(self) -> None:
        try:
            self._executor.shutdown()
            for trial_id in list(self._runs):
                trial = self._by_id[trial_id]
                if trial.status == Trial.RUNNING:  # interrupted: it resumes on restore
                    trial.status = Trial.PENDING if self.interrupted else trial.status
            self._runs.clear()
        finally:
            if self._settings.write_state:
                self.save_state()
            self._call_end()

    def save_state(self) -> None:
        """Write what Tuner.restore needs: the trials and the search algorithm's state."""
        self._saved_state_at = self._clock()
        self._changed = False
        state = {
            "trials": [_trial_summary(t) for t in self._trials],
            "timestamp": time.time(),
            # cloudpickle: configs may hold functions (a lambda env creator, sample_from).
            "pickled": base64.b64encode(
                cloudpickle.dumps(
                    {
                        "trials": self._trials,
                        "search": self._search.get_state(),
                        "scheduler": self._scheduler.get_state(),
                        "counter": self._counter,
                        "uid": self._uid,
                    }
                )
            ).decode("ascii"),
        }
        tmp = self._state_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f, default=repr)
        os.replace(tmp, self._state_file)

    def restore_state(self, state: dict[str, Any]) -> None:
        self._counter = state["counter"]
        self._uid = state["uid"]
        self._search.set_state(state["search"])
        self._scheduler.set_state(state["scheduler"])

    # ------------------------------------------------------------------ callbacks

    def _call(self, hook: str, **kwargs: Any) -> None:
        for callback in self._settings.callbacks:
            getattr(callback, hook)(iteration=self._iteration, trials=self._trials, **kwargs)

    def _call_setup(self) -> None:
        for callback in self._settings.callbacks:
            callback.setup(
                stop=self._settings.stopper, total_num_samples=self._search.total_samples
            )

    def _call_end(self) -> None:
        for callback in self._settings.callbacks:
            callback.on_experiment_end(trials=self._trials)


def load_state(experiment_path: str) -> dict[str, Any] | None:
    """The newest saved state of an experiment, or None."""
    try:
        names = sorted(
            n
            for n in os.listdir(experiment_path)
            if n.startswith(STATE_FILE_PREFIX) and n.endswith(".json")
        )
    except FileNotFoundError:
        return None
    if not names:
        return None
    with open(os.path.join(experiment_path, names[-1]), encoding="utf-8") as f:
        raw = json.load(f)
    state: dict[str, Any] = pickle.loads(base64.b64decode(raw["pickled"]))
    return state


def _on_sigint(handler: Callable[[], None]) -> Callable[[], None]:
    """Route the first Ctrl-C to ``handler`` (the experiment ends at its next step) and the
    second to Python's default; returns a function that puts the old handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        print(
            "\nStopping the experiment at its next step (Ctrl-C again to stop at once); "
            "its state is saved, so Tuner.restore() can resume it.",
            flush=True,
        )
        signal.signal(signal.SIGINT, signal.default_int_handler)
        handler()

    signal.signal(signal.SIGINT, on_sigint)

    def restore() -> None:
        signal.signal(signal.SIGINT, previous)

    return restore


def _normalize_resources(resources: dict[str, Any]) -> dict[str, float]:
    """``{"cpu": 1, "gpu": 0.5, "custom": 1}`` (Tune's spelling) as Ember's resource names."""
    out: dict[str, float] = {}
    for key, value in resources.items():
        name = {"cpu": "CPU", "gpu": "GPU"}.get(key, key)
        if not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"resource {key!r} must be a number >= 0, not {value!r}")
        out[name] = float(value)
    out.setdefault("CPU", 1.0 if not out else 0.0)
    return out


def _trial_dirname(trial: Trial) -> str:
    tag = "".join(c if c.isalnum() or c in "=.,_-" else "_" for c in trial.experiment_tag)[:100]
    date = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return "_".join(p for p in (trial.trainable_name, trial.trial_id, tag, date) if p)


def _existing(checkpoint: Checkpoint | None) -> Checkpoint | None:
    """The checkpoint if its folder exists, else the newest one kept beside it: a state saved
    before ``num_to_keep`` pruned (and the driver was killed) names a deleted one."""
    if checkpoint is None or os.path.isdir(checkpoint.path):
        return checkpoint
    folder = os.path.dirname(checkpoint.path)
    try:
        names = sorted(n for n in os.listdir(folder) if n.startswith("checkpoint_"))
    except FileNotFoundError:
        return None
    return Checkpoint(os.path.join(folder, names[-1])) if names else None


def _checkpoint_metrics(checkpoint: Checkpoint | None) -> dict[str, Any]:
    if checkpoint is None:
        return {}
    try:
        with open(os.path.join(checkpoint.path, _CHECKPOINT_STATE), encoding="utf-8") as f:
            return dict(json.load(f))
    except FileNotFoundError:
        return {}


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _trial_summary(trial: Trial) -> dict[str, Any]:
    return {
        "trial_id": trial.trial_id,
        "status": trial.status,
        "config": trial.config,
        "last_result": {k: v for k, v in trial.last_result.items() if k != CONFIG},
        "path": trial.path,
        "checkpoint": trial.checkpoint.path if trial.checkpoint is not None else None,
        "num_failures": trial.num_failures,
        "error": trial.error_msg,
    }
