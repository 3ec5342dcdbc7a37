"""The Ember client inside every driver and worker process: objects, tasks, actors.

Theory of operation
-------------------
The client owns a reactor thread that reads every socket of the process. Calls from user
threads (``submit_task``, ``get``, ``put``...) change the client's tables under one lock and
write to sockets directly; answers come back on the reactor thread, which updates the tables
and wakes waiters. Nothing is deserialized and no user code runs under the lock.

Objects: the process that makes an object (by ``put`` or by submitting the task that returns
it) owns it and keeps its state in ``_objects``. Small values live inline in that table;
values over ``INLINE_MAX`` live in the node's shared-memory store. A process that receives a
ref it does not own (a borrower) fetches the value through the store or the node manager.

Tasks: submitted tasks wait for their top-level ObjectRef arguments, then queue per resource
shape. For each shape the client leases workers from the node manager and pushes tasks straight
to them, one in flight per lease; a lease stays with the client briefly after its queue drains
so that a loop of submit-and-get reuses it, and goes back at once if the node revokes it.

Actors: calls queue per actor in submission order and go straight to the actor's process once
the node manager says where it lives; if that process dies, the calls are retried or failed
according to ``max_task_retries`` while the node restarts the actor or declares it dead.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from ember import exceptions as exc
from ember._core import retry
from ember._core.resources import Shape, describe, shape_dict
from ember._protocol import ids
from ember._protocol import messages as m
from ember._protocol.messages import ERROR, INLINE, STORED
from ember._runtime import serialization, task_context
from ember._runtime.object_ref import ObjectRef
from ember._runtime.object_store import StoreFiles
from ember._transport.reactor import Connection, Reactor
from ember._transport.rpc import Calls, RemoteError

IDLE_LEASE_SECONDS = 1.0
MAX_LEASE_REQUESTS = 16
_DEC_FLUSH_SECONDS = 0.05
_ACTOR = 3  # object-table kind for an actor id (counted like objects, killed when unreferenced)


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
    )

    def __init__(self) -> None:
        self.cancelled = False
        self.lease: _Lease | None = None
        self.actor: _Actor | None = None
        self.ready = False
        self.conn: Connection | None = None
        self.deps: list[list[Any]] = []
        self.args_ref = b""


class _Lease:
    __slots__ = ("lease_id", "worker_id", "conn", "gpu_ids", "task", "revoked", "idle_since", "key")

    def __init__(self, lease_id: int, worker_id: bytes, conn: Connection, gpu_ids: list[int]):
        self.lease_id = lease_id
        self.worker_id = worker_id
        self.conn = conn
        self.gpu_ids = gpu_ids
        self.task: _Task | None = None
        self.revoked = False
        self.idle_since = time.monotonic()
        self.key: _Key | None = None


class _Key:
    """Tasks of one resource shape and the leases that run them."""

    __slots__ = ("shape", "queue", "leases", "requests", "describe")

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.queue: collections.deque[_Task] = collections.deque()
        self.leases: dict[int, _Lease] = {}
        self.requests: set[int] = set()
        self.describe = ""


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


class _Latch:
    """Released when ``n`` awaited objects are ready; ``hit`` is called under the client lock."""

    __slots__ = ("n", "_lock")

    def __init__(self, n: int) -> None:
        self.n = n
        self._lock = threading.Lock()
        self._lock.acquire()

    def hit(self) -> None:
        if self.n > 0:
            self.n -= 1
            if self.n == 0:
                self._lock.release()

    def wait(self, timeout: float | None) -> bool:
        if self.n <= 0:
            return True
        return self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout))


class _NodeHandler:
    def __init__(self, client: CoreClient) -> None:
        self.client = client

    def on_message(self, conn: Connection, msg: m.Message) -> None:
        client = self.client
        if isinstance(msg, m.Reply):
            client.calls.on_reply(msg)
        elif isinstance(msg, m.RevokeLease):
            client._on_revoke(msg.lease_id)
        elif isinstance(msg, m.LogLines):
            client.on_log_lines(msg.lines, msg.err)
        elif client.extra_handler is not None:
            client.extra_handler(msg)

    def on_close(self, conn: Connection) -> None:
        self.client.calls.on_close(conn)
        self.client._on_node_lost()


class _PeerHandler:
    """A connection to a worker or actor this process pushes tasks to."""

    def __init__(self, client: CoreClient) -> None:
        self.client = client

    def on_message(self, conn: Connection, msg: m.Message) -> None:
        if isinstance(msg, m.TaskDone):
            self.client._on_task_done(msg)
        elif isinstance(msg, m.Reply):
            self.client.calls.on_reply(msg)

    def on_close(self, conn: Connection) -> None:
        self.client.calls.on_close(conn)
        self.client._on_peer_lost(conn)


class CoreClient:
    """One per process; see the module docstring."""

    def __init__(
        self,
        *,
        kind: str,
        node_address: str,
        control_address: str,
        store: StoreFiles,
        client_id: bytes,
        job_id: bytes,
        namespace: str,
        node_id: bytes,
        log_to_driver: bool = False,
        listen_address: str | None = None,
        reactor: Reactor | None = None,
        extra_handler: Callable[[m.Message], None] | None = None,
    ) -> None:
        self.kind = kind
        self.client_id = client_id
        self.job_id = job_id
        self.namespace = namespace
        self.node_id = node_id
        self.store = store
        self.calls = Calls()
        self._lock = threading.RLock()
        self._objects: dict[bytes, _Obj] = {}
        self._tasks: dict[bytes, _Task] = {}  # submitted, not finished; by task id
        self._keys: dict[Shape, _Key] = {}
        self._leases: dict[int, _Lease] = {}
        self._actors: dict[bytes, _Actor] = {}
        self._peers: dict[str, Connection] = {}
        self._decs: collections.deque[bytes] = collections.deque()
        self._exported: set[bytes] = set()
        self._closed = False
        self.node_lost = False
        # Called around blocking waits by a worker, to lend its CPU back to the node.
        self.on_block: Callable[[], None] | None = None
        self.on_unblock: Callable[[], None] | None = None
        self.log_handler: Callable[[list[str], bool], None] | None = None
        self.extra_handler = extra_handler  # node messages for a worker, e.g. StartActor
        self.on_node_lost: Callable[[], None] | None = None
        self._own_reactor = reactor is None
        self.reactor = reactor or Reactor("ember-client")
        if self._own_reactor:
            self.reactor.start()
        self.node = self.reactor.connect(node_address, _NodeHandler(self))
        self.control = self.reactor.connect(control_address, _NodeHandler(self))
        self.info: dict[str, Any] = self.calls.future(
            self.node,
            lambda rid: m.Hello(
                rid, kind, client_id, os.getpid(), job_id, listen_address, log_to_driver
            ),
        ).result(timeout=30)
        self.reactor.call_later(_DEC_FLUSH_SECONDS, self._periodic)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drain_decs()
        for conn in [self.node, self.control, *self._peers.values()]:
            conn.close()
        if self._own_reactor:
            self.reactor.stop()

    def _periodic(self) -> None:
        if self._closed:
            return
        with self._lock:
            self._drain_decs()
            self._expire_idle_leases()
        self.reactor.call_later(_DEC_FLUSH_SECONDS, self._periodic)

    # ------------------------------------------------------------------ reference counting

    def add_local_ref(self, object_id: bytes, owner_id: bytes) -> None:
        with self._lock:
            obj = self._objects.get(object_id)
            if obj is None:
                obj = self._objects[object_id] = _Obj(owner_id == self.client_id, owner_id)
                if not obj.owned and not self._closed:
                    self.node.send(m.IncRef([object_id]))
            obj.refs += 1

    def remove_local_ref(self, object_id: bytes) -> None:
        # Runs from __del__, possibly in the middle of another operation on this thread:
        # only queue it; the queue is drained under the lock.
        self._decs.append(object_id)

    def _drain_decs(self) -> None:
        decs = self._decs
        while decs:
            oid = decs.popleft()
            obj = self._objects.get(oid)
            if obj is None:
                continue
            obj.refs -= 1
            if obj.refs <= 0:
                self._release(oid, obj)

    def _release(self, oid: bytes, obj: _Obj) -> None:
        if obj.owned and not obj.ready and obj.kind != _ACTOR:
            obj.released = True  # freed when its task finishes
            return
        if obj.waiters:
            return  # someone still waits on it; released once they are done
        del self._objects[oid]
        if self._closed:
            return
        if obj.kind == _ACTOR:
            if obj.owned and not obj.detached:
                if obj.shared:
                    self.node.send(m.DecRef([oid]))
                else:
                    self.node.send(m.KillActor(oid, True))
            elif not obj.owned:
                self.node.send(m.DecRef([oid]))
            return
        if obj.contained:
            self.node.send(m.DecRef([c[0] for c in obj.contained]))
        if not obj.owned:
            self.node.send(m.DecRef([oid]))
        elif obj.shared or obj.promoted:
            self.node.send(m.DecRef([oid]))
        elif obj.kind == STORED:
            self.node.send(m.FreeObjects([oid]))

    def ref_serialized(self, object_id: bytes, owner_id: bytes) -> None:
        """This process is sending a ref it holds to another process."""
        with self._lock:
            obj = self._objects.get(object_id)
            if obj is None or not obj.owned or obj.shared:
                return
            obj.shared = True
            if obj.ready:
                self._promote(object_id, obj)

    def _promote(self, oid: bytes, obj: _Obj) -> None:
        """Make an owned object reachable by other processes on this node."""
        if obj.promoted or self._closed:
            return
        obj.promoted = True
        if obj.kind == STORED:
            self.node.send(m.IncRef([oid]))
        else:
            self.node.send(m.PutInline(oid, [obj.kind, obj.data], self.client_id))

    # ------------------------------------------------------------------ objects

    def put(self, value: Any, owner_id: bytes | None = None) -> ObjectRef:
        oid = ids.put_object_id()
        ser = serialization.serialize(value)
        obj = _Obj(True, self.client_id)
        obj.ready = True
        if ser.nbytes <= serialization.INLINE_MAX:
            obj.data = ser.inline()
        else:
            obj.kind = STORED
            obj.data = self.store.write(oid, ser.meta, ser.buffers)
            self.node.send(m.ObjectCreated(oid, obj.data, self.client_id))
        with self._lock:
            self._drain_decs()
            self._objects[oid] = obj
            return ObjectRef(oid, self.client_id, self)

    def _entry_for(self, ref: ObjectRef) -> _Obj:
        """The entry of a ref, starting a fetch if this process borrows it. Under lock."""
        oid = ref._id
        obj = self._objects.get(oid)
        if obj is None:  # a ref made before this runtime (or by a raw id): treat as borrowed
            self.add_local_ref(oid, ref._owner)
            self._decs.append(oid)
            obj = self._objects[oid]
        if not obj.ready and not obj.owned and not obj.fetching:
            obj.fetching = True
            if self.store.exists(oid):
                self._set_ready(oid, obj, STORED, 0)
            else:
                self.calls.call(
                    self.node,
                    lambda rid: m.WaitObject(rid, oid, obj.owner),
                    lambda reply: self._on_fetched(oid, reply),
                )
        return obj

    def _on_fetched(self, oid: bytes, reply: m.Reply) -> None:
        with self._lock:
            obj = self._objects.get(oid)
            if obj is None or obj.ready:
                return
            if reply.error is not None:
                kind, text = reply.error
                err: BaseException
                if kind == "OwnerDiedError":
                    err = exc.OwnerDiedError(oid.hex(), text)
                else:
                    err = exc.ObjectLostError(oid.hex(), text)
                self._set_ready(oid, obj, ERROR, serialization.dumps(err))
            else:
                kind, data = reply.value
                self._set_ready(oid, obj, kind, data)
        self._run_ready_callbacks(oid)

    def _set_ready(self, oid: bytes, obj: _Obj, kind: int, data: Any) -> None:
        """Under lock. Callbacks run afterwards via ``_run_ready_callbacks``."""
        obj.ready = True
        obj.kind = kind
        obj.data = data
        if obj.shared and obj.owned:
            self._promote(oid, obj)

    def _run_ready_callbacks(self, oid: bytes) -> None:
        with self._lock:
            obj = self._objects.get(oid)
            if obj is None or not obj.waiters:
                return
            waiters, obj.waiters = obj.waiters, None
            for fn in waiters:
                fn()
            if obj.refs <= 0:
                self._release(oid, obj)

    def _on_ready(self, obj: _Obj, fn: Callable[[], None]) -> None:
        """Under lock: call ``fn`` (under lock) once ``obj`` is ready."""
        if obj.ready:
            fn()
        elif obj.waiters is None:
            obj.waiters = [fn]
        else:
            obj.waiters.append(fn)

    def _wait_ready(self, refs: Sequence[ObjectRef], num: int, timeout: float | None) -> None:
        """Block until ``num`` of ``refs`` are ready or the timeout passes."""
        with self._lock:
            self._drain_decs()
            latch = _Latch(num)
            for ref in refs:
                self._on_ready(self._entry_for(ref), latch.hit)
        if latch.n <= 0:
            return
        if timeout is not None and timeout <= 0:
            return
        blocked = self.on_block is not None
        if blocked:
            self.on_block()  # type: ignore[misc]
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not latch.wait(0.1 if deadline is None else min(0.1, deadline - time.monotonic())):
                if self.node_lost:
                    raise exc.LocalRayletDiedError(
                        "the Ember node manager this process was connected to has died"
                    )
                if deadline is not None and time.monotonic() >= deadline:
                    return
        finally:
            if blocked:
                self.on_unblock()  # type: ignore[misc]

    def get(self, refs: Sequence[ObjectRef], timeout: float | None = None) -> list[Any]:
        self._wait_ready(refs, len(refs), timeout)
        out = []
        for ref in refs:
            obj = self._objects.get(ref._id)
            if obj is None or not obj.ready:
                raise exc.GetTimeoutError(
                    f"Get timed out: some object(s) not ready after {timeout} s "
                    f"(first missing: {ref!r})."
                )
            out.append(self._value(ref._id, obj))
        return out

    def _value(self, oid: bytes, obj: _Obj) -> Any:
        kind, data = obj.kind, obj.data
        if kind == INLINE:
            return serialization.loads(data)
        if kind == STORED:
            found = self.store.read(oid)
            if found is None:
                raise exc.ObjectLostError(
                    oid.hex(), "the object's data is no longer in the object store"
                )
            return serialization.loads_stored(*found)
        err = serialization.loads(data)
        if isinstance(err, exc.RayTaskError):
            raise err.as_instanceof_cause()
        raise err

    def wait(
        self, refs: Sequence[ObjectRef], num_returns: int, timeout: float | None, fetch_local: bool
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        self._wait_ready(refs, num_returns, timeout)
        ready: list[ObjectRef] = []
        rest: list[ObjectRef] = []
        with self._lock:
            for ref in refs:
                obj = self._objects.get(ref._id)
                if obj is not None and obj.ready and len(ready) < num_returns:
                    ready.append(ref)
                else:
                    rest.append(ref)
        return ready, rest

    def future_of(self, ref: ObjectRef) -> Future[Any]:
        fut: Future[Any] = Future()

        def resolve() -> None:
            # Runs under the lock on whichever thread made the object ready; hand the
            # deserialization to the reactor so that user callbacks never run under the lock.
            self.reactor.call_soon(deliver)

        def deliver() -> None:
            try:
                with self._lock:
                    obj = self._objects.get(ref._id)
                value = self._value(ref._id, obj) if obj is not None else None
            except BaseException as e:  # noqa: BLE001 - delivered to the future's owner
                fut.set_exception(e)
            else:
                fut.set_result(value)

        with self._lock:
            self._on_ready(self._entry_for(ref), resolve)
        fut._ember_ref = ref  # type: ignore[attr-defined]  # keep the object alive until done
        return fut

    # ------------------------------------------------------------------ functions

    def export_function(self, fn_id: bytes, data: Callable[[], bytes], obj: Any = None) -> None:
        if fn_id in self._exported:
            return
        self._exported.add(fn_id)
        self.control.send(m.ExportFunction(fn_id, data()))

    def fetch_function(self, fn_id: bytes) -> bytes:
        return self.calls.future(self.control, lambda rid: m.FetchFunction(rid, fn_id)).result(
            timeout=60
        )

    # ------------------------------------------------------------------ task submission

    def _new_task(
        self,
        fn_id: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        num_returns: int,
        name: str,
    ) -> _Task:
        task = _Task()
        task.task_id = ids.new_task_id()
        task.fn_id = fn_id
        task.num_returns = num_returns
        task.name = name
        dep_refs: list[ObjectRef] = []
        if any(isinstance(a, ObjectRef) for a in args) or any(
            isinstance(v, ObjectRef) for v in kwargs.values()
        ):
            args = tuple(_placeholder(a, dep_refs) for a in args)
            kwargs = {k: _placeholder(v, dep_refs) for k, v in kwargs.items()}
        ser = serialization.serialize((args, kwargs)) if args or kwargs else _EMPTY_ARGS
        if ser.nbytes > serialization.INLINE_MAX:
            ref = self.put_serialized(ser)
            task.args_ref = ref._id
            task.blob = b""
            task.pins = [ref, *dep_refs]
        else:
            task.blob = ser.inline()
            task.pins = dep_refs
        task.dep_refs = dep_refs
        task.return_ids = [ids.return_object_id(task.task_id, i + 1) for i in range(num_returns)]
        return task

    def put_serialized(self, ser: serialization.Serialized) -> ObjectRef:
        oid = ids.put_object_id()
        obj = _Obj(True, self.client_id)
        obj.ready = True
        obj.kind = STORED
        obj.data = self.store.write(oid, ser.meta, ser.buffers)
        self.node.send(m.ObjectCreated(oid, obj.data, self.client_id))
        with self._lock:
            self._objects[oid] = obj
            return ObjectRef(oid, self.client_id, self)

    def _returns(self, task: _Task) -> list[ObjectRef]:
        """Under lock: register the task's return objects and make their refs."""
        refs = []
        for oid in task.return_ids:
            self._objects[oid] = _Obj(True, self.client_id)
            refs.append(ObjectRef(oid, self.client_id, self))
        self._tasks[task.task_id] = task
        return refs

    def submit_task(
        self,
        fn_id: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        num_returns: int,
        name: str,
        shape: Shape,
        max_retries: int,
        retry_exceptions: Any,
    ) -> list[ObjectRef]:
        task = self._new_task(fn_id, args, kwargs, num_returns, name)
        task.shape = shape
        task.retries_left = max_retries
        task.retry_exceptions = retry_exceptions
        with self._lock:
            self._drain_decs()
            refs = self._returns(task)
            self._resolve_deps(task, self._enqueue)
        return refs

    def _resolve_deps(self, task: _Task, then: Callable[[_Task], None]) -> None:
        """Under lock: call ``then(task)`` once every top-level ref argument is ready."""
        if not task.dep_refs:
            task.ready = True
            then(task)
            return
        task.missing = len(task.dep_refs)

        def one_ready() -> None:
            task.missing -= 1
            if task.missing == 0:
                self._deps_ready(task, then)

        for ref in task.dep_refs:
            self._on_ready(self._entry_for(ref), one_ready)

    def _deps_ready(self, task: _Task, then: Callable[[_Task], None]) -> None:
        deps = []
        for ref in task.dep_refs:
            obj = self._objects[ref._id]
            if obj.kind == ERROR:
                task.ready = True
                self._finish(task, [[ERROR, obj.data]] * max(1, task.num_returns))
                if task.actor is not None:
                    self._flush_actor(task.actor)
                return
            deps.append([STORED, ref._id] if obj.kind == STORED else [INLINE, obj.data])
        task.deps = deps
        task.ready = True
        if not task.cancelled:
            then(task)

    def _enqueue(self, task: _Task) -> None:
        key = self._keys.get(task.shape)
        if key is None:
            key = self._keys[task.shape] = _Key(task.shape)
            key.describe = task.name
        key.queue.append(task)
        self._pump(key)

    def _pump(self, key: _Key) -> None:
        """Under lock: push queued tasks to free leases, and ask for or give back leases."""
        if key.queue:
            for lease in key.leases.values():
                if lease.task is None and not lease.revoked:
                    self._push(key.queue.popleft(), lease)
                    if not key.queue:
                        break
        for lease in [x for x in key.leases.values() if x.task is None and x.revoked]:
            self._return_lease(lease)
        wanted = min(len(key.queue), MAX_LEASE_REQUESTS) - len(key.requests)
        for _ in range(max(0, wanted)):
            self._request_lease(key)
        if not key.queue and key.requests:
            for rid in key.requests:
                self.node.send(m.CancelLeaseRequest(rid))
            key.requests.clear()

    def _request_lease(self, key: _Key) -> None:
        rid = self.calls.call(
            self.node,
            lambda rid: m.RequestLease(rid, shape_dict(key.shape), self.client_id, key.describe),
            lambda reply: self._on_lease(key, reply),
        )
        key.requests.add(rid)

    def _on_lease(self, key: _Key, reply: m.Reply) -> None:
        if reply.error is not None:
            with self._lock:
                key.requests.discard(reply.rid)
            return
        grant = reply.value
        try:
            conn = self._peer(grant["addr"])
        except OSError:
            self.node.send(m.ReturnLease(grant["lease_id"], True))
            with self._lock:
                key.requests.discard(reply.rid)
                self._pump(key)
            return
        with self._lock:
            lease = _Lease(grant["lease_id"], grant["worker_id"], conn, grant["gpu_ids"])
            lease.key = key
            if reply.rid not in key.requests or self._closed:
                self.node.send(m.ReturnLease(lease.lease_id))
                return
            key.requests.discard(reply.rid)
            key.leases[lease.lease_id] = lease
            self._leases[lease.lease_id] = lease
            self._pump(key)

    def _peer(self, addr: str) -> Connection:
        conn = self._peers.get(addr)
        if conn is None or conn.closed:
            conn = self.reactor.connect(addr, _PeerHandler(self))
            conn.peer = addr
            self._peers[addr] = conn
        return conn

    def _push(self, task: _Task, lease: _Lease) -> None:
        lease.task = task
        task.lease = lease
        task.conn = lease.conn
        lease.conn.send(
            m.PushTask(
                task.task_id,
                task.fn_id,
                task.blob,
                task.deps,
                task.num_returns,
                task.name,
                self.client_id,
                lease.lease_id,
                lease.gpu_ids,
                b"",
                self.current_job(),
                self.current_namespace(),
                task.args_ref,
            )
        )

    def _return_lease(self, lease: _Lease, failed: bool = False) -> None:
        key = lease.key
        if key is not None:
            key.leases.pop(lease.lease_id, None)
        self._leases.pop(lease.lease_id, None)
        if not self._closed:
            self.node.send(m.ReturnLease(lease.lease_id, failed))

    def _expire_idle_leases(self) -> None:
        now = time.monotonic()
        for lease in list(self._leases.values()):
            if lease.task is None and now - lease.idle_since > IDLE_LEASE_SECONDS:
                self._return_lease(lease)

    def _on_revoke(self, lease_id: int) -> None:
        with self._lock:
            lease = self._leases.get(lease_id)
            if lease is None:
                return
            lease.revoked = True
            if lease.task is None:
                self._return_lease(lease)

    # ------------------------------------------------------------------ results

    def _on_task_done(self, msg: m.TaskDone) -> None:
        with self._lock:
            task = self._tasks.get(msg.task_id)
            if task is None:
                return
            results = msg.results
            if (
                results
                and results[0][0] == ERROR
                and task.retries_left != 0
                and not task.cancelled
                and retry.should_retry_error(task.retry_exceptions, lambda: _cause(results[0][1]))
            ):
                self._detach(task)
                self._retry(task)
                return
            self._detach(task)
            self._finish(task, results)

    def _detach(self, task: _Task) -> None:
        """Under lock: the task no longer occupies its lease or actor slot."""
        lease = task.lease
        if lease is not None:
            task.lease = None
            lease.task = None
            lease.idle_since = time.monotonic()
            if lease.key is not None:
                self._pump(lease.key)
        actor = task.actor
        if actor is not None:
            actor.inflight.pop(task.task_id, None)

    def _retry(self, task: _Task) -> None:
        if task.retries_left > 0:
            task.retries_left -= 1
        if task.actor is not None:
            task.actor.queue.appendleft(task)
            self._flush_actor(task.actor)
        else:
            self._enqueue(task)

    def _finish(self, task: _Task, results: list[list[Any]]) -> None:
        """Under lock: record the task's return values and wake whoever waits for them."""
        self._tasks.pop(task.task_id, None)
        task.pins = []
        if len(results) != len(task.return_ids):
            err = exc.RayTaskError(
                task.name,
                "",
                ValueError(
                    f"Task {task.name!r} declared num_returns={len(task.return_ids)} but "
                    f"returned {len(results)} values."
                ),
            )
            results = [[ERROR, serialization.dumps(err)]] * len(task.return_ids)
        ready = []
        for oid, result in zip(task.return_ids, results, strict=True):
            obj = self._objects.get(oid)
            if obj is None:
                continue
            if len(result) > 2 and result[2]:
                obj.contained = result[2]
                self.node.send(m.IncRef([c[0] for c in result[2]]))
            self._set_ready(oid, obj, result[0], result[1])
            ready.append((oid, obj))
        for oid, obj in ready:
            if obj.waiters:
                waiters, obj.waiters = obj.waiters, None
                for fn in waiters:
                    fn()
            if obj.released or obj.refs <= 0:
                obj.released = False
                if oid in self._objects and obj.refs <= 0:
                    self._release(oid, obj)

    def _fail(self, task: _Task, error: BaseException) -> None:
        self._finish(task, [[ERROR, serialization.dumps(error)]] * task.num_returns)

    def _on_peer_lost(self, conn: Connection) -> None:
        with self._lock:
            self._peers.pop(conn.peer, None)
            for lease in [x for x in self._leases.values() if x.conn is conn]:
                task = lease.task
                lease.task = None
                self._return_lease(lease, failed=True)
                if task is not None:
                    task.lease = None
                    self._task_lost(task, None)
                if lease.key is not None:
                    self._pump(lease.key)
            for actor in self._actors.values():
                if actor.conn is conn:
                    self._actor_lost(actor)

    def _task_lost(self, task: _Task, actor: _Actor | None) -> None:
        if task.cancelled:
            self._fail(task, exc.TaskCancelledError(task.task_id.hex()))
        elif task.retries_left != 0:
            self._retry(task)
        elif actor is not None:
            self._fail(task, actor.error or _actor_died(actor, "its process exited"))
        else:
            self._fail(
                task,
                exc.WorkerCrashedError(
                    f"The worker running task {task.name!r} died unexpectedly (the process "
                    "exited, crashed or was killed). Retry with max_retries > 0 if the task "
                    "is safe to run again; the worker logs are in the session folder "
                    f"{self.info.get('session_dir', '')}/logs."
                ),
            )

    def _on_node_lost(self) -> None:
        if self._closed:
            return
        self.node_lost = True
        if self.on_node_lost is not None:
            self.on_node_lost()
        with self._lock:
            err = exc.LocalRayletDiedError("the Ember node manager died; the session is over")
            for task in list(self._tasks.values()):
                self._fail(task, err)
            for oid, obj in list(self._objects.items()):
                if not obj.ready and obj.kind != _ACTOR:
                    self._set_ready(oid, obj, ERROR, serialization.dumps(err))
                    self._run_ready_callbacks(oid)

    def cancel(self, ref: ObjectRef, force: bool) -> None:
        task_id = ids.task_of(ref._id)
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return
            task.cancelled = True
            if task.actor is None and task.lease is None:
                key = self._keys.get(task.shape)
                if key is not None and task in key.queue:
                    key.queue.remove(task)
                self._fail(task, exc.TaskCancelledError(task_id.hex()))
                return
            if task.actor is not None and task in task.actor.queue:
                task.actor.queue.remove(task)
                self._fail(task, exc.TaskCancelledError(task_id.hex()))
                return
            conn = task.conn
        if conn is not None:
            if force and task.actor is None and task.lease is not None:
                self.node.send(m.KillWorker(task.lease.worker_id))
            else:
                conn.send(m.CancelTask(task_id, force))

    # ------------------------------------------------------------------ actors

    def create_actor(
        self,
        fn_id: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        class_name: str,
        shape: Shape,
        options: dict[str, Any],
        handle_meta: bytes,
    ) -> bytes:
        """Start an actor; returns its id (an existing one's, for ``get_if_exists``)."""
        task = self._new_task(fn_id, args, kwargs, 0, class_name)
        actor_id = ids.new_actor_id()
        name = options.get("name")
        namespace = options.get("namespace") or self.current_namespace()
        job_id = self.current_job()
        detached = options.get("lifetime") == "detached"
        done: Future[Any] = Future()

        def send(task: _Task) -> None:
            spec = serialization.dumps(
                {
                    "fn_id": fn_id,
                    "blob": task.blob,
                    "deps": task.deps,
                    "args_ref": task.args_ref,
                    "class_name": class_name,
                    "max_concurrency": options.get("max_concurrency"),
                    "job_id": job_id,
                    "namespace": namespace,
                }
            )
            msg = lambda rid: m.CreateActor(  # noqa: E731
                rid,
                actor_id,
                spec,
                shape_dict(shape),
                self.client_id,
                job_id,
                name,
                namespace,
                detached,
                bool(options.get("get_if_exists")),
                int(options.get("max_restarts") or 0),
                handle_meta,
            )
            self.calls.call(self.node, msg, lambda reply: _settle(done, reply))

        with self._lock:
            self._drain_decs()
            self._resolve_deps(task, send)
            actor = _Actor(actor_id, class_name, int(options.get("max_task_retries") or 0))
            actor.pins = task.pins
            self._actors[actor_id] = actor
        if name is not None:
            try:
                value = done.result(timeout=60)
            except RemoteError as e:
                with self._lock:
                    self._actors.pop(actor_id, None)
                raise ValueError(str(e)) from None
            if value["actor_id"] != actor_id:
                with self._lock:
                    self._actors.pop(actor_id, None)
                return value["actor_id"]
        with self._lock:
            obj = self._objects[actor_id] = _Obj(True, self.client_id)
            obj.kind = _ACTOR
            obj.ready = True
            obj.detached = detached or name is not None
        return actor_id

    def current_namespace(self) -> str:
        """The namespace of the job the running code belongs to."""
        ctx = task_context.current.get()
        return ctx.namespace if ctx is not None and ctx.namespace else self.namespace

    def current_job(self) -> bytes:
        ctx = task_context.current.get()
        return ctx.job_id if ctx is not None and ctx.job_id else self.job_id

    def actor_handle_meta(self, name: str, namespace: str | None) -> tuple[bytes, bytes]:
        value = self.calls.future(
            self.control,
            lambda rid: m.GetNamedActor(rid, name, namespace or self.current_namespace()),
        ).result(timeout=60)
        return value["actor_id"], value["handle_meta"]

    def add_actor_ref(self, actor_id: bytes, owner_id: bytes) -> None:
        with self._lock:
            obj = self._objects.get(actor_id)
            if obj is None:
                obj = self._objects[actor_id] = _Obj(owner_id == self.client_id, owner_id)
                obj.kind = _ACTOR
                obj.ready = True
                if not obj.owned:
                    self.node.send(m.IncRef([actor_id]))
            obj.refs += 1

    def actor_ref_serialized(self, actor_id: bytes) -> None:
        with self._lock:
            obj = self._objects.get(actor_id)
            if obj is not None and obj.owned and not obj.shared:
                obj.shared = True
                self.node.send(m.IncRef([actor_id]))

    def submit_actor_task(
        self,
        actor_id: bytes,
        class_name: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        num_returns: int,
        max_task_retries: int | None,
        retry_exceptions: Any,
    ) -> list[ObjectRef]:
        task = self._new_task(method.encode(), args, kwargs, num_returns, method)
        task.retry_exceptions = retry_exceptions
        with self._lock:
            self._drain_decs()
            actor = self._actors.get(actor_id)
            if actor is None:
                actor = self._actors[actor_id] = _Actor(actor_id, class_name, 0)
            task.retries_left = (
                actor.max_task_retries if max_task_retries is None else max_task_retries
            )
            task.actor = actor
            refs = self._returns(task)
            actor.queue.append(task)
            self._resolve_deps(task, lambda t: self._flush_actor(actor))
        return refs

    def _flush_actor(self, actor: _Actor) -> None:
        """Under lock: send queued calls in order while the head's arguments are ready."""
        if actor.state == "dead":
            while actor.queue:
                self._fail(actor.queue.popleft(), actor.error or _actor_died(actor, "dead"))
            return
        if actor.state != "alive":
            self._resolve_actor(actor)
            return
        conn = actor.conn
        assert conn is not None
        while actor.queue and actor.queue[0].ready:
            task = actor.queue.popleft()
            if task.cancelled or task.task_id not in self._tasks:
                continue  # cancelled, or failed by an errored argument
            task.conn = conn
            actor.inflight[task.task_id] = task
            conn.send(
                m.PushTask(
                    task.task_id,
                    task.fn_id,
                    task.blob,
                    task.deps,
                    task.num_returns,
                    task.name,
                    self.client_id,
                    0,
                    [],
                    actor.actor_id,
                    self.current_job(),
                    self.current_namespace(),
                    task.args_ref,
                )
            )

    def _resolve_actor(self, actor: _Actor) -> None:
        if actor.resolving or self._closed:
            return
        actor.resolving = True
        self.calls.call(
            self.node,
            lambda rid: m.ResolveActor(rid, actor.actor_id, actor.incarnation + 1),
            lambda reply: self._on_actor_resolved(actor, reply),
        )

    def _on_actor_resolved(self, actor: _Actor, reply: m.Reply) -> None:
        conn = None
        if reply.error is None:
            try:
                conn = self._peer(reply.value["addr"])
            except OSError:
                conn = None
        with self._lock:
            actor.resolving = False
            if reply.error is not None:
                actor.state = "dead"
                actor.error = _actor_died(actor, reply.error[1])
            elif conn is None:
                actor.incarnation = reply.value["incarnation"]
                self._resolve_actor(actor)
                return
            else:
                actor.state = "alive"
                actor.conn = conn
                actor.incarnation = reply.value["incarnation"]
            self._flush_actor(actor)

    def _actor_lost(self, actor: _Actor) -> None:
        """Under lock: the connection to the actor's process closed."""
        actor.state = "pending"
        actor.conn = None
        lost = sorted(actor.inflight.values(), key=lambda t: t.task_id)
        actor.inflight.clear()
        for task in reversed(lost):
            if task.retries_left != 0 and not task.cancelled:
                if task.retries_left > 0:
                    task.retries_left -= 1
                actor.queue.appendleft(task)
            else:
                self._task_lost_to_actor(actor, task)
        self._resolve_actor(actor)

    def _task_lost_to_actor(self, actor: _Actor, task: _Task) -> None:
        if task.cancelled:
            self._fail(task, exc.TaskCancelledError(task.task_id.hex()))
            return
        # Ask the node why the actor died, so the error says so; fail the call when it answers.
        def answered(reply: m.Reply) -> None:
            reason = reply.error[1] if reply.error else "its process exited"
            with self._lock:
                self._fail(task, _actor_died(actor, reason))

        self.calls.call(
            self.node,
            lambda rid: m.ResolveActor(rid, actor.actor_id, -1),
            lambda reply: answered(reply if reply.error else m.Reply(reply.rid, ["", ""])),
        )

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        self.node.send(m.KillActor(actor_id, no_restart))

    # ------------------------------------------------------------------ misc

    def cluster_info(self) -> dict[str, Any]:
        return self.calls.future(self.node, lambda rid: m.ClusterInfo(rid)).result(timeout=30)

    def on_log_lines(self, lines: list[str], err: bool = True) -> None:
        if self.log_handler is not None:
            self.log_handler(lines, err)
        else:
            sys.stderr.write("".join(line + "\n" for line in lines))
            sys.stderr.flush()


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


def _settle(fut: Future[Any], reply: m.Reply) -> None:
    if reply.error is None:
        fut.set_result(reply.value)
    else:
        fut.set_exception(RemoteError(reply.error[0], reply.error[1]))


def _cause(data: bytes) -> BaseException | None:
    err = serialization.loads(data)
    return err.cause if isinstance(err, exc.RayTaskError) else err


def _actor_died(actor: _Actor, reason: str) -> exc.ActorDiedError:
    return exc.ActorDiedError(reason, actor_id=actor.actor_id.hex(), class_name=actor.class_name)


__all__ = ["CoreClient", "_Placeholder", "describe"]
