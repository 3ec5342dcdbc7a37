"""The records a CoreClient keeps: objects, tasks, actors, and small helpers. (A task's
lease is ``_core.task_leases``'s record.)"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ember import exceptions as exc
from ember._core import actor_calls, task_leases
from ember._core.retry import should_retry_error
from ember._protocol.messages import INLINE, ReturnValue
from ember._runtime import serialization
from ember._runtime.object_ref import ObjectRef

ACTOR = 3  # object-table kind for an actor id (counted like objects, killed when unreferenced)


class _Obj:
    """What this process knows of one object (or actor id)."""

    __slots__ = (
        "ready",
        "kind",
        "data",
        "owned",
        "owner",
        "refs",
        "shared",
        "promoted",
        "released",
        "fetching",
        "waiters",
        "contained",
        "detached",
        "pins",
        "where",
        "lineage",
    )

    def __init__(self, owned: bool, owner: bytes) -> None:
        self.ready = False
        self.kind = INLINE
        self.data: Any = None
        self.owned = owned
        self.owner = owner
        self.refs = 0
        self.shared = False
        self.promoted = False
        self.released = False
        self.fetching = False
        self.waiters: list[Callable[[], None]] | None = None
        self.contained: Sequence[Sequence[bytes]] | None = None  # [id, owner] of refs inside
        self.detached = False
        self.pins: list[Any] | None = None
        self.where = b""  # for a stored value on another node: that node's id
        self.lineage: Any = None  # the task that made it, to run again if that node dies


class _Task(task_leases.Task):
    """A submitted task: what the lease machine decides on (``Task``), and what it runs."""

    __slots__ = (
        "fn_id",
        "blob",
        "args_ref",
        "dep_refs",
        "deps",
        "missing",
        "num_returns",
        "backpressure",
        "return_ids",
        "retry_exceptions",
        "handler",
        "actor",
        "pins",
        "parent",
        "namespace",
        "task_events",
        "ran",
        "concurrency_group",
        "captures",
    )

    # Set by ``TaskSubmitter.new_task``, its only maker (and the submit that calls it); a
    # task is made per call, so no ``__init__`` here sets defaults first.
    fn_id: bytes
    blob: bytes
    args_ref: bytes  # its arguments, when too large to go inline: a stored object's id
    dep_refs: list[ObjectRef]
    deps: list[list[Any]]  # the top-level ref arguments' values (or store ids), once ready
    missing: int  # top-level ref arguments not ready yet
    num_returns: int  # or DYNAMIC or STREAMING (a generator task: one return object)
    backpressure: int  # a generator task's _generator_backpressure_num_objects (-1: none)
    return_ids: list[bytes]
    retry_exceptions: Any
    pins: list[Any]  # refs kept alive while the task may need them
    parent: bytes
    namespace: str  # the submitter's, as it was at submission
    concurrency_group: str  # an actor call's group ("": its method's, or the default)
    captures: bool  # its placement group takes the tasks it starts (worked out once, at submit)
    handler: TaskHandler  # what its worker's answer and a cancel go to
    actor: actor_calls.Actor | None  # (an actor call's)
    # Its ``enable_task_events``: whether its life is recorded as task events.
    task_events: bool
    ran: Any  # its worker's [start, end, pid, worker id] of the run not recorded yet, or None


class TaskHandler(Protocol):
    """What decides on a submitted task once its worker answers or it is cancelled: the task
    submitter, or the actor caller for an actor call. Both called under the client lock."""

    def task_done(self, task: _Task, results: Sequence[ReturnValue]) -> None: ...

    def cancel_task(self, task: _Task, force: bool, recursive: bool) -> None: ...


class _Actor(actor_calls.Actor):
    """An actor this client calls: what the call machine knows, and the refs its
    constructor's arguments hold (alive as long as the actor is known here)."""

    __slots__ = ("pins", "creation", "limit", "running", "waiting")

    def __init__(self, actor_id: bytes, class_name: str, max_task_retries: int) -> None:
        super().__init__(actor_id, class_name, max_task_retries)
        self.pins: list[Any] = []
        self.creation = b""  # its creation task's id, until its end is recorded (task events)
        # For task events: how many calls it runs at once (its max_concurrency), this
        # process's calls sent to it that run (``started``), and those that wait behind them.
        self.limit = 1
        self.running = 0
        self.waiting: collections.deque[_Task] = collections.deque()


class _Latch:
    """Released once: when ``n`` awaited objects are ready (``n`` reaches 0), or early by
    ``wake`` (``n`` becomes -1) when the node is lost, the client closes or the waiting task
    (``task_id``, None outside tasks) is cancelled. So a blocked thread sleeps until something
    it cares about happens: with thousands of tasks blocked in nested ``get``s, periodic
    wake-ups would starve the rest. ``hit`` and ``wake`` are called under the client lock."""

    __slots__ = ("n", "_lock", "task_id", "cancelled")

    def __init__(self, n: int, task_id: bytes | None = None) -> None:
        self.n = n
        self._lock = threading.Lock()
        self._lock.acquire()
        self.task_id = task_id
        self.cancelled = False

    def hit(self) -> None:
        if self.n > 0:
            self.n -= 1
            if self.n == 0:
                self._lock.release()

    def wake(self) -> None:
        if self.n > 0:
            self.n = -1
            self._lock.release()

    def wait(self, timeout: float | None) -> bool:
        if self.n <= 0:
            return True
        return self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout))


class _Placeholder:
    """Stands for the n-th top-level ObjectRef argument; the worker swaps in the value."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return (_Placeholder, (self.index,))


def _placeholder(value: Any, refs: list[ObjectRef]) -> Any:
    if isinstance(value, ObjectRef):
        refs.append(value)
        return _Placeholder(len(refs) - 1)
    return value


_EMPTY_ARGS = serialization.serialize(((), {}))


def _retryable(task: _Task, results: Sequence[ReturnValue]) -> bool:
    """Whether the error a task failed with counts for a retry (see ``should_retry_error``);
    whether the task has one left is the lease or call machine's decision."""
    return should_retry_error(task.retry_exceptions, lambda: _cause(results[0].data))


def _cause(data: bytes) -> BaseException | None:
    try:
        err = serialization.loads(data)
    except Exception:  # an unreadable error matches no retry_exceptions class
        return None
    return err.cause if isinstance(err, exc.RayTaskError) else err
