"""The trial's side of reporting: ``tune.report``, ``tune.get_checkpoint`` and
``tune.get_context``, and the session that turns each report into a result for the driver.

A trial's code runs on a thread of its actor; ``report`` fills in Ray's automatic metrics,
queues the result, and waits for the driver's decision on it unless the trial may run ahead
(the scheduler decides only at the end, and the last step was short: then results travel in
batches). The actor's ``poll`` hands the queue to the driver and passes its decisions back."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ember.tune.result import (
    CHECKPOINT_DIR_NAME,
    DATE,
    DONE,
    EPISODES_TOTAL,
    EXPERIMENT_TAG,
    HOSTNAME,
    ITERATIONS_SINCE_RESTORE,
    NODE_IP,
    PID,
    TIME_SINCE_RESTORE,
    TIME_THIS_ITER_S,
    TIME_TOTAL_S,
    TIMESTAMP,
    TIMESTEPS_SINCE_RESTORE,
    TIMESTEPS_TOTAL,
    TRAINING_ITERATION,
    TRIAL_ID,
)
from ember.tune.trainable.checkpoint import Checkpoint, pack

# A trial runs ahead of the driver's decisions only while its steps are this short, and by at
# most RUN_AHEAD_MAX results: what it could waste past a stop is bounded by both.
RUN_AHEAD_STEP_S = 0.002
RUN_AHEAD_MAX = 64

# The driver's decisions on a trial's results: go on, save a checkpoint and go on, end, or
# save and end (a pause: the trial resumes later from that checkpoint).
CONTINUE, SAVE, STOP, PAUSE = "continue", "save", "stop", "pause"


class StopTrial(BaseException):
    """Raised inside a trial's code by ``report`` when the driver stopped the trial; a
    BaseException so that the user's ``except Exception`` does not swallow it."""


@dataclass
class TrialStart:
    """What a trial's actor needs to run it (sent by the driver once per trial)."""

    trial_id: str
    trial_name: str
    experiment_name: str
    experiment_tag: str
    trial_dir: str
    config: dict[str, Any]
    resources: dict[str, float]
    checkpoint: bytes | None = None
    # The metrics the trial's counters resume from (those of its checkpoint's result).
    resume_from: dict[str, Any] = field(default_factory=dict)
    may_run_ahead: bool = False
    stop_criteria: dict[str, float] = field(default_factory=dict)  # checked here: no overrun
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool = False


@dataclass
class Event:
    """What a trial's actor tells the driver: a result (with the checkpoint saved with it),
    a checkpoint alone, or the end of the trial ("done", "error", "stopped")."""

    kind: str
    trial_id: str
    result: dict[str, Any] | None = None
    checkpoint: bytes | None = None
    error: str | None = None  # the traceback, for "error"
    exception: Any = None


class Session:
    """One trial's reporting state inside its actor."""

    def __init__(self, start: TrialStart, node_ip: str) -> None:
        self.start = start
        self._cond = threading.Condition()
        self._events: list[Event] = []
        self._unacked = 0
        self._decision = CONTINUE
        self._stopping = False
        self.save_on_stop = False
        self.saves_on_request = False  # a class trainable saves when the driver asks
        self.last_report_saved = False
        self._last_report = time.monotonic()
        self._last_step = 0.0
        self._started = time.monotonic()
        resume = start.resume_from
        self.iteration = int(resume.get(TRAINING_ITERATION, 0))
        self._time_total = float(resume.get(TIME_TOTAL_S, 0.0))
        self._timesteps = resume.get(TIMESTEPS_TOTAL)
        self._episodes = resume.get(EPISODES_TOTAL)
        self._timesteps_at_start = self._timesteps or 0
        self._iterations_at_start = self.iteration
        self._restored_dir: str | None = None
        self.last_result: dict[str, Any] = dict(resume)
        self._host = socket.gethostname()
        self._node_ip = node_ip
        self._pid = os.getpid()

    # ------------------------------------------------------------------ trial side

    def report(self, metrics: dict[str, Any], checkpoint: Checkpoint | None = None) -> None:
        """Queue one result (and its checkpoint), then wait for the driver if it must decide."""
        if self._stopping:
            raise StopTrial
        now = time.monotonic()
        self._last_step = now - self._last_report
        self._last_report = now
        result = self._fill(dict(metrics), self._last_step)
        data = None
        if checkpoint is not None:
            data = pack(checkpoint.path)
            result[CHECKPOINT_DIR_NAME] = f"checkpoint_{self.iteration:06d}"
        self.last_result = result
        self.last_report_saved = data is not None
        reached = self._reached_stop(result)
        self.post(Event("result", self.start.trial_id, result, data))
        if reached:
            raise StopTrial
        self._wait_for_decision(must_wait=data is not None)

    def post(self, event: Event) -> None:
        with self._cond:
            self._events.append(event)
            if event.kind == "result":
                self._unacked += 1
            self._cond.notify_all()

    def _wait_for_decision(self, must_wait: bool) -> None:
        """Wait for the driver unless the trial may run ahead; never past a checkpoint, which
        must reach the driver before the trial goes on (a crash then loses nothing saved)."""
        with self._cond:
            while self._unacked and not self._stopping and (must_wait or not self._may_go_on()):
                self._cond.wait()
            if self._stopping:
                raise StopTrial

    def _may_go_on(self) -> bool:
        return (
            self.start.may_run_ahead
            and self._last_step < RUN_AHEAD_STEP_S
            and self._unacked < RUN_AHEAD_MAX
            and self._decision != SAVE
        )

    def take_decision(self) -> str:
        """The driver's latest decision, once (the class trainable's loop acts on SAVE)."""
        with self._cond:
            decision, self._decision = self._decision, CONTINUE
            return decision

    def _fill(self, result: dict[str, Any], step_s: float) -> dict[str, Any]:
        self.iteration += 1
        self._time_total += step_s
        if TIMESTEPS_TOTAL in result:
            self._timesteps = result[TIMESTEPS_TOTAL]
        elif "timesteps_this_iter" in result:
            self._timesteps = (self._timesteps or 0) + result["timesteps_this_iter"]
        if EPISODES_TOTAL not in result and "episodes_this_iter" in result:
            self._episodes = (self._episodes or 0) + result["episodes_this_iter"]
        now = time.time()
        auto: dict[str, Any] = {
            TRAINING_ITERATION: self.iteration,
            TIME_THIS_ITER_S: step_s,
            TIME_TOTAL_S: self._time_total,
            TIMESTAMP: int(now),
            DATE: datetime.fromtimestamp(now).strftime("%Y-%m-%d_%H-%M-%S"),
            PID: self._pid,
            HOSTNAME: self._host,
            NODE_IP: self._node_ip,
            TRIAL_ID: self.start.trial_id,
            EXPERIMENT_TAG: self.start.experiment_tag,
            DONE: False,
            ITERATIONS_SINCE_RESTORE: self.iteration - self._iterations_at_start,
            TIME_SINCE_RESTORE: time.monotonic() - self._started,
            CHECKPOINT_DIR_NAME: None,
        }
        if self._timesteps is not None:
            auto[TIMESTEPS_TOTAL] = self._timesteps
            auto[TIMESTEPS_SINCE_RESTORE] = self._timesteps - self._timesteps_at_start
        if self._episodes is not None:
            auto[EPISODES_TOTAL] = self._episodes
        # The trial's metrics first, as Ray orders them (progress.csv's columns); its own
        # values win over Tune's, except for the counters Tune keeps.
        for key, value in auto.items():
            if key in (TRAINING_ITERATION, TIME_TOTAL_S) or key not in result:
                result[key] = value
        return result

    def _reached_stop(self, result: dict[str, Any]) -> bool:
        for key, threshold in self.start.stop_criteria.items():
            value = result.get(key)
            if isinstance(value, (int, float)) and value >= threshold:
                return True
        return False

    def restored_checkpoint(self) -> Checkpoint | None:
        """The checkpoint the trial starts from, unpacked into a local folder once."""
        data = self.start.checkpoint
        if data is None:
            return None
        if self._restored_dir is None:
            from ember.tune.trainable.checkpoint import unpack

            self._restored_dir = tempfile.mkdtemp(prefix="tune-restore-")
            unpack(data, self._restored_dir)
        return Checkpoint(self._restored_dir)

    def close(self) -> None:
        if self._restored_dir is not None:
            shutil.rmtree(self._restored_dir, ignore_errors=True)

    # ------------------------------------------------------------------ driver side (poll)

    def poll(self, decision: str) -> list[Event]:
        """Apply the driver's decision on what it was sent last, then wait for news."""
        with self._cond:
            if decision in (STOP, PAUSE):
                self._stopping = True
                self.save_on_stop = decision == PAUSE
            elif decision == SAVE and self.saves_on_request:
                self._decision = SAVE
            self._unacked = 0
            self._cond.notify_all()
            while not self._events:
                self._cond.wait()
            events, self._events = self._events, []
            return events

    def stop(self, save: bool = False) -> None:
        with self._cond:
            self._stopping = True
            self.save_on_stop = self.save_on_stop or save
            self._cond.notify_all()


def node_ip() -> str:
    """The address of the node this actor runs on, as ``ember.nodes()`` lists it."""
    import ember

    node_id = ember.get_runtime_context().get_node_id()
    for node in ember.nodes():
        if node["NodeID"] == node_id:
            return str(node["NodeManagerAddress"])
    return "127.0.0.1"


_local = threading.local()
_current: Session | None = None  # the process's trial (an actor runs one at a time)


def _session() -> Session | None:
    return getattr(_local, "session", None) or _current


def set_session(session: Session | None) -> None:
    global _current
    _current = session
    _local.session = session


def report(
    metrics: dict[str, Any] | None = None,
    *,
    checkpoint: Checkpoint | None = None,
    **kwargs: Any,
) -> None:
    """Report a trial's metrics (and a checkpoint) to Tune: ``tune.report({"loss": x})``.
    Keyword metrics (``tune.report(loss=x)``, Ray 1.x's form) are accepted too."""
    session = _session()
    if session is None:
        raise RuntimeError(
            "tune.report() was called outside a Tune trial; call it from the trainable "
            "function that Tuner(...).fit() or tune.run(...) runs"
        )
    if metrics is not None and not isinstance(metrics, dict):
        raise TypeError(f"tune.report() takes a dict of metrics, not {type(metrics).__name__}")
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        raise TypeError(
            "tune.report(checkpoint=...) takes a tune.Checkpoint, such as "
            f"Checkpoint.from_directory(folder), not {type(checkpoint).__name__}"
        )
    session.report({**(metrics or {}), **kwargs}, checkpoint)


def get_checkpoint() -> Checkpoint | None:
    """The checkpoint this trial resumes from (after a failure, a pause or a PBT exploit)."""
    session = _session()
    return session.restored_checkpoint() if session is not None else None


class TuneContext:
    """``tune.get_context()``: about the trial this code runs in."""

    def __init__(self, session: Session | None) -> None:
        self._start = session.start if session is not None else None

    def _field(self, name: str) -> Any:
        if self._start is None:
            return None
        return getattr(self._start, name)

    def get_trial_id(self) -> str | None:
        return self._field("trial_id")  # type: ignore[no-any-return]

    def get_trial_name(self) -> str | None:
        return self._field("trial_name")  # type: ignore[no-any-return]

    def get_trial_dir(self) -> str | None:
        return self._field("trial_dir")  # type: ignore[no-any-return]

    def get_experiment_name(self) -> str | None:
        return self._field("experiment_name")  # type: ignore[no-any-return]

    def get_trial_resources(self) -> dict[str, float]:
        return dict(self._field("resources") or {})

    def get_world_rank(self) -> int:
        return 0

    def get_local_rank(self) -> int:
        return 0

    def get_world_size(self) -> int:
        return 1


def get_context() -> TuneContext:
    return TuneContext(_session())
