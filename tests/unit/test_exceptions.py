"""Tests for ember.exceptions: hierarchy, messages, dual task errors and pickling."""

from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys
from typing import Any

import cloudpickle
import pytest

from ember import exceptions as ex


def _raise(exc: BaseException) -> None:
    raise exc


def _task_error(exc: BaseException, name: str = "compute", **kwargs: Any) -> ex.RayTaskError:
    try:
        _raise(exc)
    except BaseException as caught:
        return ex.RayTaskError.from_exception(caught, name, **kwargs)
    raise AssertionError("unreachable")


class CustomError(Exception):
    """Needs two positional args, so it cannot be rebuilt from RayTaskError's args."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


class SlottedError(Exception):
    __slots__ = ("slot_value",)

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.slot_value = value


class NewRequiresArgs(Exception):
    def __new__(cls, required: int) -> NewRequiresArgs:
        return super().__new__(cls, required)


class Unsubclassable(Exception):
    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("this exception class is final")


def _roundtrip(obj: Any, dumps: Any = pickle.dumps, loads: Any = pickle.loads) -> Any:
    return loads(dumps(obj))


# ---------------------------------------------------------------------- hierarchy


def test_single_root_and_alias() -> None:
    assert ex.EmberError is ex.RayError
    for name in ex.__all__:
        cls = getattr(ex, name)
        assert issubclass(cls, ex.RayError), name


def test_specific_subclass_relations() -> None:
    assert issubclass(ex.ActorDiedError, ex.RayActorError)
    assert issubclass(ex.ActorUnavailableError, ex.RayActorError)
    assert issubclass(ex.GetTimeoutError, TimeoutError)
    for sub in (
        ex.OwnerDiedError,
        ex.ObjectReconstructionFailedError,
        ex.ReferenceCountingAssertionError,
        ex.ObjectFetchTimedOutError,
    ):
        assert issubclass(sub, ex.ObjectLostError)


def test_get_timeout_error_caught_as_builtin_timeout() -> None:
    with pytest.raises(TimeoutError):
        raise ex.GetTimeoutError()


# ------------------------------------------------------------------------ pickling

SAMPLES: list[ex.RayError] = [
    ex.RayError("plain"),
    ex.RayActorError(actor_id="abc", error_msg="gone", actor_init_failed=True, preempted=True),
    ex.ActorDiedError("killed by ray.kill", actor_id="a1", class_name="Counter"),
    ex.ActorDiedError(),
    ex.ActorUnavailableError("node unreachable", actor_id="a2"),
    ex.ActorUnschedulableError("node is dead"),
    ex.ActorPlacementGroupRemoved(),
    ex.GetTimeoutError("timed out after 1s"),
    ex.TaskCancelledError(task_id="t1", error_message="by user"),
    ex.ObjectRefStreamEndOfStreamError("the generator ended first"),
    ex.TaskUnschedulableError("no node"),
    ex.TaskPlacementGroupRemoved(),
    ex.WorkerCrashedError(),
    ex.WorkerCrashedError(task_name="f", pid=12, exit_code=-11, log_path="/logs/w.log"),
    ex.NodeDiedError(node_id="n1"),
    ex.ObjectLostError("ff" * 14, call_site="script.py:3"),
    ex.OwnerDiedError("aa" * 14),
    ex.OwnerDiedError("aa" * 14, detail="its owner's node is gone"),
    ex.ObjectFreedError("bb" * 14),
    ex.ObjectReconstructionFailedError("cc" * 14),
    ex.ObjectReconstructionFailedMaxAttemptsExceededError("dd" * 14),
    ex.ObjectReconstructionFailedLineageEvictedError("ee" * 14),
    ex.ReferenceCountingAssertionError("01" * 14),
    ex.ObjectFetchTimedOutError("02" * 14, "custom message"),
    ex.OutOfMemoryError(),
    ex.ObjectStoreFullError(),
    ex.OutOfDiskError(),
    ex.RuntimeEnvSetupError("pip failed"),
    ex.LocalRayletDiedError(),
    ex.RaySystemError("socket closed", "tb here"),
    ex.RayChannelError("Channel closed."),
    ex.RayChannelTimeoutError("no message within 10 s"),
    ex.RayCgraphCapacityExceeded("too many buffered results"),
    ex.PendingCallsLimitExceeded(),
    ex.BlockedTasksLimitExceeded(),
    ex.AsyncioActorExit(),
    ex.CrossLanguageError("java said no"),
    ex.UnserializableException("stack"),
    ex.PlasmaObjectNotAvailable(),
]


@pytest.mark.parametrize("err", SAMPLES, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("lib", [pickle, cloudpickle], ids=["pickle", "cloudpickle"])
def test_every_error_round_trips(err: ex.RayError, lib: Any) -> None:
    back = _roundtrip(err, lib.dumps, lib.loads)
    assert type(back) is type(err)
    assert str(back) == str(err)
    assert back.args == err.args
    assert back.__dict__ == err.__dict__


def test_every_exported_class_has_a_sample() -> None:
    sampled = {type(e) for e in SAMPLES} | {ex.RayTaskError}
    exported = {getattr(ex, n) for n in ex.__all__}
    assert exported <= sampled


def test_actor_error_attributes() -> None:
    err = _roundtrip(ex.RayActorError(actor_id="x", actor_init_failed=True))
    assert err.actor_id == "x"
    assert err.actor_init_failed is True
    assert err.preempted is False
    assert "actor" in str(err).lower()


def test_actor_died_message_names_actor_and_reason() -> None:
    err = _roundtrip(ex.ActorDiedError("killed by ray.kill", actor_id="a1", class_name="Counter"))
    text = str(err)
    assert text == (
        "The actor (Counter, id=a1) died before finishing this task: killed by ray.kill."
    )
    assert "max_restarts" in str(ex.ActorDiedError())  # with no reason: the usual advice
    assert err.cause == "killed by ray.kill"
    assert err.class_name == "Counter"
    assert err.actor_id == "a1"
    assert not err.actor_init_failed


def test_actor_died_from_init_failure_embeds_task_error() -> None:
    cause = _task_error(ValueError("bad config"), "Counter.__init__")
    err = ex.ActorDiedError(cause, class_name="Counter")
    assert err.actor_init_failed
    assert "bad config" in str(err)
    back = _roundtrip(err)
    assert isinstance(back.cause, ex.RayTaskError)
    assert isinstance(back.cause.cause, ValueError)


def test_object_lost_messages_and_attributes() -> None:
    ref = "ab" * 14
    err = _roundtrip(ex.OwnerDiedError(ref, call_site="main.py:10"))
    assert err.object_ref_hex == ref
    assert err.call_site == "main.py:10"
    assert ref in str(err) and "owner" in str(err)
    assert str(ex.ObjectLostError(ref, "explicit")) == "explicit"


def test_object_lost_detail_keeps_the_id_and_the_advice() -> None:
    ref = "ab" * 14
    text = str(ex.ObjectLostError(ref, detail="the node that held it died"))
    assert text == (
        f"Failed to retrieve object {ref}: the node that held it died. {ex.ObjectLostError._advice}"
    )
    assert ex.OwnerDiedError._advice in str(ex.OwnerDiedError(ref, detail="its owner exited"))


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (3, "exited with code 3"),
        (0, "exited with code 0"),
        (-11, "was killed by signal SIGSEGV (11)"),
        (-9, "was killed by signal SIGKILL (9)"),
        (-99, "was killed by signal 99"),
        (None, "ended (its exit status is not known)"),
    ],
)
def test_describe_exit(code: int | None, text: str) -> None:
    assert ex.describe_exit(code) == text


def test_a_worker_whose_status_cannot_be_had_is_not_said_to_be_killed_by_a_signal() -> None:
    """A worker reaped elsewhere (not the node's child any more) was given exit status -1,
    which read "was killed by signal SIGHUP (1)"."""
    from ember._runtime.node.worker_pool import _Forked

    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait(timeout=30)  # reaped here, as by someone else than the node
    proc = _Forked(done.pid)
    proc.wait(timeout=30)
    assert ex.describe_exit(proc.returncode) == "ended (its exit status is not known)"
    assert proc.has_ended()


def test_the_advice_on_a_lost_object_promises_no_rebuild_it_cannot_make() -> None:
    """It said the results of tasks with retries left "are made again", for borrowers too
    and for objects lost on this node, which are never made again."""
    advice = ex.ObjectLostError._advice
    assert "Only its owner" in advice and "on another node" in advice, advice
    assert "put()" in advice, advice


def test_worker_crashed_error_says_how_the_process_ended() -> None:
    err = _roundtrip(ex.WorkerCrashedError(task_name="f", pid=12, exit_code=3, log_path="/w.log"))
    assert (err.task_name, err.pid, err.exit_code, err.log_path) == ("f", 12, 3, "/w.log")
    text = str(err)
    assert text.startswith("The worker running task 'f' died: its process (pid 12) exited with")
    assert "/w.log." in text and "max_retries" in text
    assert "died unexpectedly" in str(ex.WorkerCrashedError(task_name="f"))  # (node unknown)


def test_task_cancelled_error_keeps_task_id() -> None:
    err = _roundtrip(ex.TaskCancelledError(task_id="t9"))
    assert err.task_id == "t9"
    assert "t9" in str(err)
    assert ex.TaskCancelledError().task_id is None


def test_extra_attributes_survive_pickling() -> None:
    err = ex.WorkerCrashedError()
    err.extra = 42  # type: ignore[attr-defined]
    back = _roundtrip(err)
    assert back.extra == 42


# ---------------------------------------------------------------------- task errors


def test_from_exception_records_traceback_and_origin() -> None:
    err = _task_error(ValueError("boom"), "compute", ip="10.0.0.5")
    assert err.function_name == "compute"
    assert err.pid == os.getpid()
    assert err.ip == "10.0.0.5"
    assert isinstance(err.cause, ValueError)
    assert "Traceback" in err.traceback_str and "_raise" in err.traceback_str
    text = str(err)
    assert "compute" in text and f"pid={os.getpid()}" in text and "boom" in text
    assert "10.0.0.5" in text


def test_message_names_actor_for_method_errors() -> None:
    err = _task_error(KeyError("k"), "Counter.incr", pid=7, actor_repr="Counter(abc123)")
    text = str(err)
    assert "Counter.incr" in text and "Counter(abc123)" in text and "pid=7" in text


def test_message_without_traceback_uses_cause() -> None:
    err = ex.RayTaskError("f", "", RuntimeError("no tb"), pid=3)
    assert "RuntimeError: no tb" in str(err)
    assert ex.RayTaskError("f", "").as_instanceof_cause() is not None


def test_dual_instance_is_cause_type_and_keeps_data() -> None:
    err = _task_error(ValueError("boom"))
    dual = err.as_instanceof_cause()
    assert isinstance(dual, ValueError)
    assert isinstance(dual, ex.RayTaskError)
    assert isinstance(dual, ex.RayError)
    assert type(dual).__name__ == "RayTaskError(ValueError)"
    assert isinstance(dual.cause, ValueError)
    assert str(dual) == str(err)
    assert dual.function_name == err.function_name
    assert dual.pid == err.pid
    with pytest.raises(ValueError, match="boom"):
        raise dual


def test_dual_class_is_cached_per_cause_class() -> None:
    a = _task_error(ValueError("a")).as_instanceof_cause()
    b = _task_error(ValueError("b")).as_instanceof_cause()
    c = _task_error(KeyError("c")).as_instanceof_cause()
    assert type(a) is type(b)
    assert type(a) is not type(c)
    assert isinstance(c, KeyError) and isinstance(c, LookupError)


def test_dual_of_dual_returns_itself() -> None:
    dual = _task_error(ValueError("x")).as_instanceof_cause()
    assert dual.as_instanceof_cause() is dual


@pytest.mark.parametrize("lib", [pickle, cloudpickle], ids=["pickle", "cloudpickle"])
def test_dual_instance_pickles_as_dual(lib: Any) -> None:
    dual = _task_error(ValueError("boom"), ip="1.2.3.4").as_instanceof_cause()
    back = _roundtrip(dual, lib.dumps, lib.loads)
    assert type(back) is type(dual)
    assert isinstance(back, ValueError) and isinstance(back, ex.RayTaskError)
    assert str(back) == str(dual)
    assert isinstance(back.cause, ValueError) and back.cause.args == ("boom",)
    assert (back.function_name, back.pid, back.ip) == (dual.function_name, dual.pid, "1.2.3.4")


def test_plain_task_error_pickles() -> None:
    err = _task_error(ValueError("boom"))
    back = _roundtrip(err)
    assert type(back) is ex.RayTaskError
    assert str(back) == str(err)
    assert back.traceback_str == err.traceback_str


def test_custom_init_signature_cause() -> None:
    dual = _task_error(CustomError(404, "missing")).as_instanceof_cause()
    assert isinstance(dual, CustomError)
    assert dual.code == 404  # forwarded to the cause
    assert dual.detail == "missing"
    back = _roundtrip(dual)
    assert isinstance(back, CustomError)
    assert back.code == 404
    with pytest.raises(AttributeError):
        _ = dual.not_an_attribute


def test_slotted_cause_attributes_are_forwarded() -> None:
    dual = _task_error(SlottedError(5)).as_instanceof_cause()
    assert isinstance(dual, SlottedError)
    assert dual.slot_value == 5


def test_oserror_cause_keeps_errno_across_pickle() -> None:
    cause = OSError(errno.ENOENT, "no such file", "/missing")
    dual = ex.RayTaskError("open_it", "", cause).as_instanceof_cause()
    assert isinstance(dual, FileNotFoundError)
    assert dual.errno == errno.ENOENT
    back = _roundtrip(dual)
    assert isinstance(back, FileNotFoundError)
    assert back.errno == errno.ENOENT and back.filename == "/missing"


def test_cause_with_strict_new_falls_back_to_plain() -> None:
    err = _task_error(NewRequiresArgs(1))
    result = err.as_instanceof_cause()
    assert isinstance(result, ex.RayTaskError)
    assert isinstance(result.cause, NewRequiresArgs)


def test_unsubclassable_cause_falls_back_to_plain() -> None:
    err = _task_error(Unsubclassable("nope"))
    result = err.as_instanceof_cause()
    assert type(result) is ex.RayTaskError
    assert isinstance(result.cause, Unsubclassable)


def test_generic_cause_returns_self() -> None:
    err = _task_error(Exception("generic"))
    assert err.as_instanceof_cause() is err


def test_ray_error_cause_becomes_dual() -> None:
    err = _task_error(ex.ActorDiedError("gone"))
    dual = err.as_instanceof_cause()
    assert isinstance(dual, ex.ActorDiedError) and isinstance(dual, ex.RayTaskError)
    assert type(_roundtrip(dual)) is type(dual)


def test_nested_task_error_is_caught_by_root_cause_and_printed_once() -> None:
    inner = _task_error(ValueError("deep failure"), "inner_task").as_instanceof_cause()
    outer = _task_error(inner, "outer_task")
    assert outer.cause is inner
    dual = outer.as_instanceof_cause()
    assert isinstance(dual, ValueError)
    assert isinstance(dual.cause, ex.RayTaskError)
    text = str(dual)
    assert text.count("deep failure") == 1
    assert "inner_task" in text and "outer_task" in text
    back = _roundtrip(dual)
    assert str(back) == text
    assert isinstance(back.cause.cause, ValueError)


def test_unpickled_dual_can_be_raised_and_caught_by_cause_type() -> None:
    payload = pickle.dumps(_task_error(ZeroDivisionError("div")).as_instanceof_cause())
    with pytest.raises(ArithmeticError):
        raise pickle.loads(payload)
