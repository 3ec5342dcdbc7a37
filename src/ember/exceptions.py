"""Exceptions raised by Ember, named after Ray's so ``except ray.exceptions.X`` keeps working.

Every error derives from :class:`RayError` (aliased as :class:`EmberError`). All of them
pickle with their attributes intact, because errors are created in workers and re-raised in
the driver.
"""

from __future__ import annotations

import os
import signal
import threading
import traceback
from types import TracebackType
from typing import Any

__all__ = [
    "RayError",
    "EmberError",
    "RayTaskError",
    "RayActorError",
    "ActorDiedError",
    "ActorUnavailableError",
    "ActorUnschedulableError",
    "ActorPlacementGroupRemoved",
    "AsyncioActorExit",
    "GetTimeoutError",
    "TaskCancelledError",
    "ObjectRefStreamEndOfStreamError",
    "TaskUnschedulableError",
    "TaskPlacementGroupRemoved",
    "WorkerCrashedError",
    "NodeDiedError",
    "LocalRayletDiedError",
    "ObjectLostError",
    "OwnerDiedError",
    "ObjectFreedError",
    "ObjectReconstructionFailedError",
    "ObjectReconstructionFailedMaxAttemptsExceededError",
    "ObjectReconstructionFailedLineageEvictedError",
    "ReferenceCountingAssertionError",
    "ObjectFetchTimedOutError",
    "OutOfMemoryError",
    "ObjectStoreFullError",
    "OutOfDiskError",
    "RuntimeEnvSetupError",
    "RaySystemError",
    "PendingCallsLimitExceeded",
    "BlockedTasksLimitExceeded",
    "CrossLanguageError",
    "UnserializableException",
    "RayChannelError",
    "RayChannelTimeoutError",
    "RayCgraphCapacityExceeded",
]


def _rebuild_error(cls: type[BaseException], args: tuple[Any, ...]) -> BaseException:
    """Recreate an error without running ``__init__``; pickle then restores ``__dict__``.

    Skipping ``__init__`` lets every subclass keep its own friendly signature while still
    round-tripping through pickle.
    """
    obj = cls.__new__(cls, *args)
    obj.args = args  # some bases (OSError) leave args empty when __init__ is overridden
    return obj


class RayError(Exception):
    """Root of every Ember error; catch this to handle any failure raised by the runtime."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), self.args), self.__dict__.copy())

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        if state:
            self.__dict__.update(state)


EmberError = RayError


# --------------------------------------------------------------------------- task errors

_DUAL_CACHE: dict[type[BaseException], type[RayTaskError] | None] = {}
_DUAL_LOCK = threading.Lock()
# Attributes every exception has; never copied from the cause onto a dual instance.
_BASE_FIELDS = frozenset(
    {"args", "__traceback__", "__context__", "__cause__", "__suppress_context__", "__dict__"}
)


def _dual_class(cause_cls: type[BaseException]) -> type[RayTaskError] | None:
    """Return the cached ``RayTaskError(cause_cls)`` class, or None if one cannot exist."""
    with _DUAL_LOCK:
        if cause_cls in _DUAL_CACHE:
            return _DUAL_CACHE[cause_cls]
        dual: type[RayTaskError] | None
        try:
            dual = type(
                f"RayTaskError({cause_cls.__name__})",
                (RayTaskError, cause_cls),
                {
                    "__module__": __name__,
                    "__qualname__": f"RayTaskError({cause_cls.__qualname__})",
                    "__getattr__": _forward_to_cause,
                    "_ember_cause_cls": cause_cls,
                },
            )
        except Exception:  # final classes, layout or metaclass conflicts, __init_subclass__
            dual = None
        _DUAL_CACHE[cause_cls] = dual
        return dual


def _forward_to_cause(self: RayTaskError, name: str) -> Any:
    """Look up attributes the user's exception defines (e.g. ``e.code``) on the cause."""
    cause = self.__dict__.get("cause")
    if cause is None or name.startswith("__"):
        raise AttributeError(name)
    return getattr(cause, name)


def _root_cause(exc: BaseException | None) -> BaseException | None:
    """Follow nested task errors down to the exception user code actually raised."""
    seen: set[int] = set()
    while isinstance(exc, RayTaskError) and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.cause
    return exc


def _copy_builtin_fields(target: BaseException, source: BaseException) -> None:
    """Copy C-level fields (``errno``, ``code``...) that attribute forwarding cannot reach."""
    for klass in type(source).__mro__:
        if klass.__module__ != "builtins" or klass is object:
            continue
        for name, attr in vars(klass).items():
            if name in _BASE_FIELDS or not hasattr(attr, "__set__"):
                continue
            try:
                setattr(target, name, getattr(source, name))
            except (AttributeError, TypeError, ValueError):
                pass


def _instantiate_dual(dual: type[RayTaskError], args: tuple[Any, ...]) -> RayTaskError | None:
    try:
        obj = dual.__new__(dual, *args)
    except Exception:
        return None
    obj.args = args
    root = _root_cause(args[2] if len(args) > 2 else None)
    if root is not None:
        _copy_builtin_fields(obj, root)
    return obj


def _rebuild_dual(cause_cls: type[BaseException], args: tuple[Any, ...]) -> BaseException:
    dual = _dual_class(cause_cls)
    obj = _instantiate_dual(dual, args) if dual is not None else None
    return obj if obj is not None else RayTaskError.__new__(RayTaskError, *args)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """A task's traceback from its first frame outside Ember on: the frames that ran the call
    (the worker's) say nothing of the user's code, and Ray shows none. All of it when every
    frame is Ember's (a failure of Ember itself)."""
    first = tb
    while first is not None and first.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        first = first.tb_next
    return first if first is not None else tb


class RayTaskError(RayError):
    """A task or actor method raised; carries the remote traceback and the original error.

    ``ray.get`` raises ``as_instanceof_cause()`` so that ``except ValueError`` in the driver
    catches a ``ValueError`` raised remotely.
    """

    _ember_cause_cls: type[BaseException] | None = None

    def __init__(
        self,
        function_name: str,
        traceback_str: str,
        cause: BaseException | None = None,
        pid: int | None = None,
        ip: str | None = None,
        actor_repr: str | None = None,
    ) -> None:
        # Call BaseException directly: on a dual class the next __init__ in the MRO is the
        # cause's, whose signature we do not know.
        BaseException.__init__(self, function_name, traceback_str, cause, pid, ip, actor_repr)
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid
        self.ip = ip
        self.actor_repr = actor_repr
        self._message = self._format_message()

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        function_name: str,
        *,
        pid: int | None = None,
        ip: str | None = None,
        actor_repr: str | None = None,
    ) -> RayTaskError:
        """Wrap an exception caught while running a task; ``pid`` defaults to this process."""
        tb = "".join(traceback.format_exception(type(exc), exc, _user_frames(exc.__traceback__)))
        return cls(
            function_name,
            tb,
            exc,
            os.getpid() if pid is None else pid,
            ip,
            actor_repr,
        )

    def _format_message(self) -> str:
        cause = self.cause
        where = (
            f"actor method {self.function_name!r} of {self.actor_repr}"
            if self.actor_repr
            else f"task {self.function_name!r}"
        )
        place = ", ".join(
            f"{k}={v}" for k, v in (("pid", self.pid), ("ip", self.ip)) if v is not None
        )
        kind = type(_root_cause(cause) or cause).__name__ if cause is not None else "An error"
        header = f"{kind} raised in {where}" + (f" ({place})" if place else "") + ":"
        body = self.traceback_str.rstrip("\n")
        if not body and cause is not None:
            # The cause's own text already contains any nested remote traceback; add it once.
            body = "".join(traceback.format_exception_only(type(cause), cause)).rstrip("\n")
        return f"{header}\n{body}" if body else header

    def __str__(self) -> str:
        return self._message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(function_name={self.function_name!r}, cause={self.cause!r})"

    def as_instanceof_cause(self) -> RayTaskError:
        """Return an error that is both a ``RayTaskError`` and an instance of the cause's class.

        Falls back to ``self`` when the cause's class cannot be mixed in.
        """
        if type(self)._ember_cause_cls is not None:
            return self
        root = _root_cause(self.cause)
        if root is None:
            return self
        cause_cls = type(root)
        if issubclass(RayTaskError, cause_cls):
            return self
        dual = _dual_class(cause_cls)
        if dual is None:
            return self
        obj = _instantiate_dual(dual, self.args)
        if obj is None:
            return self
        obj.__dict__.update(self.__dict__)
        obj.__traceback__ = self.__traceback__
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        cause_cls = type(self)._ember_cause_cls
        if cause_cls is not None:
            return (_rebuild_dual, (cause_cls, self.args), self.__dict__.copy())
        return super().__reduce__()


# -------------------------------------------------------------------------- actor errors


class RayActorError(RayError):
    """The actor could not run this call: it is dead or unreachable.

    Catch this to handle both :class:`ActorDiedError` and :class:`ActorUnavailableError`.
    """

    _default_msg = "The actor experienced an error before finishing this task."

    def __init__(
        self,
        actor_id: str | None = None,
        error_msg: str | None = None,
        actor_init_failed: bool = False,
        preempted: bool = False,
    ) -> None:
        self.actor_id = actor_id
        self.error_msg = error_msg or self._default_msg
        self._actor_init_failed = actor_init_failed
        self.preempted = preempted
        super().__init__(self.error_msg)

    @property
    def actor_init_failed(self) -> bool:
        """True when the actor's ``__init__`` raised, so it never became usable."""
        return self._actor_init_failed


class ActorDiedError(RayActorError):
    """The actor's process is gone, or the actor was killed, before this call finished.

    ``cause`` is the constructor's error when ``__init__`` raised, or a clause that says what
    happened (and what to do), as the node that manages the actor tells it.
    """

    def __init__(
        self,
        cause: BaseException | str | None = None,
        *,
        actor_id: str | None = None,
        class_name: str | None = None,
        preempted: bool = False,
    ) -> None:
        self.cause = cause
        self.class_name = class_name
        who = "The actor"
        if class_name or actor_id:
            details = ", ".join(
                x for x in (class_name, f"id={actor_id}" if actor_id else None) if x
            )
            who = f"The actor ({details})"
        init_failed = isinstance(cause, RayTaskError)
        if init_failed:
            msg = (
                f"{who} died because its constructor (__init__) raised an error, so it cannot "
                f"run any method. Fix the error below and create the actor again.\n{cause}"
            )
        elif isinstance(cause, str) and cause:
            msg = f"{who} died before finishing this task: {_sentence(cause)}"
        elif isinstance(cause, BaseException):
            msg = f"{who} died before finishing this task: {cause!r}."
        else:
            msg = (
                f"{who} died unexpectedly before finishing this task. If the actor should "
                "survive failures, create it with max_restarts > 0 (and max_task_retries > 0 "
                "to retry its pending calls)."
            )
        super().__init__(
            actor_id=actor_id, error_msg=msg, actor_init_failed=init_failed, preempted=preempted
        )


def _sentence(text: str) -> str:
    """End a clause with a full stop (not one that ends with a traceback)."""
    return text if text.endswith(".") or "\n" in text else f"{text}."


def describe_exit(returncode: int | None) -> str:
    """How a process ended, from its status as ``Popen.returncode`` has it (a signal as its
    negative number): "exited with code 3", "was killed by signal SIGSEGV (11)"; None when
    that is not known (the process may even be running still)."""
    if returncode is None:
        return "ended (its exit status is not known)"
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        return f"was killed by signal {-returncode}"
    return f"was killed by signal {name} ({-returncode})"


class ActorUnavailableError(RayActorError):
    """The actor is unreachable for now (e.g. restarting); the call may or may not have run."""

    def __init__(self, error_message: str | None = None, actor_id: str | None = None) -> None:
        who = f"The actor {actor_id}" if actor_id else "The actor"
        msg = (
            f"{who} is temporarily unavailable"
            + (f": {error_message}." if error_message else ".")
            + " It may be restarting or its node may be unreachable; the call may or may not"
            " have executed. Retry later if the method is safe to run twice."
        )
        super().__init__(actor_id=actor_id, error_msg=msg)


class ActorUnschedulableError(RayError):
    """The actor can never be placed, e.g. its target node for node affinity is dead."""

    def __init__(self, error_message: str = "") -> None:
        self.error_message = error_message
        super().__init__(f"The actor is not schedulable: {error_message}")


class ActorPlacementGroupRemoved(RayError):
    """The placement group the actor was created in has been removed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "The placement group this actor belongs to was removed, so the actor was killed."
        )


class AsyncioActorExit(RayError):
    """Raised inside an async actor by ``exit_actor()`` to stop it on purpose."""

    def __init__(self, message: str = "The asyncio actor exited intentionally.") -> None:
        super().__init__(message)


# --------------------------------------------------------------------- task / worker errors


class GetTimeoutError(RayError, TimeoutError):
    """``get`` or ``wait`` reached its timeout before the objects were ready."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "Get timed out: some object(s) are not ready yet. Increase the timeout or use "
            "wait() to poll for finished objects."
        )


class TaskCancelledError(RayError):
    """The task was cancelled with ``cancel()`` before it produced its result."""

    def __init__(self, task_id: str | None = None, error_message: str | None = None) -> None:
        self.task_id = task_id
        self.error_message = error_message
        msg = (
            f"Task {task_id} was cancelled."
            if task_id
            else "This task or its dependency was cancelled."
        )
        if error_message:
            msg = f"{msg} {error_message}"
        super().__init__(msg)


class TaskUnschedulableError(RayError):
    """The task can never be placed, e.g. its target node for node affinity is dead."""

    def __init__(self, error_message: str = "") -> None:
        self.error_message = error_message
        super().__init__(f"The task is not schedulable: {error_message}")


class TaskPlacementGroupRemoved(RayError):
    """The placement group the task was scheduled in has been removed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message or "The placement group this task belongs to was removed before it finished."
        )


class WorkerCrashedError(RayError):
    """The worker process died while running the task (segfault, ``os._exit``, OOM kill...).

    ``pid``, ``exit_code`` (a signal as its negative number) and ``log_path`` say which process
    it was and how it ended, when its node could tell.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        task_name: str | None = None,
        pid: int | None = None,
        exit_code: int | None = None,
        log_path: str | None = None,
        log_note: str | None = None,
    ) -> None:
        """``log_note``: how the message names the log, when it says more than its path
        (that it is deleted when the session ends, say)."""
        self.task_name = task_name
        self.pid = pid
        self.exit_code = exit_code
        self.log_path = log_path
        if message is None:
            task = f"task {task_name!r}" if task_name else "this task"
            if pid is None:
                message = f"The worker running {task} died unexpectedly."
            else:
                message = (
                    f"The worker running {task} died: its process (pid {pid}) "
                    f"{describe_exit(exit_code)}."
                )
            if log_path:
                message += f" Its log ends with what it printed last: {log_note or log_path}."
            message += (
                " It may have crashed in native code, called os._exit(), or been killed for "
                "using too much memory. A task is run again up to max_retries times when its "
                "worker dies: raise max_retries if the task is safe to run again."
            )
        super().__init__(message)


class NodeDiedError(RayError):
    """The node running the task or holding the actor died."""

    def __init__(self, node_id: str | None = None, message: str | None = None) -> None:
        self.node_id = node_id
        node = f"Node {node_id}" if node_id else "A node"
        super().__init__(message or f"{node} died while running this work.")


class LocalRayletDiedError(RayError):
    """The node manager this process depends on is gone; the runtime cannot continue."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "The local node manager died, so this task cannot finish. Call shutdown() and "
            "init() again to start a fresh runtime."
        )


# -------------------------------------------------------------------------- object errors


class ObjectLostError(RayError):
    """Every copy of an object is gone and it could not be recovered.

    ``detail`` says what happened, in place of the class's usual reason; ``message`` replaces
    the whole text.
    """

    _reason = "All copies of it were lost, usually because the node(s) storing it died."
    _advice = (
        "Only its owner (the process that submitted the task that made it) makes a lost object "
        "again, and only if that task ran on another node and has retries left (max_retries); "
        "objects made by put() are never made again."
    )

    def __init__(
        self,
        object_ref_hex: str = "",
        message: str | None = None,
        *,
        call_site: str = "",
        detail: str = "",
    ) -> None:
        self.object_ref_hex = object_ref_hex
        self.call_site = call_site
        if message is None:
            ref = f"object {object_ref_hex}" if object_ref_hex else "an object"
            why = f": {_sentence(detail)}" if detail else f". {self._reason}"
            message = f"Failed to retrieve {ref}{why} {self._advice}"
            if call_site:
                message += f"\nThe object was created at: {call_site}"
        super().__init__(message)


class OwnerDiedError(ObjectLostError):
    """The worker that created (owns) the object died, taking the object's metadata with it."""

    _reason = "The worker that created it (its owner) died, and objects cannot outlive their owner."
    _advice = (
        "Keep the owner alive (e.g. create the object in the driver or a long-lived actor) "
        "while the object is in use."
    )


class ObjectFreedError(ObjectLostError):
    """The object was explicitly freed and can no longer be read."""

    _reason = "It was explicitly freed."
    _advice = "Do not read objects after freeing them."


class ObjectReconstructionFailedError(ObjectLostError):
    """The object was lost and re-running the task that created it failed or was impossible."""

    _reason = "It was lost and could not be reconstructed by re-running the task that made it."
    _advice = (
        "Objects made with put() and tasks with max_retries=0 cannot be reconstructed; raise "
        "max_retries on the creating task."
    )


class ObjectReconstructionFailedMaxAttemptsExceededError(ObjectReconstructionFailedError):
    """Reconstruction stopped because the creating task ran out of retries."""

    _reason = "It was lost and the task that made it has no retries left to rebuild it."
    _advice = "Increase max_retries on the task that creates this object."


class ObjectReconstructionFailedLineageEvictedError(ObjectReconstructionFailedError):
    """Reconstruction was impossible because the object's lineage was evicted to save memory."""

    _reason = "It was lost and the record of how to rebuild it (its lineage) was evicted."
    _advice = "Keep fewer large task arguments alive, or avoid relying on reconstruction."


class ReferenceCountingAssertionError(ObjectLostError):
    """The object was deleted while still referenced: an internal reference-counting bug."""

    _reason = "It was deleted even though it was still referenced (an internal bug)."
    _advice = "Please report this with a reproducer."


class ObjectFetchTimedOutError(ObjectLostError):
    """Fetching the object from a remote node took too long."""

    _reason = "Fetching it from a remote node timed out."
    _advice = "The node holding it may be overloaded or unreachable; check network and logs."


class OutOfMemoryError(RayError):
    """The task or actor was killed because its node was running out of memory."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "The task was killed because the node is running low on memory. Run fewer "
            "tasks at once (e.g. request more num_cpus or memory per task) or use a node with "
            "more memory."
        )


class ObjectStoreFullError(RayError):
    """The object store has no room for a new object even after evicting what it could."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "The object store is full. Drop references to objects you no longer need, or "
            "start the runtime with a larger object_store_memory."
        )


class OutOfDiskError(RayError):
    """The local disk is full, so objects could not be spilled or stored."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message or "The local disk is full. Free up disk space or use a larger temp directory."
        )


class PlasmaObjectNotAvailable(RayError):
    """The object is not available locally yet (kept for Ray compatibility)."""


class UnserializableException(RayError):
    """A remote error could not be pickled; this carries its text instead."""

    def __init__(self, original_stack_trace: str = "") -> None:
        self.original_stack_trace = original_stack_trace
        super().__init__(
            "A task raised an exception that could not be serialized, so only its text is "
            f"available. Make the exception class picklable to get it back.\n{original_stack_trace}"
        )


# -------------------------------------------------------------------------- system errors


class RuntimeEnvSetupError(RayError):
    """The runtime environment for the task or actor could not be installed."""

    def __init__(self, error_message: str | None = None) -> None:
        self.error_message = error_message
        msg = "Failed to set up the runtime environment."
        if error_message:
            msg += f"\n{error_message}"
        super().__init__(msg)


class RaySystemError(RayError):
    """An internal failure of the runtime, not of user code."""

    def __init__(self, client_exc: BaseException | str, traceback_str: str | None = None) -> None:
        self.client_exc = client_exc
        self.traceback_str = traceback_str
        msg = f"System error: {client_exc}"
        if traceback_str:
            msg += f"\ntraceback: {traceback_str}"
        super().__init__(msg)


class PendingCallsLimitExceeded(RayError):
    """Too many calls are queued on one actor handle (its ``max_pending_calls``)."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "Too many calls are pending on this actor. Wait for some results before "
            "submitting more, or raise max_pending_calls in the actor's options."
        )


class BlockedTasksLimitExceeded(RayError):
    """Too many tasks wait in ``get``/``wait`` at once in one worker process (each holds a
    thread there); an Ember limit, set by ``EMBER_MAX_BLOCKED_TASKS``."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "Too many tasks are blocked in get() or wait() in this worker process. Raise "
            "EMBER_MAX_BLOCKED_TASKS, or have fewer tasks wait for the tasks they submit."
        )


class ObjectRefStreamEndOfStreamError(RayError):
    """The ref of a generator task's item that the task never yielded: it ended first."""


class CrossLanguageError(RayError):
    """An error raised by code written in another language."""

    def __init__(self, message: str = "An error was raised by code in another language.") -> None:
        super().__init__(message)


class RayChannelError(RaySystemError):
    """A compiled graph's channel failed: it was closed (``teardown``), or the process at its
    other end died."""


class RayChannelTimeoutError(RayChannelError, TimeoutError):
    """A compiled graph's ``execute`` or ``get`` waited longer than its timeout."""


class RayCgraphCapacityExceeded(RaySystemError):
    """A compiled graph holds as many results as it may buffer: ``get`` some first."""


class ActorAlreadyExistsError(ValueError, RayError):
    """An actor was created with a name another live actor of its namespace holds (a
    ``ValueError`` too, as Ray raised before it had this class)."""

    def __init__(self, error_message: str) -> None:
        self.error_message = error_message
        super().__init__(error_message)


class ActorHandleNotFoundError(ValueError, RayError):
    """``kill()`` was given a handle of an actor this cluster does not know, such as one
    kept from before ``shutdown()`` and ``init()``."""

    def __init__(self, error_message: str) -> None:
        self.error_message = error_message
        super().__init__(error_message)


class AuthenticationError(RayError):
    """The cluster refused the connection: the process did not present its token."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class UserCodeException(RayError):
    """Wraps an exception of user code (Ray Data raises it for a failing map function).
    Ember has no Ray Data, and raises ``RayTaskError`` for a failing task: it never raises
    this; it exists for ``except`` clauses."""


class OufOfBandObjectRefSerializationException(RayError):  # (Ray's spelling)
    """An ObjectRef was pickled out of band, by ``cloudpickle`` rather than inside a task's
    arguments or result, where its ownership cannot be tracked; Ember allows it, as Ray does
    by default, so it never raises this."""


class RpcError(RayError):
    """A call between processes of the cluster failed (Ray's gRPC layer raises it; Ember's
    calls fail with the error of what was called instead, so it never raises this)."""

    def __init__(self, message: str, rpc_code: int | None = None) -> None:
        self.rpc_code = rpc_code
        super().__init__(message)


class RayDirectTransportError(RaySystemError):
    """A direct transfer of a tensor between actors failed (Ray's GPU transport, which Ember
    does not have: never raised)."""


class StreamingGeneratorReplayInconsistentError(RaySystemError):
    """A retried generator task yielded a different number of items than its first attempt."""
