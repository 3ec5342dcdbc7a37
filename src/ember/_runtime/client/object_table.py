"""CoreClient's object table: reference counts, put, get, wait and fetching borrowed refs."""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from ember import exceptions as exc
from ember._core.wait_index import WaitIndex
from ember._protocol import ids
from ember._protocol import messages as m
from ember._protocol.messages import ERROR, INLINE, STORED
from ember._runtime import serialization, task_context
from ember._runtime.client.records import (
    ACTOR,
    _Latch,
    _Obj,
)
from ember._runtime.object_ref import ObjectRef, check_wait_args
from ember._runtime.object_store.store import StoreFiles

if TYPE_CHECKING:
    from ember._runtime.client.core_client import CoreClient
    from ember._runtime.object_store.remote_store import RemoteStore


class ObjectTable:
    """What this process knows of each object it owns or borrows, and the waits on them.

    Shares the client's lock: methods named "under lock" expect the caller to hold it."""

    def __init__(
        self, client: CoreClient, shm_dir: str, spill_dir: str, store: RemoteStore | None
    ) -> None:
        self._client = client
        self._lock = client.lock
        # The node's shared-memory store, or the head's over TCP in client mode (``store``).
        self.store: StoreFiles | RemoteStore = store or StoreFiles(
            shm_dir, spill_dir, make_room=self.make_room
        )
        self._entries: dict[bytes, _Obj] = {}
        self._decs: collections.deque[bytes] = collections.deque()  # dropped refs, to count
        self._dropped: collections.deque[bytes] = collections.deque()  # files to pool
        self._lost_nodes: set[bytes] = set()  # the objects stored there are lost
        self._to_fire: collections.deque[Callable[[], None]] = collections.deque()
        self._firing = False
        self._latches: set[_Latch] = set()  # the waits blocked in get/wait, to wake early
        self._wait_index: WaitIndex | None = None  # the list of the last wait() loop
        self._wait_latch: _Latch | None = None  # the wait() sleeping on that index
        self._wait_index_used = 0.0  # when a wait() last returned through it

    def add_local_ref(self, object_id: bytes, owner_id: bytes) -> None:
        with self._lock:
            obj = self._entries.get(object_id)
            if obj is None:
                # Unknown here: borrowed, even if this process made it and already let it go
                # (it came back inside another value); then the node still has it, or says lost.
                obj = self._entries[object_id] = _Obj(False, owner_id)
                if not self._client.closed:
                    self._client.node.send(m.IncRef(ids=[object_id], owners=[owner_id]))
            obj.refs += 1

    def remove_local_ref(self, object_id: bytes) -> None:
        # Runs from __del__, possibly in the middle of another operation on this thread:
        # only queue it; the queue is drained under the lock.
        self._decs.append(object_id)

    def drain_decs(self) -> None:
        decs = self._decs
        while decs:
            oid = decs.popleft()
            obj = self._entries.get(oid)
            if obj is None:
                continue
            obj.refs -= 1
            if obj.refs <= 0:
                self.release(oid, obj)

    def release(self, oid: bytes, obj: _Obj) -> None:
        if obj.owned and not obj.ready and obj.kind != ACTOR:
            obj.released = True  # freed when its task finishes
            return
        if obj.waiters:
            return  # someone still waits on it; released once they are done
        del self._entries[oid]
        if self._client.closed:
            return
        if obj.kind == ACTOR:
            self._client.actors.release(oid, obj)
            return
        obj.pins = None
        if obj.contained:
            self._client.node.send(m.DecRef(ids=[c[0] for c in obj.contained]))
        if not obj.owned:
            self._client.node.send(m.DecRef(ids=[oid]))
        elif obj.shared or obj.promoted:
            self._client.node.send(m.DecRef(ids=[oid]))
        elif obj.kind == STORED:
            # Nobody else saw it: its file goes to the pool (unless a process still maps it),
            # where this process's next large put finds it without waiting for the node; once
            # the lock is let go (``pool_dropped``), since deleting a large file takes a while.
            self._dropped.append(oid)

    def pool_dropped(self) -> None:
        """Not under the lock: pool the files of the objects only this process knew that it
        dropped, then let the node free them. A file this cannot pool (out of descriptors, say)
        is left to the node, which recycles or deletes it."""
        dropped = self._dropped
        if not dropped:
            return
        ids = []
        while dropped:
            try:
                oid = dropped.popleft()
            except IndexError:  # (another thread took the last one first)
                break
            with contextlib.suppress(OSError):
                self.store.pool(oid)
            ids.append(oid)
        if ids:
            self._client.node.send(m.FreeObjects(ids=ids))

    def ref_serialized(self, object_id: bytes, owner_id: bytes) -> None:
        """This process is sending a ref it holds to another process."""
        with self._lock:
            obj = self._entries.get(object_id)
            if obj is None or not obj.owned or obj.shared:
                return
            obj.shared = True
            if obj.ready:
                self._promote(object_id, obj)

    def entry(self, oid: bytes) -> _Obj | None:
        return self._entries.get(oid)

    def arg_for_task(self, oid: bytes) -> tuple[list[Any], bytes, int]:
        """Under lock, for a ready object a task takes as an argument: what the task's
        message carries (``[kind, value]``, or ``[STORED, oid]``: its worker reads it from the
        store), and, when it is stored on another node, that node and its size (else b"", 0):
        the task may prefer to run there."""
        obj = self._entries[oid]  # (held by the task's pins)
        if obj.kind == STORED:
            obj.shared = True  # the worker's hold on it may reach the node after our free
            return [STORED, oid], obj.where, obj.data if obj.where else 0
        return [obj.kind, obj.data], b"", 0

    def add_pending(self, oids: list[bytes]) -> None:
        """Under lock: the return objects of a task this process submitted."""
        entries = self._entries
        client_id = self._client.client_id
        for oid in oids:
            entries[oid] = _Obj(True, client_id)

    def add_actor(self, actor_id: bytes, detached: bool, shared: bool) -> None:
        """An actor this process created; its handles are counted like refs."""
        with self._lock:
            obj = self._entries[actor_id] = _Obj(True, self._client.client_id)
            obj.kind = ACTOR
            obj.ready = True
            obj.detached = detached
            obj.shared = shared  # others may hold it through get_actor()

    def add_actor_ref(self, actor_id: bytes, owner_id: bytes) -> None:
        with self._lock:
            obj = self._entries.get(actor_id)
            if obj is None:
                obj = self._entries[actor_id] = _Obj(owner_id == self._client.client_id, owner_id)
                obj.kind = ACTOR
                obj.ready = True
                if not obj.owned:
                    self._client.node.send(m.IncRef(ids=[actor_id], owners=[owner_id]))
            obj.refs += 1

    def actor_ref_serialized(self, actor_id: bytes) -> None:
        """A handle is being sent to another process: from now on the node counts holders
        (it counted this owner at creation)."""
        with self._lock:
            obj = self._entries.get(actor_id)
            if obj is not None and obj.owned:
                obj.shared = True

    def store_returns(
        self, return_ids: list[bytes], results: Sequence[m.ReturnValue], lineage: Any
    ) -> bool:
        """Under lock: record a finished task's return values and wake whoever waits for
        them. ``lineage``, if not None, is the task to run again should a node holding one
        of them die; True if it is kept for that."""
        node = self._client.node
        ready = []
        for oid, result in zip(return_ids, results, strict=True):
            obj = self._entries.get(oid)
            if obj is None:
                continue
            contained = result.contained
            if contained:
                obj.contained = contained
                node.send(m.IncRef(ids=[c[0] for c in contained], owners=[c[1] for c in contained]))
            kind = result.kind
            if kind == STORED and result.node_id != self._client.node_id:
                obj.where = result.node_id  # its node keeps it; ours is told, to find it later
                node.send(m.ObjectLocated(object_id=oid, node_id=obj.where, size=result.data))
                if lineage is not None:
                    obj.lineage = lineage  # if that node dies, the task runs again
            self.set_ready(oid, obj, kind, result.data)
            ready.append((oid, obj))
        kept = lineage is not None and any(obj.lineage is lineage for _, obj in ready)
        for oid, obj in ready:
            if obj.waiters:
                waiters, obj.waiters = obj.waiters, None
                self.fire(waiters)
            if obj.released or obj.refs <= 0:
                obj.released = False
                if oid in self._entries and obj.refs <= 0:
                    self.release(oid, obj)
        return kept

    def pin(self, oid: bytes, refs: list[ObjectRef]) -> None:
        """Under lock: the value of ``oid``, which holds ``refs``, keeps their objects alive
        as long as it lives (as a put's does)."""
        obj = self._entries.get(oid)
        if obj is not None:
            obj.pins = refs

    def unready(self, return_ids: list[bytes], lineage: Any) -> None:
        """Under lock: the task ``lineage`` runs again; its returns it made are pending."""
        for oid in return_ids:
            obj = self._entries.get(oid)
            if obj is not None and obj.lineage is lineage:
                obj.ready = False
                obj.kind = INLINE
                obj.data = None
                obj.where = b""
                obj.lineage = None

    def node_died(self, node_id: bytes) -> None:
        self._lost_nodes.add(node_id)  # (objects there are rebuilt from lineage when needed)

    def lost(self, oid: bytes) -> _Obj | None:
        """Under lock: the entry of a ready object lost with its node (no copy was pulled
        here either), if it is one."""
        obj = self._entries.get(oid)
        if (
            obj is not None
            and obj.ready
            and obj.where in self._lost_nodes
            and not self.store.exists(oid)
        ):
            return obj
        return None

    def fail_pending(self, error: BaseException) -> None:
        """Under lock: the node is lost; every object not ready yet fails with ``error``."""
        data = serialization.dumps(error)
        for oid, obj in list(self._entries.items()):
            if not obj.ready and obj.kind != ACTOR:
                self.set_ready(oid, obj, ERROR, data)
                self.run_ready_callbacks(oid)

    def _promote(self, oid: bytes, obj: _Obj) -> None:
        """Make an owned object reachable by other processes on this node."""
        if obj.promoted or self._client.closed:
            return
        obj.promoted = True
        if obj.kind != STORED:  # stored objects are known to the node since their creation
            # The refs inside it (a put's, or a task result's) live as long as it does there.
            inside = obj.contained or [[r._id, r._owner] for r in obj.pins or ()]
            self._client.node.send(
                m.PutInline(
                    object_id=oid,
                    data=[obj.kind, obj.data],
                    owner_id=self._client.client_id,
                    contained=inside,
                )
            )

    # ------------------------------------------------------------------ objects

    def put(self, value: Any) -> ObjectRef:
        return self.put_serialized(serialization.serialize(value))

    def put_serialized(self, ser: serialization.Serialized) -> ObjectRef:
        """Own a new object holding ``ser``: inline if small, else in the node's store."""
        oid = ids.put_object_id()
        obj = _Obj(True, self._client.client_id)
        obj.ready = True
        if ser.refs:  # the value holds refs: keep their objects alive as long as it lives
            obj.pins = [ObjectRef(i, o, self._client) for i, o in ser.refs]
        if ser.nbytes <= serialization.INLINE_MAX:
            obj.data = ser.inline()
        else:
            with self._lock:
                self.drain_decs()
            self.pool_dropped()  # the files of objects dropped meanwhile are free to reuse
            obj.kind = STORED
            obj.data = self.store.write(oid, ser.meta, ser.buffers)
            self._client.node.send(
                m.ObjectCreated(
                    object_id=oid,
                    size=obj.data,
                    owner_id=self._client.client_id,
                    contained=ser.refs,
                )
            )
        with self._lock:
            self.drain_decs()
            self._entries[oid] = obj
            return ObjectRef(oid, self._client.client_id, self._client)

    def make_room(self, size: int) -> bool:
        """The store is full: ask the node to make room for a new object of ``size`` bytes
        (it spills objects no process maps); then the store reserves it. False: the object
        goes to disk instead."""
        return bool(
            self._client.calls.future(
                self._client.node, lambda rid: m.MakeRoom(rid=rid, size=size)
            ).result()
        )

    def entry_for(self, ref: ObjectRef, fetch: bool = True) -> _Obj:
        """The entry of a ref, starting a fetch if this process borrows it (with ``fetch``
        False, only learning that it exists, without pulling it to this node). Under lock."""
        oid = ref._id
        obj = self._entries.get(oid)
        if obj is None:  # a ref made before this runtime (or by a raw id): treat as borrowed
            self.add_local_ref(oid, ref._owner)
            self._decs.append(oid)
            obj = self._entries[oid]
        if not obj.ready and not obj.owned and not obj.fetching:
            obj.fetching = True
            if self.store.exists(oid):
                self.set_ready(oid, obj, STORED, 0)
            else:
                self._client.calls.call(
                    self._client.node,
                    lambda rid: m.WaitObject(
                        rid=rid, object_id=oid, owner_id=obj.owner, fetch=fetch
                    ),
                    lambda reply: self._on_fetched(oid, reply),
                )
        return obj

    def _on_fetched(self, oid: bytes, answer: m.Answer) -> None:
        with self._lock:
            obj = self._entries.get(oid)
            if obj is None or obj.ready:
                return
            if isinstance(answer, m.Reply) and answer.error is None:
                kind, data = answer.value
                self.set_ready(oid, obj, kind, data)
            else:
                text = answer.error[1] if isinstance(answer, m.Reply) and answer.error else ""
                err: BaseException
                if isinstance(answer, m.Reply) and answer.kind is m.ErrorKind.OWNER_DIED:
                    err = exc.OwnerDiedError(oid.hex(), detail=text)
                else:
                    err = exc.ObjectLostError(oid.hex(), detail=text)
                self.set_ready(oid, obj, ERROR, serialization.dumps(err))
        self.run_ready_callbacks(oid)

    def set_ready(self, oid: bytes, obj: _Obj, kind: int, data: Any) -> None:
        """Under lock. Callbacks run afterwards via ``run_ready_callbacks``. Ready is set
        last: ``_value`` reads without the lock."""
        obj.kind = kind
        obj.data = data
        obj.ready = True
        if obj.shared and obj.owned:
            self._promote(oid, obj)
        index = self._wait_index
        if index is not None and index.arrived(oid) and self._wait_latch is not None:
            self._wait_latch.hit()

    def run_ready_callbacks(self, oid: bytes) -> None:
        with self._lock:
            obj = self._entries.get(oid)
            if obj is None or not obj.waiters:
                return
            waiters, obj.waiters = obj.waiters, None
            self.fire(waiters)
            if obj.refs <= 0:
                self.release(oid, obj)

    def fire(self, callbacks: list[Callable[[], None]]) -> None:
        """Under lock: run ready-callbacks one after another, never nested, so a failure that
        flows down a chain of a thousand dependent tasks does not recurse a thousand deep."""
        self._to_fire.extend(callbacks)
        if self._firing:
            return
        self._firing = True
        try:
            while self._to_fire:
                self._to_fire.popleft()()
        finally:
            self._firing = False

    def on_ready(self, obj: _Obj, fn: Callable[[], None]) -> None:
        """Under lock: call ``fn`` (under lock) once ``obj`` is ready."""
        if obj.ready:
            fn()
        elif obj.waiters is None:
            obj.waiters = [fn]
        else:
            obj.waiters.append(fn)

    def _wait_ready(
        self, refs: Sequence[ObjectRef], num: int, timeout: float | None, fetch: bool = True
    ) -> None:
        """Block until ``num`` of ``refs`` are ready or the timeout passes."""
        with self._lock:
            self.drain_decs()
            objects = self._entries
            pending = []
            for ref in refs:
                obj = objects.get(ref._id)
                if obj is None or not obj.ready:
                    obj = self.entry_for(ref, fetch)
                    if not obj.ready:
                        pending.append(obj)
            missing = num - (len(refs) - len(pending))
            if missing <= 0 or (timeout is not None and timeout <= 0):
                return
            latch = self.latch(missing)
            for obj in pending:
                self.on_ready(obj, latch.hit)
        try:
            self.block_on(latch, timeout)
        finally:
            self.unhook(latch, pending)

    def unhook(self, latch: _Latch, objects: list[_Obj]) -> None:
        """After a wait that timed out or was woken early: take its callback back off the
        objects (one left there would also keep a dropped object from being released)."""
        if latch.n != 0:
            with self._lock:
                for obj in objects:
                    if obj.waiters and latch.hit in obj.waiters:
                        obj.waiters.remove(latch.hit)

    def latch(self, n: int) -> _Latch:
        """Under lock: a latch for this thread to block on until ``n`` objects are ready,
        known to the client so that node loss, ``close`` or a cancel of its task wake it.
        A task cancelled already raises here: its cancel (which marks it first, then looks
        for its latch under this lock) has either found this latch or will not look again."""
        self._client.check_open()
        ctx = task_context.current.get()
        if ctx is not None and ctx.cancelled and not ctx.actor_id:
            raise exc.TaskCancelledError(ctx.task_id.hex())
        latch = _Latch(n, ctx.task_id if ctx is not None else None)
        self._latches.add(latch)
        return latch

    def wake_all(self) -> None:
        """Under lock: the node is lost or the client closes; every blocked wait raises."""
        for latch in self._latches:
            latch.wake()

    def interrupt_wait(self, task_id: bytes) -> bool:
        """Wake the wait that the task ``task_id`` (just cancelled) is blocked in, which then
        raises TaskCancelledError; False if it is not blocked in one. (By task, not thread:
        the thread may have gone on to the next task of its lease meanwhile.)"""
        with self._lock:
            for latch in self._latches:
                if latch.task_id == task_id and latch.n > 0:
                    latch.cancelled = True
                    latch.wake()
                    return True
        return False

    def block_on(self, latch: _Latch, timeout: float | None) -> None:
        """Sleep until the latch is released or the timeout passes; raise if it was woken
        early by node loss, ``close`` or a cancel."""
        blocked = False
        try:
            # Not when the wait ended already (between the caller's lock and here): a worker
            # would tell the node for nothing, and start the next task of the lease beside it.
            if self._client.on_block is not None and latch.n > 0:
                self._client.on_block()  # (a worker may refuse: too many of its tasks wait already)
                blocked = True
            latch.wait(timeout)
        finally:
            with self._lock:
                self._latches.discard(latch)
            if blocked:
                self._client.on_unblock()  # type: ignore[misc]
        if latch.n < 0:
            if latch.cancelled:
                ctx = task_context.current.get()
                raise exc.TaskCancelledError(ctx.task_id.hex() if ctx else None)
            self._client.check_open()

    def get(self, refs: Sequence[ObjectRef], timeout: float | None = None) -> list[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        left = timeout
        while True:
            self._wait_ready(refs, len(refs), left)
            objects = self._entries
            out = []
            for ref in refs:
                obj = objects.get(ref._id)
                if obj is None or not obj.ready:
                    break
                out.append(self._value(ref._id, obj))
            else:
                return out
            # Not ready after all: one that was ready is being made again (lineage) meanwhile.
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise exc.GetTimeoutError(
                        f"Get timed out: some object(s) not ready after {timeout} s "
                        f"(first missing: {ref!r})."
                    )

    def _value(self, oid: bytes, obj: _Obj) -> Any:
        kind, data = obj.kind, obj.data
        if not obj.ready or obj.kind is not kind or obj.data is not data:
            # Another thread is making it again (lineage) meanwhile (``set_ready`` marks it
            # ready last): read it under the lock, once it is ready again.
            self.await_ready(obj)
            with self._lock:
                kind, data = obj.kind, obj.data
        if kind == INLINE:
            return serialization.loads(data)
        if kind == STORED:
            try:
                return self.read_stored(oid, obj.owner)
            except exc.ObjectLostError:
                if not self._rebuild(obj):
                    raise
                return self._value(oid, obj)
        err = serialization.loads(data)
        if isinstance(err, exc.RayTaskError):
            raise err.as_instanceof_cause()
        raise err

    def read_stored(self, oid: bytes, owner: bytes) -> Any:
        """Deserialize a store object as views of its mapping; the mapping holds the object
        like a ref until its last view is gone, so its memory is never reused under it."""
        self.add_local_ref(oid, owner)
        found = self.store.read(oid, release=lambda: self.remove_local_ref(oid))
        if found is None:
            # Not on this node (made elsewhere, or spilled out of reach): the node pulls it.
            try:
                self._pull_here(oid, owner)
            except BaseException:
                self.remove_local_ref(oid)
                raise
            found = self.store.read(oid, release=lambda: self.remove_local_ref(oid))
        if found is None:
            self.remove_local_ref(oid)
            raise exc.ObjectLostError(oid.hex(), detail="its data is no longer in the store")
        return serialization.loads_stored(*found)

    def _rebuild(self, obj: _Obj) -> bool:
        """The node holding an object this process made died: run the task that made it
        again (lineage reconstruction, within its ``max_retries``) and wait for it."""
        with self._lock:
            if obj.ready and not self._client.tasks.rerun(obj):
                return False
        self.await_ready(obj)  # (another thread may have started making it again first)
        return True

    def await_ready(self, obj: _Obj) -> None:
        with self._lock:
            if obj.ready:
                return
            latch = self.latch(1)
            self.on_ready(obj, latch.hit)
        try:
            self.block_on(latch, None)
        finally:
            self.unhook(latch, [obj])

    def _pull_here(self, oid: bytes, owner: bytes) -> None:
        from ember._transport.rpc import RemoteError

        fut = self._client.calls.future(
            self._client.node, lambda rid: m.WaitObject(rid=rid, object_id=oid, owner_id=owner)
        )
        try:
            fut.result()
        except RemoteError as e:
            if e.kind is m.ErrorKind.OWNER_DIED:
                raise exc.OwnerDiedError(oid.hex(), detail=str(e)) from None
            raise exc.ObjectLostError(oid.hex(), detail=str(e)) from None

    def wait(
        self, refs: list[ObjectRef], num_returns: int, timeout: float | None, fetch_local: bool
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        ids = None
        if isinstance(num_returns, int) and num_returns * _INDEX_BELOW <= len(refs):
            try:
                ids = list(map(_ID, refs))
            except AttributeError:
                pass  # not all refs: check_wait_args says so
        with self._lock:
            index = self._wait_index
            known = ids is not None and index is not None and index.matches(ids, fetch_local)
        check_wait_args(refs, num_returns, known)
        if ids is not None:
            done = self._wait_indexed(refs, ids, num_returns, timeout, fetch_local)
            if done is not None:
                return done
        ready, rest = self._split_ready(refs, num_returns)
        if len(ready) < num_returns:
            self._wait_ready(refs, num_returns, timeout, fetch_local)
            ready, rest = self._split_ready(refs, num_returns)
        return ready, rest

    def _wait_indexed(
        self, refs: list[ObjectRef], ids: list[bytes], num: int, timeout: float | None, fetch: bool
    ) -> tuple[list[ObjectRef], list[ObjectRef]] | None:
        """``wait`` through the index of the list (see ``WaitIndex``), made now if this is
        not the list the last call left; None if the index cannot serve this call (another
        thread sleeps on it, or a ref is unknown here): the scan does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._wait_latch is not None:
                    return None
                self.drain_decs()
                index = self._wait_index
                if index is None or not index.matches(ids, fetch):
                    index = self._index_wait(refs, ids, fetch)
                    if index is None:
                        return None
                first = index.first(num, self._is_ready)
                left = None if deadline is None else deadline - time.monotonic()
                if len(first) == num or (left is not None and left <= 0):
                    at = index.take(first)
                    if not index.expected:
                        self._wait_index = None
                    self._wait_index_used = time.monotonic()
                    return _split_at(refs, at)
                latch = self._wait_latch = self.latch(num - len(first))
            try:
                self.block_on(latch, left)
            finally:
                with self._lock:
                    if self._wait_latch is latch:
                        self._wait_latch = None

    def drop_idle_wait_index(self, now: float) -> None:
        """Under lock, periodically: a loop that stopped before its list was done (a break
        at the first result it wanted) leaves its index, which holds a tuple, a dict and
        lists over the whole list and is told of every object that becomes ready: dropped
        once no call has used it for a while (the next call over that list indexes it anew)."""
        if (
            self._wait_index is not None
            and self._wait_latch is None
            and now - self._wait_index_used > _WAIT_INDEX_IDLE_SECONDS
        ):
            self._wait_index = None

    def _index_wait(self, refs: list[ObjectRef], ids: list[bytes], fetch: bool) -> WaitIndex | None:
        """Under lock: index a new wait list, fetching the borrowed refs not ready yet;
        None if one is unknown here (made before this runtime): the scan handles those."""
        objects = self._entries
        ready = []
        for i, ref in enumerate(refs):
            obj = objects.get(ref._id)
            if obj is None:
                self._wait_index = None  # (the last list's loop is over)
                return None
            if not obj.ready:
                obj = self.entry_for(ref, fetch)
                if not obj.ready:
                    continue
            ready.append(i)
        self._wait_index = WaitIndex(ids, ready, fetch)
        return self._wait_index

    def _is_ready(self, oid: bytes) -> bool:
        obj = self._entries.get(oid)
        return obj is not None and obj.ready

    def _split_ready(
        self, refs: Sequence[ObjectRef], num_returns: int
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        ready: list[ObjectRef] = []
        rest: list[ObjectRef] = []
        objects = self._entries
        with self._lock:
            for ref in refs:
                obj = objects.get(ref._id)
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
            self._client.reactor.call_soon(deliver)

        def deliver() -> None:
            try:
                with self._lock:
                    obj = self._entries.get(ref._id)
                value = self._value(ref._id, obj) if obj is not None else None
            except BaseException as e:  # delivered to the future's owner
                fut.set_exception(e)
            else:
                fut.set_result(value)

        with self._lock:
            self.on_ready(self.entry_for(ref), resolve)
        fut._ember_ref = ref  # type: ignore[attr-defined]  # keep the object alive until done
        return fut


_ID = attrgetter("_id")
# A wait() for fewer than 1/8 of its refs goes through the index; a larger share costs more
# to take out of the index one by one than a scan of the list does.
_INDEX_BELOW = 8
_WAIT_INDEX_IDLE_SECONDS = 5.0  # unused this long, the index of a wait() list is dropped


def _split_at(refs: list[ObjectRef], at: list[int]) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """The refs at positions ``at`` (ascending), and the others, both in order."""
    rest: list[ObjectRef] = []
    start = 0
    for i in at:
        rest += refs[start:i]
        start = i + 1
    rest += refs[start:]
    return [refs[i] for i in at], rest
