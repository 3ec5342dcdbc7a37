"""The client's generator streams: the items of the generator tasks this process submitted.

Each item a worker reports (``GeneratorItem``) is one more return object of its task, owned
here as a return value is (``ObjectTable.add_pending`` and ``store_returns``), and the
stream holds a ref to it until ``next`` hands it out. The flow decisions (which items are
new, when the worker is told what was taken, what ``next`` does) are
``_core.generator_stream``'s.

``next`` waits on the ref of the item it expects (an owned, pending object made for the
purpose, the *peeked* ref): the item's arrival makes it ready, and so does the end of the
task (with ``ObjectRefStreamEndOfStreamError`` when it never comes), so ``wait`` on a
generator is ``wait`` on that ref.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ember import exceptions as exc
from ember._core.generator_stream import ItemStream, Next
from ember._protocol import ids
from ember._protocol import messages as m
from ember._protocol.messages import DYNAMIC, ERROR, INLINE
from ember._runtime import serialization
from ember._runtime.object_ref import ObjectRef
from ember._runtime.object_ref_generator import DynamicObjectRefGenerator
from ember._transport.reactor import Connection

if TYPE_CHECKING:
    from ember._runtime.client.core_client import CoreClient
    from ember._runtime.client.object_table import ObjectTable
    from ember._runtime.client.records import _Task


class _Stream(ItemStream):
    __slots__ = ("task_id", "refs", "peeked", "peer", "answer", "dynamic")

    def __init__(self, task_id: bytes, threshold: int, dynamic: bool) -> None:
        super().__init__(threshold)
        self.task_id = task_id
        self.refs: dict[int, ObjectRef[Any]] = {}  # arrived, not handed out, by index
        self.peeked: ObjectRef[Any] | None = None  # the next item's, made for a wait
        self.peer: Connection | None = None  # the worker of the running attempt
        self.answer: Sequence[m.ReturnValue] | None = None  # the last attempt's TaskDone's
        self.dynamic = dynamic


class GeneratorStreams:
    """Shares the client's lock: methods named "under lock" expect the caller to hold it."""

    def __init__(self, client: CoreClient, objects: ObjectTable) -> None:
        self._client = client
        self._lock = client.lock
        self._objects = objects
        # By task id: from submission until the task is over and its generator is gone.
        self._streams: dict[bytes, _Stream] = {}
        self._drops: collections.deque[bytes] = collections.deque()  # see ``drop``

    def open(self, task: _Task, threshold: int) -> None:
        """Under lock: ``task`` (a generator task) was submitted."""
        self._streams[task.task_id] = _Stream(task.task_id, threshold, task.num_returns == DYNAMIC)

    # ------------------------------------------------------------------ from the worker

    def on_item(self, conn: Connection, msg: m.GeneratorItem) -> None:
        """Reactor thread: a worker reports an item."""
        with self._lock:
            self.drain_drops()
            stream = self._streams.get(msg.task_id)
            if stream is None:
                self._discard(msg.task_id, msg.index, msg.value)
                return
            if stream.peer is not conn:  # a new attempt, whose worker was told nothing
                stream.attempt_over()
                stream.peer = conn
            self._arrived(stream, msg.index, msg.value)
            self._ack(stream)

    def answered(self, task_id: bytes, results: Sequence[m.ReturnValue]) -> None:
        """Under lock: the worker answered with ``results`` (a retry's worker starts
        afresh)."""
        stream = self._streams.get(task_id)
        if stream is not None:
            stream.attempt_over()
            stream.answer = results

    def task_over(
        self, task: _Task, results: Sequence[m.ReturnValue]
    ) -> tuple[Sequence[m.ReturnValue], list[ObjectRef[Any]]]:
        """Under lock: ``task`` is over with ``results`` (its one return value, or its error):
        end its stream. Returns what the task's return object holds, and the refs it pins
        (a dynamic generator's items, an error it raised the last of them, as in Ray)."""
        self.drain_drops()
        stream = self._streams.get(task.task_id)
        if stream is None:
            return results, []
        error = results[0] if results and results[0].kind == ERROR else None
        # An error its worker answered with (it raised, or was cancelled as it ran) is its
        # last item, as in Ray; one around it (its worker died, an argument failed, it was
        # cancelled before it ran) is the task's ref's.
        raised = error is not None and results is stream.answer
        if raised:
            assert error is not None
            self._arrived(stream, stream.received, error)
        stream.ended(failed=error is not None and not raised)
        self._end_peeked(stream)
        if stream.dropped or stream.dynamic:
            del self._streams[task.task_id]
        if not stream.dynamic:
            return ([m.ReturnValue(INLINE, _NONE)] if raised else results), []
        refs = [stream.refs[i] for i in sorted(stream.refs)]
        stream.refs.clear()
        if error is not None and not raised:
            return [error], []
        return [m.ReturnValue(INLINE, serialization.dumps(DynamicObjectRefGenerator(refs)))], refs

    # ------------------------------------------------------------------ from the API

    def next(self, ref: ObjectRef[Any], timeout: float | None) -> ObjectRef[Any] | None:
        """The next item's ref (or the task's error, once), None once all are handed out;
        waits up to ``timeout`` (None: no limit) for it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                stream = self._stream(ref)
                what = stream.next()
                if what is Next.ITEM:
                    item = stream.refs.pop(stream.consumed)
                    stream.took()
                    self._ack(stream)
                    return item
                if what is Next.ERROR:
                    stream.took()
                    return ref
                if what is Next.STOP:
                    return None
                expected = self._peek(stream)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise exc.GetTimeoutError(f"no item of the generator came within {timeout} s")
            self._objects.wait([expected], 1, left, False)

    def peek(self, ref: ObjectRef[Any]) -> ObjectRef[Any] | None:
        """What ``next`` would return or wait on: ready once ``next`` would not block; None
        once all is handed out."""
        with self._lock:
            stream = self._stream(ref)
            what = stream.next()
            if what is Next.ITEM:
                return stream.refs[stream.consumed]
            if what is Next.ERROR:
                return ref
            if what is Next.STOP:
                return None
            return self._peek(stream)

    def drop(self, ref: ObjectRef[Any]) -> None:
        """The caller's generator is gone (``__del__``, which may run in the middle of any
        operation of this thread): only queued here; ``drain_drops`` carries it out."""
        self._drops.append(ids.task_of(ref._id))

    # ------------------------------------------------------------------ under lock

    def drain_drops(self) -> None:
        """The items of the generators dropped are let go, and a worker paused for them goes
        on. (Also periodically: a paused worker must not wait for this process's next call.)"""
        drops = self._drops
        while drops:
            stream = self._streams.get(drops.popleft())
            if stream is None:
                continue
            if stream.release() and stream.peer is not None and not self._client.closed:
                stream.peer.send(m.GeneratorConsumed(task_id=stream.task_id, consumed=-1))
            if stream.total is not None:
                del self._streams[stream.task_id]
            stream.refs.clear()
            stream.peeked = None

    def _stream(self, ref: ObjectRef[Any]) -> _Stream:
        self.drain_drops()
        stream = self._streams.get(ids.task_of(ref._id))
        if stream is None:
            raise ValueError(f"{ref!r} is not the ref of a generator task of this process")
        return stream

    def _arrived(self, stream: _Stream, index: int, value: m.ReturnValue) -> None:
        if not stream.arrived(index):
            if value.kind != ERROR:
                self._discard(stream.task_id, index, value)
            return
        peeked = stream.peeked
        oid = ids.return_object_id(stream.task_id, index + 2)
        if peeked is not None and peeked._id == oid:
            stream.peeked = None
            item = peeked
        else:
            self._objects.add_pending([oid])
            item = ObjectRef(oid, self._client.client_id, self._client)
        stream.refs[index] = item
        self._objects.store_returns([oid], [value], None)

    def _discard(self, task_id: bytes, index: int, value: m.ReturnValue) -> None:
        """An item nobody wants (its generator is gone) or that arrived before (a retry's):
        unless this process has it, own it just long enough to free it."""
        oid = ids.return_object_id(task_id, index + 2)
        if self._objects.entry(oid) is None:
            self._objects.add_pending([oid])
            self._objects.store_returns([oid], [value], None)

    def _peek(self, stream: _Stream) -> ObjectRef[Any]:
        if stream.peeked is None:
            oid = ids.return_object_id(stream.task_id, stream.received + 2)
            self._objects.add_pending([oid])
            stream.peeked = ObjectRef(oid, self._client.client_id, self._client)
        return stream.peeked

    def _end_peeked(self, stream: _Stream) -> None:
        """The task is over: a ref made for an item that never came is ready, as an error."""
        peeked, stream.peeked = stream.peeked, None
        if peeked is not None:
            self._objects.store_returns([peeked._id], [_END_OF_STREAM], None)

    def _ack(self, stream: _Stream) -> None:
        consumed = stream.ack()
        if consumed is not None and stream.peer is not None and not stream.peer.closed:
            stream.peer.send(m.GeneratorConsumed(task_id=stream.task_id, consumed=consumed))


_NONE = serialization.dumps(None)
_END_OF_STREAM = m.ReturnValue(
    ERROR,
    serialization.dumps(
        exc.ObjectRefStreamEndOfStreamError("the generator task ended before this item")
    ),
)
