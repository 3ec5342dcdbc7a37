"""The records a CoreClient keeps: objects, tasks, leases, actors, and small helpers."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from ember import exceptions as exc
from ember._core.resources import Shape, shape_dict
from ember._protocol.messages import INLINE
from ember._runtime import serialization
from ember._runtime.object_ref import ObjectRef
from ember._transport.reactor import Connection

# A lease left without tasks goes back this long after (a loop of submit-and-get reuses it
# meanwhile): until then its resources count as used in available_resources().
IDLE_LEASE_SECONDS = 0.1
MAX_LEASE_REQUESTS = 16
# When the node has no room for another lease of a shape, a lease may carry a second task
# queued behind the first: that hides the round trip between one task's end and the next
# one's start. A lease that becomes free takes such a task back if it has not started, so no
# task waits behind a long one while a worker is free. (Not for GPU tasks: a task queued
# behind a blocked one may start beside it, in the same process.)
PIPELINE_DEPTH = 2
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
        self.contained: list[list[bytes]] | None = None
        self.detached = False
        self.pins: list[Any] | None = None
        self.where = b""  # for a stored value on another node: that node's id
        self.lineage: Any = None  # the task that made it, to run again if that node dies


class _Task:
    __slots__ = (
        "task_id",
        "fn_id",
        "blob",
        "args_ref",
        "dep_refs",
        "deps",
        "missing",
        "num_returns",
        "name",
        "shape",
        "retries_left",
        "retry_exceptions",
        "cancelled",
        "actor",
        "lease",
        "return_ids",
        "pins",
        "ready",
        "conn",
        "parent",
        "on_error",
        "strategy",
        "started",
        "job",
        "namespace",
    )

    def __init__(self) -> None:
        self.cancelled = False
        self.started = False  # known to run: its worker refused to hand it back
        self.job = b""  # the submitter's job and namespace, as they were at submission
        self.namespace = ""
        self.on_error: Callable[[bytes], None] | None = None
        self.lease: _Lease | None = None
        self.actor: _Actor | None = None
        self.ready = False
        self.conn: Connection | None = None
        self.deps: list[list[Any]] = []
        self.args_ref = b""
        self.strategy: Any = None  # where it may run: None, "SPREAD", ["node", id, soft]...
        self.retries_left = 0  # (actor creation and actor calls set their own)


class _Lease:
    __slots__ = (
        "lease_id",
        "worker_id",
        "conn",
        "gpu_ids",
        "tasks",
        "revoked",
        "idle_since",
        "key",
        "node_conn",
        "spent",
    )

    def __init__(self, lease_id: int, worker_id: bytes, conn: Connection, gpu_ids: list[int]):
        self.lease_id = lease_id
        self.worker_id = worker_id
        self.conn = conn
        self.gpu_ids = gpu_ids
        self.tasks: list[_Task] = []  # pushed and not finished, in order
        self.revoked = False
        self.idle_since = time.monotonic()
        self.key: _Key | None = None
        self.node_conn: Connection | None = None  # the node that granted it
        self.spent = False  # has run a task


class _Key:
    """Tasks of one resource shape and placement, and the leases that run them."""

    __slots__ = (
        "shape",
        "strategy",
        "queue",
        "leases",
        "requests",
        "describe",
        "resources",
        "saturated",
        "taking_back",
        "job",
    )

    def __init__(self, shape: Shape, strategy: Any = None) -> None:
        self.shape = shape
        self.strategy = strategy
        self.queue: collections.deque[_Task] = collections.deque()
        self.leases: dict[int, _Lease] = {}
        self.requests: dict[int, Connection] = {}  # lease requests waiting: rid -> node asked
        self.describe = ""
        self.resources = shape_dict(shape)
        self.saturated = False  # the node said it has no room for another lease of this shape
        self.job = b""  # of the latest task queued: leases are asked for that job
        self.taking_back: set[bytes] = set()  # queued behind another task, asked back


class _Actor:
    __slots__ = (
        "actor_id",
        "class_name",
        "state",
        "conn",
        "incarnation",
        "queue",
        "inflight",
        "error",
        "resolving",
        "max_task_retries",
        "pins",
        "on_idle",
    )

    def __init__(self, actor_id: bytes, class_name: str, max_task_retries: int) -> None:
        self.actor_id = actor_id
        self.class_name = class_name
        self.state = "pending"  # pending | alive | dead
        self.conn: Connection | None = None
        self.incarnation = -1
        self.queue: collections.deque[_Task] = collections.deque()
        self.inflight: dict[bytes, _Task] = {}
        self.error: BaseException | None = None
        self.resolving = False
        self.max_task_retries = max_task_retries
        self.pins: list[Any] = []
        self.on_idle: Any = None  # a message to send once the last call is done


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


def _cause(data: bytes) -> BaseException | None:
    try:
        err = serialization.loads(data)
    except Exception:  # noqa: BLE001 - an unreadable error matches no retry_exceptions class
        return None
    return err.cause if isinstance(err, exc.RayTaskError) else err


def _actor_died(actor: _Actor, reason: str) -> exc.ActorDiedError:
    return exc.ActorDiedError(reason, actor_id=actor.actor_id.hex(), class_name=actor.class_name)
