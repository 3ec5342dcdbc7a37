"""The actor that runs trials: one at a time, each on a thread of its own, so that the driver
can ``poll`` for results and ``stop`` the trial while its code runs. The actor holds the
trial's resources; the controller reuses it for the next trial of the same shape."""

from __future__ import annotations

import contextvars
import inspect
import pickle
import shutil
import tempfile
import threading
import traceback
from typing import Any

from ember.tune.result import DONE, SHOULD_CHECKPOINT
from ember.tune.trainable.checkpoint import Checkpoint, pack
from ember.tune.trainable.session import (
    Event,
    Session,
    StopTrial,
    TrialStart,
    node_ip,
    set_session,
)
from ember.tune.trainable.trainable import Trainable


class TrialActor:
    def __init__(self) -> None:
        self._session: Session | None = None
        self._node_ip = node_ip()

    def run(self, trainable: Any, start: TrialStart) -> list[Event]:
        """Start a trial (the previous one has ended) and return its first news; the
        trainable comes through the object store, put there once per experiment."""
        session = Session(start, self._node_ip)
        self._session = session
        # The thread runs in this call's context, so that the trial's code sees its actor's
        # GPUs and runtime context (ember.get_gpu_ids(), get_runtime_context()).
        context = contextvars.copy_context()
        threading.Thread(
            target=context.run,
            args=(self._run, trainable, session),
            name=f"trial-{start.trial_id}",
            daemon=True,
        ).start()
        return session.poll("continue")

    def poll(self, trial_id: str, decision: str) -> list[Event]:
        """The trial's news since the last poll, after passing it the driver's decision."""
        session = self._session
        if session is None or session.start.trial_id != trial_id:
            raise RuntimeError(f"this actor does not run trial {trial_id}")
        return session.poll(decision)

    def stop(self, trial_id: str, save: bool = False) -> None:
        """End the trial at its next report (saving a checkpoint first if ``save``)."""
        session = self._session
        if session is not None and session.start.trial_id == trial_id:
            session.stop(save)

    # ------------------------------------------------------------------ the trial's thread

    def _run(self, trainable: Any, session: Session) -> None:
        set_session(session)
        trial_id = session.start.trial_id
        try:
            if isinstance(trainable, type) and issubclass(trainable, Trainable):
                _run_class(trainable, session)
            else:
                _run_function(trainable, session)
            session.post(Event("done", trial_id))
        except StopTrial:
            session.post(Event("stopped", trial_id))
        except BaseException as exc:
            session.post(
                Event("error", trial_id, error=traceback.format_exc(), exception=_portable(exc))
            )
        finally:
            session.close()
            set_session(None)


def _portable(exc: BaseException) -> BaseException | None:
    """The exception itself if it can travel to the driver (its traceback always does)."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return None
    return exc


def _run_function(fn: Any, session: Session) -> None:
    """A function trainable: ``f(config)`` reporting through ``tune.report``, or the seed's
    ``f(config, reporter)`` reporting through ``reporter(**metrics)``; a dict it returns is
    its last result."""
    config = dict(session.start.config)
    kwargs: dict[str, Any] = {}
    params = _parameters(fn)
    if "checkpoint_dir" in params:  # Ray 1.x's form
        restored = session.restored_checkpoint()
        kwargs["checkpoint_dir"] = restored.path if restored is not None else None
    if _takes_reporter(params):
        returned = fn(config, lambda **metrics: session.report(metrics), **kwargs)
    else:
        returned = fn(config, **kwargs)
    if isinstance(returned, dict):
        session.report(returned)


def _takes_reporter(params: dict[str, inspect.Parameter]) -> bool:
    """The seed's ``f(config, reporter)``: a parameter named ``reporter``, or a second
    positional one without a default (``f(config, epochs=3)`` is called with the config)."""
    if "reporter" in params:
        return True
    positional = [
        p
        for p in params.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "checkpoint_dir"
    ]
    return len(positional) >= 2 and positional[1].default is inspect.Parameter.empty


def _parameters(fn: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}


def _run_class(cls: type[Trainable], session: Session) -> None:
    start = session.start
    trainable = cls(
        start.config, trial_id=start.trial_id, trial_name=start.trial_name, logdir=start.trial_dir
    )
    try:
        restored = session.restored_checkpoint()
        if restored is not None:
            trainable.restore(restored.path)
        trainable._iteration = session.iteration
        session.saves_on_request = True
        try:
            while True:
                result = trainable.train()
                done = bool(result.get(DONE))
                save = (
                    bool(result.pop(SHOULD_CHECKPOINT, False))
                    or (
                        start.checkpoint_frequency
                        and trainable.iteration % start.checkpoint_frequency == 0
                    )
                    or (done and start.checkpoint_at_end)
                )
                if save:
                    with _saved(trainable) as checkpoint:
                        session.report(result, checkpoint)
                else:
                    session.report(result)
                if session.take_decision() == "save":
                    _post_checkpoint(trainable, session)
                if done:
                    return
        except StopTrial:
            wants = session.save_on_stop or start.checkpoint_at_end
            if wants and not session.last_report_saved:  # its last result brought one already
                _post_checkpoint(trainable, session)
            raise
    finally:
        trainable.stop()


class _saved:
    """A checkpoint of the trainable in a temporary folder, removed after use."""

    def __init__(self, trainable: Trainable) -> None:
        self._trainable = trainable
        self._path = ""

    def __enter__(self) -> Checkpoint:
        self._path = self._trainable.save(tempfile.mkdtemp(prefix="tune-save-"))
        return Checkpoint(self._path)

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self._path, ignore_errors=True)


def _post_checkpoint(trainable: Trainable, session: Session) -> None:
    with _saved(trainable) as checkpoint:
        session.post(
            Event(
                "checkpoint",
                session.start.trial_id,
                result=session.last_result,
                checkpoint=pack(checkpoint.path),
            )
        )
