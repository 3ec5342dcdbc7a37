"""Task events: what owners record of their tasks, and the node's table that merges them.

Owners know their tasks: the process that submits a task (driver or worker) records each
step of its life as a small tuple appended to an ``EventBuffer``, a bounded ring that drops
its oldest events when full and counts them; its reactor thread ships the buffer to its node
in batches (``TaskEvents``). The node's ``TaskTable`` merges a task's events into one record
and keeps at most ``max_tasks`` of them, evicting the oldest finished task first (the oldest
of all when none has finished), and counts what it evicted. ``rows`` gives the records with
Ray's ``TaskState`` field names and states.

An event is a tuple whose first two items are its kind and the task id; times are
``time.time()`` seconds:

- ``(SUBMITTED, task_id, t, type, name, class_name, actor_id, job_id, parent_id, shape,
  arg_ids)``: submitted; it waits for its arguments (``arg_ids``: the ObjectRef arguments),
  else for a worker. ``class_name``: an actor task's or creation task's class, else "".
- ``(ARGS_READY, task_id, t)``: its arguments are ready; it waits for a worker.
- ``(PUSHED, task_id, t, node_id, worker_id, running)``: sent to a worker (``worker_id`` b""
  when the owner does not know it yet, an actor's); ``running``: nothing of this owner's is
  ahead of it there, so it starts at once (``RUNNING`` from ``t``).
- ``(STARTED, task_id, t)``: what was ahead of it on its worker finished: it runs now.
- ``(RAN, task_id, t, ran, error)``: an attempt ended in ``error`` (it may run again).
- ``(ENDED, task_id, t, ran, error)``: the task is over: finished, or failed with ``error``.

``ran`` is what the worker said of the run, ``[start, end, pid, worker_id]``, or None (its
``start`` then replaces the time of the ``RUNNING`` step the owner guessed);
``error`` is what the task failed with, or None.

On the wire (``to_wire``) a batch is one flat list, each event's items one after another
(``WIDTH`` of them by kind), with ``ran`` spread out and the error as its type and text:
``RAN`` and ``ENDED`` are ``kind, task_id, t, start, end, pid, worker_id, error_type,
message`` (``start`` 0 without a run, ``error_type`` None without an error). The node's
decoder then makes no list per event, nor its collector scan one.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import islice
from typing import Any, overload

from ember._core import state_filters
from ember._core.placement_groups import group_of
from ember._core.resources import shape_dict

SUBMITTED, ARGS_READY, PUSHED, STARTED, RAN, ENDED = range(6)
WIDTH = (11, 3, 6, 3, 9, 9)  # the items of an event on the wire, by kind
_NO_RUN = (0.0, 0.0, 0, b"")
_NO_ERROR = (None, None)

# Ray's task types and states (``ray.util.state.common.TaskState``).
NORMAL_TASK = "NORMAL_TASK"
ACTOR_TASK = "ACTOR_TASK"
ACTOR_CREATION_TASK = "ACTOR_CREATION_TASK"
PENDING_ARGS_AVAIL = "PENDING_ARGS_AVAIL"
PENDING_NODE_ASSIGNMENT = "PENDING_NODE_ASSIGNMENT"
SUBMITTED_TO_WORKER = "SUBMITTED_TO_WORKER"
RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"

# The defaults of the settings (as Ray names them; EMBER_<NAME> or RAY_<name> in the
# environment): events a process buffers, tasks a node keeps, seconds between shipments.
MAX_BUFFERED_EVENTS = 100_000  # task_events_max_num_status_events_buffer_on_worker
MAX_TASKS = 100_000  # task_events_max_num_task_in_gcs
REPORT_INTERVAL_MS = 1000  # task_events_report_interval_ms

MAX_PENDING_BYTES = 32 << 20  # packed batches a node keeps before it merges them anyway
RUN_FIELDS = 7  # the items of one run in a ``TaskTable.runs`` row
_MAX_SHAPES = 1000  # distinct resource shapes a table shares among its records


class EventBuffer:
    """A process's task events until its reactor ships them: a ring of at most ``capacity``
    events that drops the oldest when full and counts them. ``record`` is the one call on
    the hot path (its callers hold the client's lock, so the count is exact)."""

    __slots__ = ("_ring", "_recorded", "dropped")

    def __init__(self, capacity: int = MAX_BUFFERED_EVENTS) -> None:
        if capacity < 1:
            raise ValueError(f"a task event buffer needs room for 1 event or more, not {capacity}")
        self._ring: deque[tuple[Any, ...]] = deque(maxlen=capacity)
        self._recorded = 0
        self.dropped = 0  # in all, since the start

    def record(self, event: tuple[Any, ...]) -> None:
        self._recorded += 1
        self._ring.append(event)

    def drain(self) -> tuple[list[tuple[Any, ...]], int]:
        """The events recorded since the last drain, and how many of those were dropped."""
        events = list(self._ring)
        self._ring.clear()
        dropped = self._recorded - len(events)
        self._recorded = 0
        self.dropped += dropped
        return events, dropped


def to_wire(
    events: Iterable[tuple[Any, ...]], error_info: Callable[[Any], tuple[str, str]]
) -> list[Any]:
    """A batch of recorded events as the flat list ``TaskEvents`` carries (see above);
    ``error_info`` gives an error's type and text."""
    out: list[Any] = []
    extend = out.extend
    for event in events:
        if event[0] < RAN:
            extend(event)
        else:
            kind, task_id, t, ran, error = event
            extend((kind, task_id, t, *(ran or _NO_RUN)))
            extend(_NO_ERROR if error is None else error_info(error))
    return out


# A task that is over, as it is read from the table (which keeps it packed, see ``_HEAD``):
# a plain tuple of plain values, the first fields of ``_Record.__slots__`` in order (its
# states and times flat), indexed by these.
(
    _TASK_ID,
    _ATTEMPT,
    _TYPE,
    _NAME,
    _ACTOR_ID,
    _JOB_ID,
    _PARENT_ID,
    _SHAPE,
    _ARG_IDS,
    _NODE_ID,
    _WORKER_ID,
    _PID,
    _STATE,
    _EVENTS,
    _CREATED,
    _START,
    _END,
    _ERROR,
    _OVER,
) = range(19)
_Ended = tuple[Any, ...]


class _Record:
    """A task that is not over, as its events tell it; ids kept as the hex text rows show,
    made once."""

    __slots__ = (
        "task_id",
        "attempt",
        "type",
        "name",
        "actor_id",
        "job_id",
        "parent_id",
        "shape",
        "arg_ids",
        "node_id",
        "worker_id",
        "pid",
        "state",
        "events",
        "created",
        "start",
        "end",
        "error",
        "over",
        "ran",
    )

    def __init__(self, task_id: bytes) -> None:
        self.task_id = task_id.hex()
        self.attempt = 0
        self.type = NORMAL_TASK
        self.name = ""
        self.actor_id: str | None = None
        self.job_id = ""
        self.parent_id: str | None = None
        self.shape: tuple[tuple[str, int], ...] = ()
        self.arg_ids: tuple[bytes, ...] = ()
        self.node_id: str | None = None
        self.worker_id: str | None = None
        self.pid: int | None = None
        self.state = ""
        self.events: list[Any] = []  # state, time, state, time...
        self.created = 0.0
        self.start = 0.0
        self.end = 0.0
        self.error: tuple[str, str] | None = None
        self.ran = False  # an attempt ran (or crashed) since it was last sent to a worker
        self.over = False

    def step(self, state: str, t: float) -> None:
        self.state = state
        self.events += state, t

    def ended(self) -> _Ended:
        """The task as the table keeps it once it is over (see ``_TASK_ID`` and on)."""
        return (
            self.task_id,
            self.attempt,
            self.type,
            self.name,
            self.actor_id,
            self.job_id,
            self.parent_id,
            self.shape,
            self.arg_ids,
            self.node_id,
            self.worker_id,
            self.pid,
            self.state,
            tuple(self.events),
            self.created,
            self.start,
            self.end,
            self.error,
            self.over,
        )

    @classmethod
    def again(cls, ended: _Ended) -> _Record:
        """An ended task that has more events (it runs again: an object it made was lost)."""
        rec = cls.__new__(cls)
        for name, value in zip(cls.__slots__, ended, strict=False):  # (all but "ran")
            setattr(rec, name, value)
        rec.events = list(ended[_EVENTS])
        rec.ran = True
        return rec

    def run(self, t: float, start: float, end: float, pid: int, worker_id: bytes,
            error: tuple[str, str] | None) -> None:  # fmt: skip
        """An attempt ended at ``t``: ran on a worker from ``start`` to ``end``, or not
        (``start`` 0: a lost worker, a failed argument, a cancel before it ran)."""
        if start:
            self.start, self.end, self.pid = start, end, pid
            if worker_id:
                self.worker_id = worker_id.hex()
            if self.state == RUNNING:  # (guessed by its owner: the worker knows better)
                self.events[-1] = start
            else:
                self.step(RUNNING, start)
            t = end
        elif error is not None and self.state == FAILED:
            self.error = error  # (the end of an attempt whose failure is recorded already)
            return
        else:
            self.end = t
        self.error = error
        self.step(FINISHED if error is None else FAILED, t)
        self.ran = True


# An ended task as the table keeps it: one ``bytes``. First its fixed fields (``_HEAD``,
# indexed by ``_H_*``), then its events' states and times (``_events``), its ObjectRef
# arguments' ids (each after its length in a byte) and its error's text. Values that many
# tasks share (names, types, states, the ids of jobs, actors, parents, nodes and workers,
# resource shapes, error types) are kept once in the table's ``_values`` and a record holds
# their index (0 for None). 100,000 ended tasks then take about 25 MB of a node where a
# tuple of Python objects each took 120; a record is made a row (or an ``_Ended`` tuple)
# only when it is read, and a filter is tested on its fixed fields without either.
_HEAD = struct.Struct("<11Iq3d?2I")
(
    _H_ATTEMPT,
    _H_TYPE,
    _H_NAME,
    _H_ACTOR,
    _H_JOB,
    _H_PARENT,
    _H_SHAPE,
    _H_NODE,
    _H_WORKER,
    _H_STATE,
    _H_ERROR,
    _H_PID,
    _H_CREATED,
    _H_START,
    _H_END,
    _H_OVER,
    _H_EVENTS,
    _H_ARGS,
) = range(18)
_Head = tuple[Any, ...]
_MIN_VALUES = 4096  # the shared values a table keeps before it drops those no task uses

# The short row's columns that a filter is tested on in the record: those held as an
# index into the shared values (tested once per index), and those held as numbers.
_BY_INDEX = {
    "name": _H_NAME,
    "func_or_class_name": _H_NAME,
    "state": _H_STATE,
    "job_id": _H_JOB,
    "actor_id": _H_ACTOR,
    "type": _H_TYPE,
    "parent_task_id": _H_PARENT,
    "node_id": _H_NODE,
    "worker_id": _H_WORKER,
    "error_type": _H_ERROR,
}
_SHORT_KEYS = frozenset({*_BY_INDEX, "task_id", "attempt_number", "worker_pid"})


@lru_cache(maxsize=64)
def _events(n: int) -> struct.Struct:
    """The layout of ``n`` events: their states' indices, then their times."""
    return struct.Struct(f"<{n}I{n}d")


def _pid(head: _Head) -> int | None:
    pid: int = head[_H_PID]
    return None if pid < 0 else pid


def _arg_ids(packed: bytes, head: _Head) -> tuple[list[bytes], int]:
    """A record's argument ids, and where its error's text starts."""
    at = _HEAD.size + 12 * head[_H_EVENTS]
    ids = []
    for _ in range(head[_H_ARGS]):
        size = packed[at]
        ids.append(packed[at + 1 : at + 1 + size])
        at += 1 + size
    return ids, at


class TaskTable:
    """The tasks whose owners run on this node, merged from their events; at most
    ``max_tasks``, the oldest finished evicted first.

    Batches come packed (``add_packed``) and are kept as they came until the table is read
    (or they pass ``max_pending_bytes``): then ``unpack`` opens them and they are merged, and
    ``merged`` is called (the node gives the memory they took back). So a node spends nothing
    on events while tasks run (merging costs it several µs a task, which on a small machine
    is taken from the tasks); what it does is done on request."""

    def __init__(
        self,
        max_tasks: int = MAX_TASKS,
        unpack: Callable[[bytes], Sequence[Any]] | None = None,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        merged: Callable[[], None] | None = None,
    ) -> None:
        if max_tasks < 1:
            raise ValueError(f"a task table needs room for 1 task or more, not {max_tasks}")
        self.max_tasks = max_tasks
        self._unpack = unpack
        self.max_pending_bytes = max_pending_bytes
        self._merged = merged  # called once waiting batches are merged and let go
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._tasks: dict[bytes, _Record | bytes] = {}  # oldest first; ended ones packed
        self._over: deque[bytes] = deque()  # finished or failed, in the order they ended
        # The key of each task not over, by itself: ``_over`` then holds the dict's own key
        # (each batch comes with ids of its own, and 100,000 copies cost 5 MB).
        self._keys: dict[bytes, bytes] = {}
        self.evicted = 0  # tasks evicted to stay within max_tasks
        self.dropped_at_owners = 0  # events the owners' buffers dropped before shipping
        self._shapes: dict[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]] = {}
        self._values: list[Any] = [None]  # shared by the packed records, by index
        self._indices: dict[Any, int] = {None: 0}
        self._max_values = _MIN_VALUES

    def __len__(self) -> int:
        self._merge_pending()
        return len(self._tasks)

    def add_packed(self, batch: bytes, dropped: int = 0) -> None:
        """Keep a packed batch of events (``add``'s, packed) to merge when the table is read."""
        self.dropped_at_owners += dropped
        self._pending.append(batch)
        self._pending_bytes += len(batch)
        if self._pending_bytes > self.max_pending_bytes:
            self._merge_pending()

    def _merge_pending(self) -> None:
        if self._pending:
            assert self._unpack is not None, "a table given packed batches needs unpack"
            pending, self._pending, self._pending_bytes = self._pending, [], 0
            pending.reverse()
            while pending:  # (each batch let go once merged: the two do not add up)
                self.add(self._unpack(pending.pop()))
            if self._merged is not None:
                self._merged()

    def add(self, events: Sequence[Any], dropped: int = 0) -> None:
        """Merge a batch of one owner's events, in the order recorded, flat as ``to_wire``
        makes it (``dropped``: how many its buffer dropped)."""
        self.dropped_at_owners += dropped
        tasks = self._tasks
        i, n = 0, len(events)
        while i < n:
            kind, task_id, t = events[i], events[i + 1], events[i + 2]
            rec = tasks.get(task_id)
            if kind == STARTED:  # (of a task not over, still waiting on its worker)
                if type(rec) is _Record and rec.state == SUBMITTED_TO_WORKER:
                    rec.step(RUNNING, t)
                i += 3
                continue
            if rec is None:  # (its earlier events may have been dropped or evicted)
                rec = tasks[task_id] = _Record(task_id)
                self._keys[task_id] = task_id
                rec.created = t
            elif type(rec) is bytes:
                rec = tasks[task_id] = _Record.again(self._unpacked(task_id, rec))
                self._keys[task_id] = task_id
            assert isinstance(rec, _Record)
            if kind == SUBMITTED:
                self._submitted(rec, events[i : i + 11])
            elif kind == ARGS_READY:
                rec.step(PENDING_NODE_ASSIGNMENT, t)
            elif kind == PUSHED:
                if rec.ran:  # a new attempt
                    rec.attempt += 1
                    rec.ran = False
                    rec.error = None
                rec.node_id = events[i + 3].hex()
                if events[i + 4]:
                    rec.worker_id = events[i + 4].hex()
                rec.step(SUBMITTED_TO_WORKER, t)
                if events[i + 5]:
                    rec.step(RUNNING, t)
            else:
                start, end, pid, worker_id, error_type, message = events[i + 3 : i + 9]
                error = None if error_type is None else (error_type, message)
                rec.run(t, start, end, pid, worker_id, error)
                if kind == ENDED:
                    if not rec.over:
                        rec.over = True
                        self._over.append(self._keys.pop(task_id, task_id))
                    tasks[task_id] = self._packed(rec.ended())
            i += WIDTH[kind]
        self._evict()
        if len(self._values) > self._max_values:
            self._repack()

    def _submitted(self, rec: _Record, event: Sequence[Any]) -> None:
        _, _, t, kind, name, class_name, actor_id, job_id, parent_id, shape, arg_ids = event
        rec.type = kind
        if kind == ACTOR_TASK:
            rec.name = f"{class_name}.{name}"
        elif kind == ACTOR_CREATION_TASK:
            rec.name = f"{class_name}.__init__"
        else:
            rec.name = name
        rec.actor_id = actor_id.hex() if actor_id else None
        rec.job_id = job_id.hex()
        rec.parent_id = parent_id.hex() if parent_id else None
        shape = tuple(map(tuple, shape))  # (from the wire: [name, units] lists)
        if len(self._shapes) >= _MAX_SHAPES:  # (shared while few, as they are in practice)
            self._shapes.clear()
        rec.shape = self._shapes.setdefault(shape, shape)
        rec.arg_ids = tuple(arg_ids)
        rec.created = t
        if rec.over:  # run again (its object was lost): a new attempt
            rec.over = False
            rec.attempt += 1
            rec.ran = False
        rec.step(PENDING_ARGS_AVAIL if arg_ids else PENDING_NODE_ASSIGNMENT, t)

    def _evict(self) -> None:
        tasks, over = self._tasks, self._over
        excess = len(tasks) - self.max_tasks
        while excess > 0 and over:
            task_id = over.popleft()
            if type(tasks.get(task_id)) is bytes:  # (not gone already, nor running again)
                del tasks[task_id]
                excess -= 1
                self.evicted += 1
        if excess > 0:  # none has finished: the oldest of all
            for task_id in list(islice(tasks, excess)):
                del tasks[task_id]
                self._keys.pop(task_id, None)
            self.evicted += excess

    # -- the packed records ------------------------------------------------------------------

    def _index(self, value: Any) -> int:
        i = self._indices.get(value)
        if i is None:
            i = self._indices[value] = len(self._values)
            self._values.append(value)
        return i

    def _packed(self, rec: _Ended) -> bytes:
        index = self._index
        events, arg_ids, error, pid = rec[_EVENTS], rec[_ARG_IDS], rec[_ERROR], rec[_PID]
        n = len(events) // 2
        parts = [
            _HEAD.pack(
                rec[_ATTEMPT],
                index(rec[_TYPE]),
                index(rec[_NAME]),
                index(rec[_ACTOR_ID]),
                index(rec[_JOB_ID]),
                index(rec[_PARENT_ID]),
                index(rec[_SHAPE]),
                index(rec[_NODE_ID]),
                index(rec[_WORKER_ID]),
                index(rec[_STATE]),
                index(error[0] if error else None),
                -1 if pid is None else pid,
                rec[_CREATED],
                rec[_START],
                rec[_END],
                rec[_OVER],
                n,
                len(arg_ids),
            ),
            _events(n).pack(*map(index, events[::2]), *events[1::2]),
        ]
        for oid in arg_ids:
            parts += bytes((len(oid),)), oid
        if error:
            parts.append((error[1] or "").encode("utf-8", "surrogatepass"))
        return b"".join(parts)

    def _unpacked(self, task_id: bytes, packed: bytes, values: list[Any] | None = None) -> _Ended:
        """The record as the tuple ``_Record.ended`` makes (see ``_TASK_ID`` and on)."""
        v = self._values if values is None else values
        head = _HEAD.unpack_from(packed)
        n = head[_H_EVENTS]
        flat = _events(n).unpack_from(packed, _HEAD.size)
        events: list[Any] = [None] * (2 * n)
        events[::2] = map(v.__getitem__, flat[:n])
        events[1::2] = flat[n:]
        arg_ids, at = _arg_ids(packed, head)
        error_type = v[head[_H_ERROR]]
        return (
            task_id.hex(),
            head[_H_ATTEMPT],
            v[head[_H_TYPE]],
            v[head[_H_NAME]],
            v[head[_H_ACTOR]],
            v[head[_H_JOB]],
            v[head[_H_PARENT]],
            v[head[_H_SHAPE]],
            tuple(arg_ids),
            v[head[_H_NODE]],
            v[head[_H_WORKER]],
            _pid(head),
            v[head[_H_STATE]],
            tuple(events),
            head[_H_CREATED],
            head[_H_START],
            head[_H_END],
            None
            if error_type is None
            else (error_type, packed[at:].decode("utf-8", "surrogatepass")),
            head[_H_OVER],
        )

    def _ended(self, task_id: bytes, rec: _Record | bytes) -> _Ended:
        return self._unpacked(task_id, rec) if isinstance(rec, bytes) else rec.ended()

    def _repack(self) -> None:
        """Pack the records anew with only the shared values they use: values of tasks
        evicted since (ids of parents, workers, ...) go, and the table stays bounded."""
        old, self._values, self._indices = self._values, [None], {None: 0}
        tasks = self._tasks
        for task_id, rec in tasks.items():
            if type(rec) is bytes:
                tasks[task_id] = self._packed(self._unpacked(task_id, rec, old))
        self._max_values = max(_MIN_VALUES, 2 * len(self._values))

    # -- reading -------------------------------------------------------------------------

    def warnings(self) -> list[str]:
        """What the rows lack, said so that a user knows the listing is incomplete."""
        self._merge_pending()
        out = []
        if self.dropped_at_owners:
            out.append(
                f"{self.dropped_at_owners} task events were dropped by their processes' "
                "buffers before reaching their node (raise "
                "EMBER_TASK_EVENTS_MAX_NUM_STATUS_EVENTS_BUFFER_ON_WORKER)."
            )
        if self.evicted:
            out.append(
                f"{self.evicted} tasks were evicted from their node's table, which keeps "
                f"{self.max_tasks} (raise EMBER_TASK_EVENTS_MAX_NUM_TASK_IN_GCS)."
            )
        return out

    def rows(self, detail: bool) -> Sequence[dict[str, Any]]:
        """The tasks as Ray's ``TaskState`` rows, oldest submitted first; each row is made
        when it is read, so that the first 100 of 100,000 cost only theirs."""
        self._merge_pending()
        row = _detail_row if detail else _row
        return _Rows(
            list(self._tasks), list(self._tasks.values()), lambda k, r: row(self._ended(k, r))
        )

    def select(
        self, detail: bool, filters: Sequence[Sequence[Any]], limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """What ``state_filters.select`` makes of ``rows`` (with detail where a filter names
        a detail column), the filters tested on the packed records: a row is made only for a
        match within ``limit``, so a query over 100,000 tasks leaves no 100,000 rows behind."""
        self._merge_pending()
        tasks = self._tasks
        detail = detail or any(f[0] not in _SHORT_KEYS for f in filters)
        row = _detail_row if detail else _row
        if not filters:
            keys = list(islice(tasks, max(limit, 0)))
            return [row(self._ended(k, tasks[k])) for k in keys], len(tasks)
        tests = [self._test(key, predicate, value, row) for key, predicate, value in filters]
        found: list[dict[str, Any]] = []
        total, head = 0, _HEAD.unpack_from
        for task_id, rec in tasks.items():
            packed = rec if isinstance(rec, bytes) else self._packed(rec.ended())
            fields = head(packed)
            if all(test(task_id, packed, fields) for test in tests):
                total += 1
                if len(found) < limit:
                    found.append(row(self._unpacked(task_id, packed)))
        return found, total

    def _test(
        self, key: str, predicate: str, value: Any, row: Callable[[_Ended], dict[str, Any]]
    ) -> Callable[[bytes, bytes, _Head], bool]:
        """Whether a packed record passes the filter ``(key, predicate, value)``."""
        matches = state_filters.matches
        at = _BY_INDEX.get(key)
        if at is not None:  # tested once per shared value
            values, known = self._values, dict[int, bool]()

            def shared(task_id: bytes, packed: bytes, head: _Head) -> bool:
                i = head[at]
                hit = known.get(i)
                if hit is None:
                    hit = known[i] = matches({key: values[i]}, key, predicate, value)
                return hit

            return shared
        if key == "task_id":
            return lambda task_id, packed, head: matches(
                {key: task_id.hex()}, key, predicate, value
            )
        if key == "attempt_number":
            return lambda task_id, packed, head: matches(
                {key: head[_H_ATTEMPT]}, key, predicate, value
            )
        if key == "worker_pid":
            return lambda task_id, packed, head: matches({key: _pid(head)}, key, predicate, value)
        return lambda task_id, packed, head: matches(
            row(self._unpacked(task_id, packed)), key, predicate, value
        )

    def groups(self) -> Iterator[tuple[Any, Any, Any]]:
        """Each task's function or class name, type and state (what a summary counts)."""
        self._merge_pending()
        v, head = self._values, _HEAD.unpack_from
        for rec in self._tasks.values():
            if isinstance(rec, bytes):
                h = head(rec)
                yield v[h[_H_NAME]], v[h[_H_TYPE]], v[h[_H_STATE]]
            else:
                yield rec.name, rec.type, rec.state

    def runs(self, detail: bool) -> list[dict[str, Any]]:
        """The runs of the tasks that ended, for the timeline: one row per worker,
        ``{"node_id", "worker_id", "worker_pid", "runs"}``, its runs one flat list of
        ``RUN_FIELDS`` items per run: task id, name, start, end (seconds), failed, attempt
        number, argument ids (or None). Flat, not a list or dict per run: 100,000 runs then
        cross two processes as a few strings and numbers each, with nothing for the
        decoder to build (or the garbage collector to scan) per run."""
        self._merge_pending()
        v, head = self._values, _HEAD.unpack_from
        workers: dict[tuple[int, int], dict[str, Any]] = {}
        for task_id, rec in self._tasks.items():
            if type(rec) is not bytes:  # (not over)
                continue
            h = head(rec)
            if not h[_H_START]:
                continue
            where = (h[_H_NODE], h[_H_WORKER])
            row = workers.get(where)
            if row is None:
                row = workers[where] = {
                    "node_id": v[h[_H_NODE]],
                    "worker_id": v[h[_H_WORKER]],
                    "worker_pid": _pid(h),
                    "runs": [],
                }
            row["runs"] += (
                task_id.hex(),
                v[h[_H_NAME]],
                h[_H_START],
                h[_H_END],
                v[h[_H_STATE]] == FAILED,
                h[_H_ATTEMPT],
                [oid.hex() for oid in _arg_ids(rec, h)[0]] if h[_H_ARGS] else None,
            )
        return list(workers.values())


class _Rows(Sequence[dict[str, Any]]):
    def __init__(
        self,
        task_ids: list[bytes],
        records: list[_Record | bytes],
        row: Callable[[bytes, _Record | bytes], dict[str, Any]],
    ) -> None:
        self._task_ids, self._records, self._row = task_ids, records, row

    def __len__(self) -> int:
        return len(self._records)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return list(map(self._row, self._task_ids[i], self._records[i]))
        return self._row(self._task_ids[i], self._records[i])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return map(self._row, self._task_ids, self._records)


def _row(rec: _Ended) -> dict[str, Any]:
    error = rec[_ERROR]
    return {
        "task_id": rec[_TASK_ID],
        "attempt_number": rec[_ATTEMPT],
        "name": rec[_NAME],
        "state": rec[_STATE],
        "job_id": rec[_JOB_ID],
        "actor_id": rec[_ACTOR_ID],
        "type": rec[_TYPE],
        "func_or_class_name": rec[_NAME],
        "parent_task_id": rec[_PARENT_ID],
        "node_id": rec[_NODE_ID],
        "worker_id": rec[_WORKER_ID],
        "worker_pid": rec[_PID],
        "error_type": error[0] if error else None,
    }


def _ms(t: float) -> int | None:
    return int(t * 1000) if t else None


def _detail_row(rec: _Ended) -> dict[str, Any]:
    row = _row(rec)
    error = rec[_ERROR]
    ev = rec[_EVENTS]
    row["language"] = "PYTHON"
    row["required_resources"] = shape_dict(rec[_SHAPE])
    row["runtime_env_info"] = None
    row["placement_group_id"] = group_of(name for name, _ in rec[_SHAPE])
    row["events"] = [
        {"state": s, "created_ms": t * 1000} for s, t in zip(ev[::2], ev[1::2], strict=True)
    ]
    row["profiling_data"] = None
    row["creation_time_ms"] = _ms(rec[_CREATED])
    row["start_time_ms"] = _ms(rec[_START])
    row["end_time_ms"] = _ms(rec[_END]) if rec[_OVER] or error else None
    row["task_log_info"] = None
    row["error_message"] = error[1] if error else None
    row["is_debugger_paused"] = None
    row["call_site"] = None
    row["label_selector"] = None
    row["fallback_strategy"] = None
    # (Ember's own: the ObjectRef arguments, which the timeline draws arrows from)
    row["arg_object_ids"] = [oid.hex() for oid in rec[_ARG_IDS]]
    return row
