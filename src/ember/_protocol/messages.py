"""Every message any two Ember processes exchange, defined in one place.

Each is a class here, marked with its wire code (``wire.py`` makes it a message and carries it);
adding a message means adding a class here and nothing else. Requests that expect an answer
carry ``rid``; the answer is an ``Answer`` with the same ``rid``: a typed answer where it has a
structure of its own (``LeaseGranted``...), else a ``Reply`` (an acknowledgement, an error, or
a plain value).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from functools import partial
from typing import Any, NamedTuple

from ember._protocol.wire import Message as Message
from ember._protocol.wire import UnknownMessage as UnknownMessage
from ember._protocol.wire import builder as builder
from ember._protocol.wire import decode as decode
from ember._protocol.wire import message as _message
from ember._protocol.wire import records_of as _records_of
from ember._protocol.wire import replace as replace

# Result kinds inside TaskDone.results and PushTask.deps.
INLINE = 0  # data is the serialized value
STORED = 1  # the value is in the node's object store; data is its size
ERROR = 2  # data is a serialized exception

# ``num_returns`` of generator tasks: each item goes back as a GeneratorItem as it is yielded.
DYNAMIC = -1  # num_returns="dynamic": the one return value lists the items' refs
STREAMING = -2  # num_returns="streaming": the one return value says when the task is over


class ReturnValue(NamedTuple):
    """One return value of a task, in TaskDone. A tuple, so that msgpack packs it as is."""

    kind: int  # INLINE, STORED or ERROR
    data: Any  # the serialized value (INLINE) or exception (ERROR); the size (STORED)
    contained: Sequence[Sequence[bytes]] = ()  # [id, owner] of the refs inside the value
    node_id: bytes = b""  # STORED: the node whose store holds it


class ErrorKind(str, Enum):
    """Why a request failed: the first element of ``Reply.error``. Most name the
    ``ember.exceptions`` class (or builtin) the caller raises; the others are conditions the
    caller handles itself."""

    CONNECTION_LOST = "ConnectionLost"  # made locally: the connection closed before an answer
    WORKER_START_FAILED = "WorkerStartFailed"  # the node could not start a worker for a lease
    UNSCHEDULABLE = "Unschedulable"  # no node in the cluster can ever grant the shape
    PLACEMENT_GROUP_REMOVED = "TaskPlacementGroupRemoved"  # the lease's group is gone
    OWNER_DIED = "OwnerDiedError"
    OBJECT_LOST = "ObjectLostError"
    ACTOR_DIED = "ActorDiedError"
    ACTOR_INIT_FAILED = "ActorInitError"
    NODE_DIED = "NodeDiedError"
    OUT_OF_MEMORY = "OutOfMemoryError"  # the memory monitor killed the process
    INVALID = "ValueError"  # the request cannot be met as asked (an unknown or taken name)
    UNEXPECTED = "UnexpectedMessage"  # the peer does not take this request


class Answer(Message):
    """The base of every answer; ``rpc.Calls`` hands it to the callback of the request with
    the same ``rid``. Each request's docstring names the answers it gets; any request may
    also get an error ``Reply`` (from its peer, or ConnectionLost from rpc)."""

    __slots__ = ()
    rid: int


@_message(1)
class Reply(Answer):
    rid: int
    error: list[str] | None = None  # [ErrorKind value, message]
    value: Any = None

    @property
    def kind(self) -> ErrorKind | None:
        """The error's kind, None for a success."""
        return None if self.error is None else ErrorKind(self.error[0])


def reply_value(answer: Answer) -> Any:
    """The value of a successful Reply; None for an error or an answer of another type."""
    return answer.value if type(answer) is Reply and answer.error is None else None


def error_reply(rid: int, kind: ErrorKind, text: str, value: Any = None) -> Reply:
    """The answer to request ``rid`` that it failed, with ``value`` as any detail (such as a
    serialized cause)."""
    return Reply(rid=rid, error=[kind.value, text], value=value)


# ---- typed answers -------------------------------------------------------------------------


@_message(100)
class LeaseGranted(Answer):
    """Node -> client, for RequestLease: this worker is yours until you return the lease."""

    rid: int
    lease_id: int
    worker_id: bytes
    addr: str  # where the worker listens for PushTask
    gpu_ids: list[int]
    # No room for another lease of this shape now: the caller may queue a task behind
    # another on its leases instead of waiting for a new one.
    saturated: bool
    node_id: bytes  # the node that granted it


@_message(101)
class LeaseSpilled(Answer):
    """Node -> client, for RequestLease: no room here, ask that node (``spilled=True``).
    A lease that can never be granted is refused with an error Reply instead
    (ErrorKind.UNSCHEDULABLE or WORKER_START_FAILED)."""

    rid: int
    node_id: bytes
    address: str


@_message(102)
class WorkerExited(Answer):
    """Node -> client, for WorkerExit: how that worker's process ended (None: unknown)."""

    rid: int
    pid: int | None = None
    code: int | None = None
    log: str = ""
    log_note: str = ""
    oom: str = ""  # the memory monitor killed it: why, with the node's numbers
    oom_retry: bool = True  # and its task may run again (an OOM retry)


@_message(103)
class NodeRegistered(Answer):
    """Control store -> node, for RegisterNode: the cluster's settings and view."""

    rid: int
    heartbeat_interval: float
    node_timeout: float
    view: list[Any]


@_message(104)
class ActorStarted(Answer):
    """Worker -> node, for StartActor: the actor is built and takes calls there."""

    rid: int
    addr: str
    pid: int = 0  # its process (for the state API: the home may be another node)
    ran: Sequence[Any] = ()  # [start, end] of its construction (time.time()), for task events


@_message(105)
class ActorRegistered(Answer):
    """For CreateActor: the actor's id, another one's for ``get_if_exists`` on a taken name."""

    rid: int
    actor_id: bytes


@_message(106)
class NamedActor(Answer):
    """Control store -> caller, for GetNamedActor."""

    rid: int
    actor_id: bytes
    handle_meta: bytes
    home: bytes  # the node that manages it


@_message(107)
class ActorAlive(Answer):
    """Node -> caller, for ResolveActor: where the actor's current incarnation takes calls."""

    rid: int
    addr: str
    incarnation: int
    node_id: bytes
    # For the caller's task events: the actor's max_concurrency, and [start, end, pid,
    # worker_id] of its construction.
    max_concurrency: int = 1
    ran: Sequence[Any] = ()


@_message(108)
class ActorEnded(Answer):
    """Node -> caller, for ResolveActor with ``ended``: how that incarnation ended; the actor
    was restarted."""

    rid: int
    how: Any


@_message(109)
class PullAccepted(Answer):
    """Node -> node, for PullObject: ``size`` raw bytes of the object follow."""

    rid: int
    size: int


@_message(110)
class ObjectAt(Answer):
    """Owner's node -> node, for LocateObject: the node that holds the object, or (``node_id``
    empty) its value when it is small enough to travel inline."""

    rid: int
    node_id: bytes = b""
    inline: list[Any] | None = None  # [kind, data]


# ---- any client (driver or worker) -> node manager -------------------------------------------


@_message(10)
class Hello(Message):
    rid: int
    kind: str  # "driver" | "worker"
    client_id: bytes
    pid: int
    job_id: bytes
    listen_addr: str | None
    log_to_driver: bool = False


@_message(11)
class RequestLease(Message):
    """Client (or a node, for an actor) -> node: answered with LeaseGranted or LeaseSpilled."""

    rid: int
    shape: dict[str, float]
    owner_id: bytes
    describe: str = ""  # for the infeasible-task warning
    # None, "SPREAD" or ["node", node_id, soft]: where it may run; ["labels", selector,
    # strategy] with a label selector (``_core/placement.py``)
    strategy: Any = None
    spilled: bool = False  # sent here by another node: grant or queue, never spill again
    dedicated: bool = False  # a worker of its own, for an actor placed from another node
    job_id: bytes = b""  # the job of the tasks it is for (a worker is shared within one)
    runtime_env: str = ""  # canonical text: only a worker set up for it may take the lease
    retriable: bool = True  # its tasks run again if their worker dies (the memory monitor
    # kills such workers first)
    actor_id: bytes = b""  # (dedicated) the actor its worker will host


@_message(12)
class CancelLeaseRequest(Message):
    rid: int


@_message(13)
class ReturnLease(Message):
    lease_id: int
    worker_failed: bool = False


@_message(14)
class RevokeLease(Message):
    """Node -> client: hand this lease back when idle, someone else needs the resources."""

    lease_id: int


@_message(15)
class TaskBlocked(Message):
    lease_id: int


@_message(16)
class TaskUnblocked(Message):
    lease_id: int


class ActorSpec(NamedTuple):
    """What a worker needs to become an actor: made by its creator, kept by the node for
    restarts, read by the worker."""

    fn_id: bytes  # the exported class
    blob: bytes  # the constructor's arguments, as in PushTask
    deps: list[list[Any]]
    args_ref: bytes
    class_name: str
    max_concurrency: int | None
    job_id: bytes
    namespace: str
    owner_id: bytes
    runtime_env: str = ""  # canonical text: the actor's worker is set up for it
    handle_meta: bytes = b""  # as in CreateActor: the actor's own process reads it too


def _actor_spec(raw: list[Any] | None) -> ActorSpec | None:
    return None if raw is None else tuple.__new__(ActorSpec, raw)


@_message(17)
class CreateActor(Message):
    """Client -> node -> control store: answered with ActorRegistered."""

    rid: int
    actor_id: bytes
    spec: ActorSpec | None  # None until its arguments are ready
    shape: dict[str, float]
    owner_id: bytes
    job_id: bytes
    name: str | None
    namespace: str
    detached: bool
    get_if_exists: bool
    max_restarts: int
    handle_meta: bytes  # serialized method table, for get_actor() in other processes
    class_name: str = ""
    strategy: Any = None  # as in RequestLease
    capture_child_tasks: bool = False  # its placement group takes the tasks it starts

    _records = {"spec": _actor_spec}


ARGUMENT_FAILED = "an argument of its constructor failed"  # the node's reason, in ActorDied


@_message(30)
class ActorArgs(Message):
    """Client -> node: an actor's constructor arguments are ready (or one of them failed)."""

    actor_id: bytes
    spec: ActorSpec | None
    error: bytes | None  # a serialized exception when an argument failed

    _records = {"spec": _actor_spec}


@_message(18)
class ResolveActor(Message):
    """Caller -> node: answered with ActorAlive (ActorEnded for ``ended``), or an
    ACTOR_DIED error Reply."""

    rid: int
    actor_id: bytes
    min_incarnation: int = 0
    # Answer once incarnation min_incarnation - 1 has ended, without waiting for the next to
    # start: the value says how it ended and that it was restarted (or the error, that the
    # actor is dead). For the error of a call that the end of that process interrupted.
    ended: bool = False


@_message(19)
class KillActor(Message):
    """Client -> node (-> the actor's home): end it. With a ``rid`` the sender waits for a
    Reply, sent once the control store has freed its name (``ember.kill`` returns then)."""

    actor_id: bytes
    no_restart: bool = True
    reason: str = ""
    rid: int = 0


@_message(20)
class ObjectCreated(Message):
    object_id: bytes
    size: int
    owner_id: bytes
    contained: Sequence[Sequence[bytes]] = ()  # [id, owner] of the refs inside the value


@_message(33)
class MakeRoom(Message):
    """Writer -> node: the store is full; make room for a new object of ``size`` bytes (by
    spilling objects no process maps). The reply is True once there is room, which the writer
    then reserves itself (nothing is reserved for a writer that dies waiting); False if there
    cannot be: the writer then writes the object to the spill folder."""

    rid: int
    size: int


@_message(21)
class PutInline(Message):
    object_id: bytes
    data: list[Any]  # [kind, data] as in ReturnValue: INLINE or ERROR
    owner_id: bytes
    contained: Sequence[Sequence[bytes]] = ()  # [id, owner] of the refs inside the value


@_message(22)
class WaitObject(Message):
    rid: int
    object_id: bytes
    owner_id: bytes
    fetch: bool = True  # False: answer once it exists anywhere, without pulling it here


@_message(23)
class IncRef(Message):
    ids: list[bytes]
    owners: Sequence[bytes] = ()  # each id's owner, when known (for holders on other nodes)


@_message(24)
class DecRef(Message):
    ids: list[bytes]


@_message(29)
class FreeObjects(Message):
    """Owner -> node: objects that never left the owner, free them now."""

    ids: list[bytes]


@_message(25)
class KillWorker(Message):
    worker_id: bytes


@_message(31)
class WorkerExit(Message):
    """Client -> the node that leased it a worker whose connection closed: how did that
    process end? Answered with WorkerExited once it has."""

    rid: int
    worker_id: bytes


@_message(26)
class ClusterInfo(Message):
    rid: int


@_message(27)
class LogLines(Message):
    """Node -> driver: lines a worker printed, already prefixed with its task and pid."""

    lines: list[str]
    err: bool = True  # printed on stderr (True) or stdout (False)


@_message(32)
class FlushOutput(Message):
    """Driver -> node, when the driver leaves; node -> each of its workers: answer once every
    line printed before this has been passed on. A worker answers on the connection that
    carries its lines, so the answer comes after them; the node answers once its workers
    have (or a moment has passed)."""

    rid: int


@_message(28)
class ActorDone(Message):
    """Worker -> node: this actor's process may go (its __init__ failed or it called exit)."""

    actor_id: bytes
    reason: str


@_message(37)
class InstallRuntimeEnv(Message):
    """Driver -> node, at init for a job env with ``eager_install``: start a worker for the
    env now, so that its setup (a pip install) overlaps the driver's own start."""

    runtime_env: str


# ---- cluster: nodes, the control store, and objects between nodes ----------------------------


@_message(2)
class Auth(Message):
    """The first message on every TCP connection; anything else first closes it."""

    token: str


@_message(80)
class RegisterNode(Message):
    """Node -> control store: answered with NodeRegistered (the cluster's settings and view)."""

    rid: int
    node_id: bytes
    address: str  # tcp: where other nodes and remote callers reach this node
    local_address: str  # unix: for processes on the same host
    host: str
    total: dict[str, float]
    pid: int
    labels: dict[str, str] | None = None  # node labels (``_core/labels.py``)


@_message(81)
class Heartbeat(Message):
    """Node -> control store, a few times a second; the reply is the cluster view."""

    rid: int
    node_id: bytes
    available: dict[str, float]
    pending: list[list[Any]]  # what waits here: [kind, shape, count, capped] (see waiting())
    total: dict[str, float] | None = None  # when it changed (placement groups' bundles)


@_message(82)
class NodeDied(Message):
    """Control store -> nodes -> clients: stop waiting for anything on this node."""

    node_id: bytes
    reason: str


@_message(83)
class ObjectLocated(Message):
    """Owner -> its node: a task on another node stored this return value there."""

    object_id: bytes
    node_id: bytes
    size: int


@_message(84)
class LocateObject(Message):
    """Node -> the owner's node: where is this object? Answered with ObjectAt once it exists."""

    rid: int
    object_id: bytes
    owner_id: bytes


@_message(85)
class PullObject(Message):
    """Node -> node holding an object: answered with PullAccepted (its size), then its bytes
    follow raw."""

    rid: int
    object_id: bytes
    node_id: bytes = b""  # who pulls: if that node dies, the sender gives up


@_message(86)
class DropOwner(Message):
    """Owner's node -> node holding an object: the owner let go of these objects."""

    ids: list[bytes]
    owner_id: bytes


@_message(87)
class GetNodes(Message):
    """Any process -> control store: the node table."""

    rid: int


@_message(90)
class ClusterView(Message):
    """Control store -> nodes, when a node joins: the node table, without waiting for the
    next heartbeat."""

    view: list[Any]


@_message(91)
class PutObject(Message):
    """A driver in client mode -> the head: store this object file (its bytes) for me."""

    object_id: bytes
    data: bytes


@_message(92)
class JobStarted(Message):
    """Driver -> control store, on connecting: the job ends when this connection closes."""

    job_id: bytes
    namespace: str
    host: str
    pid: int


@_message(93)
class ListJobs(Message):
    """Any process -> control store: the connected jobs."""

    rid: int


@_message(89)
class ActorGone(Message):
    """Node -> control store: forget this actor and free its name (with a ``rid``: then
    answer a Reply)."""

    actor_id: bytes
    rid: int = 0


@_message(88)
class LookupActor(Message):
    """Node -> control store: which node manages this actor?"""

    rid: int
    actor_id: bytes


# ---- client -> control store ----------------------------------------------------------------


@_message(40)
class ExportFunction(Message):
    fn_id: bytes
    data: bytes


@_message(41)
class FetchFunction(Message):
    rid: int
    fn_id: bytes


@_message(42)
class GetNamedActor(Message):
    """Any process -> control store: answered with NamedActor."""

    rid: int
    name: str
    namespace: str


@_message(43)
class ListNamedActors(Message):
    """Any process -> control store: the live named actors of one namespace (None: of all).
    Answered with NamedActors."""

    rid: int
    namespace: str | None


class NamedActorEntry(NamedTuple):
    name: str
    namespace: str


@_message(44)
class NamedActors(Answer):
    """Control store -> caller, for ListNamedActors."""

    rid: int
    actors: list[NamedActorEntry]

    _records = {"actors": _records_of(NamedActorEntry)}


# ---- caller -> worker (direct task and actor calls) -----------------------------------------


@_message(60)
class PushTask(Message):
    task_id: bytes
    fn_id: bytes  # for actor calls: the method name, utf-8
    blob: bytes  # serialized (args, kwargs) with placeholders for top-level ObjectRefs
    deps: list[list[Any]]  # [kind, data] per placeholder, kinds INLINE or STORED
    num_returns: int  # or DYNAMIC or STREAMING: a generator task, whose items stream back
    name: str
    owner_id: bytes
    lease_id: int = 0
    gpu_ids: Sequence[int] = ()
    actor_id: bytes = b""
    job_id: bytes = b""
    namespace: str = ""
    args_ref: bytes = b""  # when the arguments are large, they are this stored object instead
    resources: dict[str, float] | None = None  # what the lease holds, for the task to see
    capture_child_tasks: bool = False  # its placement group takes the tasks it starts
    backpressure: int = -1  # a generator task's _generator_backpressure_num_objects (-1: none)
    concurrency_group: str = ""  # an actor call's group, "" for its method's (or the default)


@_message(61)
class TaskDone(Message):
    task_id: bytes
    results: Sequence[ReturnValue]
    # The worker ends once its running tasks are answered and starts nothing more (a
    # function's max_calls): what its caller pushed behind this task never runs there.
    retiring: bool = False
    # For the caller's task events: [start, end, pid, worker_id] of the run (time.time()).
    ran: Sequence[Any] = ()

    _records = {"results": _records_of(ReturnValue)}


@_message(62)
class CancelTask(Message):
    task_id: bytes
    force: bool = False
    recursive: bool = True  # also cancel the tasks this task submitted


@_message(75)
class GeneratorItem(Message):
    """Worker -> caller: a generator task (num_returns < 0 in PushTask) yielded item
    ``index`` (from 0), stored as its return object ``index + 2``, before its TaskDone."""

    task_id: bytes
    index: int
    value: ReturnValue

    _records = {"value": partial(tuple.__new__, ReturnValue)}


@_message(76)
class GeneratorConsumed(Message):
    """Caller -> worker: the caller has taken ``consumed`` items of the generator task
    (-1: it no longer wants them); a worker paused by backpressure goes on."""

    task_id: bytes
    consumed: int


@_message(64)
class TakeBackTasks(Message):
    """Caller -> worker: hand back those of these tasks queued on the lease that have not
    started (the Reply's value lists them), for a worker that became free to run instead."""

    rid: int
    lease_id: int
    task_ids: list[bytes]


@_message(63)
class StartActor(Message):
    """Node -> worker: become this actor. Answered with ActorStarted, or an
    ACTOR_INIT_FAILED error Reply whose value is the serialized exception."""

    rid: int
    actor_id: bytes
    spec: ActorSpec
    incarnation: int
    gpu_ids: list[int]
    resources: dict[str, float] | None = None
    capture_child_tasks: bool = False  # its placement group takes the tasks it starts

    _records = {"spec": _actor_spec}


# ---- placement groups (``_core/placement_groups.py``) -----------------------------------------


@_message(150)
class CreatePlacementGroup(Message):
    """Client -> control store: reserve these bundles (answered at once; the reservation
    follows when they fit)."""

    rid: int
    pg_id: bytes
    bundles: list[dict[str, float]]
    strategy: str
    name: str
    namespace: str
    job_id: bytes
    detached: bool


@_message(151)
class RemovePlacementGroup(Message):
    rid: int
    pg_id: bytes


@_message(152)
class GetPlacementGroups(Message):
    """Client -> control store: the table entries of one group (by id, or by name in a
    namespace), or of all when neither is given. Answered with PlacementGroups."""

    rid: int
    pg_id: bytes
    name: str
    namespace: str


class PlacementGroupEntry(NamedTuple):
    """One placement group, as the control store's table has it."""

    pg_id: bytes
    name: str
    bundles: list[dict[str, float]]
    nodes: list[bytes | None]  # each bundle's node (None: not placed now)
    strategy: str
    state: str  # PENDING, CREATED, RESCHEDULING or REMOVED
    attempts: int  # how many times its reservation was tried


@_message(156)
class PlacementGroups(Answer):
    """Control store -> caller, for GetPlacementGroups."""

    rid: int
    entries: list[PlacementGroupEntry]

    _records = {"entries": _records_of(PlacementGroupEntry)}


class Bundle(NamedTuple):
    """A bundle of a placement group: its index in the group and its resource amounts."""

    bundle_index: int
    shape: dict[str, float]


@_message(153)
class PrepareBundles(Message):
    """Control store -> node: set these bundles aside; the Reply's value says whether all
    of them could be."""

    rid: int
    pg_id: bytes
    bundles: list[Bundle]

    _records = {"bundles": _records_of(Bundle)}


@_message(154)
class CommitBundles(Message):
    """Control store -> node: the prepared bundles become the group's resources."""

    pg_id: bytes
    indexes: list[int]


@_message(155)
class ReleaseBundles(Message):
    """Control store -> node: give these bundles back (all of the group's here when
    ``indexes`` is empty), stopping what runs in them. ``removed``: the group is gone, so
    its work is refused from now on (every node hears of it)."""

    pg_id: bytes
    indexes: list[int]
    removed: bool = False


# -- seeing what runs (the state API, the CLI and the dashboard) ---------------------------


@_message(160)
class StateQuery(Message):
    """Any process -> control store, and control store -> each node: the rows of one kind of
    state (``"nodes"``, ``"tasks"``, ...) that pass ``filters`` (``[key, op, value]``
    triples), at most ``limit`` of them. Answered by a Reply whose value is ``{"rows":
    [...], "total": n, "warnings": [...]}``, ``total`` counting the rows before the limit.
    ``timeout``: how long the asker waits, so that the store answers (partly) before that."""

    rid: int
    kind: str
    detail: bool = False
    filters: list[list[Any]] = []
    limit: int = 100
    timeout: float = 30.0


@_message(162)
class TaskEvents(Message):
    """Client -> its node, about once a second: the task events it recorded since the last
    batch, one flat list (``_core/task_events.py`` gives its layout) packed with msgpack
    (the node keeps it packed until it is asked), and how many its buffer dropped."""

    events: bytes
    dropped: int = 0


# ---- user metrics (``ember.util.metrics``, ``_core/metrics.py``) --------------------------------


class MetricPoint(NamedTuple):
    """One series of a user metric as a process has it so far: totals since the process
    started, so that a report sent twice, or lost, changes nothing."""

    kind: str  # "counter", "gauge" or "histogram"
    name: str
    description: str
    tags: Sequence[Sequence[str]]  # [key, value] pairs, sorted by key
    value: float  # a counter's total, a gauge's last value, a histogram's sum of observations
    boundaries: Sequence[float] = ()  # a histogram's bucket bounds
    counts: Sequence[int] = ()  # a histogram's observations per bucket, the last one above all


@_message(166)
class MetricsReport(Message):
    """Client -> its node, every second or so and when the client closes: the series that
    changed since its last report, and how many series it could not keep (its cap)."""

    points: list[MetricPoint]
    dropped: int = 0

    _records = {"points": _records_of(MetricPoint)}


# -- logs: `ember logs`, ember.util.state.get_log (the files are listed as the state kind "logs")


@_message(180)
class ReadLog(Message):
    """Any process -> control store -> the node with the file: at most ``max_bytes`` of it
    from ``offset``, or (``tail_lines`` > 0) its last that many lines. Answered with
    LogChunk; a name outside the log folder or of no file is an INVALID error."""

    rid: int
    node_id: bytes
    name: str
    offset: int
    max_bytes: int
    tail_lines: int = 0


@_message(181)
class LogChunk(Answer):
    rid: int
    data: bytes
    offset: int  # where in the file ``data`` starts
    size: int  # the file's size when read
