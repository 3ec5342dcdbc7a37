"""The node manager's actors: registration, placement (here or on another node), restarts and
death, and telling callers where an actor lives.

The node where an actor is created manages it for its whole life (its *home*): the control
store records the actor (and its name) with that node, so a caller anywhere asks its own node,
which asks the control store for the home and forwards the question there. The home places the
actor on one of its own workers or, when it lacks the resources, asks another node for a
dedicated worker and starts the actor there over a direct connection; either way, the end of
that worker's connection is the actor's death, and it is restarted per ``max_restarts``.
Its states and what each event does to it are ``_core.actor_lifecycle``; this module turns
messages into its events and its actions into messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ember import exceptions as exc
from ember._core import actor_lifecycle as life
from ember._core import scheduler as sched
from ember._core.actor_lifecycle import ActorLifecycle, ActorState
from ember._core.resources import Shape, shape_dict, shape_of
from ember._protocol import messages as m
from ember._transport.reactor import Connection
from ember._transport.rpc import refuse

if TYPE_CHECKING:
    from ember._runtime.node.manager import NodeManager

OWNER_EXITED = "its owner (the driver or worker that created it) exited"


@dataclass
class _ActorRecord:
    actor_id: bytes
    spec: m.ActorSpec | None  # None until its constructor's arguments are ready
    shape: Shape
    owner: bytes
    detached: bool
    life: ActorLifecycle
    class_name: str = ""
    name: str | None = None  # (for the state API, with its namespace and job)
    namespace: str = ""
    job_id: bytes = b""
    pid: int = 0  # of its current (or last) process
    ran: Sequence[Any] = ()  # [start, end, pid, worker_id] of its construction (task events)
    strategy: Any = None
    capture_child_tasks: bool = False  # its placement group takes the tasks it starts
    worker_id: bytes = b""
    node: bytes = b""  # where its worker runs
    remote: Connection[_ActorRecord] | None = (
        None  # the direct connection to a worker on another node
    )
    # (caller, rid, min incarnation, answer once the one before has ended)
    waiters: list[tuple[Connection, int, int, bool]] = field(default_factory=list)
    # The incarnation the memory monitor killed last, and why: its callers get that error.
    oom_killed: tuple[int, str] = (-1, "")


@dataclass(frozen=True)
class _Grant:
    """A dedicated worker for an actor: here (``addr`` None) or on node ``node_id``."""

    node_id: bytes
    lease_id: int
    worker_id: bytes
    gpu_ids: list[int]
    addr: str | None = None


class ActorManager:
    """The actors this node manages (their *home*), and the way to the home of others."""

    def __init__(self, node: NodeManager) -> None:
        self.node = node
        self.actors: dict[bytes, _ActorRecord] = {}
        # Actors being registered with the control store: what to do once they are.
        self.registering: dict[bytes, list[Callable[[], None]]] = {}
        # What runs once the control store has freed the name of an actor being killed.
        self.on_unregistered: dict[bytes, Callable[[], None]] = {}

    # ------------------------------------------------------------------ the node's questions

    def owned_by(self, client_id: bytes) -> bool:
        return any(
            a.owner == client_id and a.life.state is not ActorState.DEAD
            for a in self.actors.values()
        )

    def live_count(self) -> int:
        return sum(1 for a in self.actors.values() if a.life.state is not ActorState.DEAD)

    def may_restart(self, actor_id: bytes) -> bool:
        """Whether the actor would be restarted if its process died now."""
        rec = self.actors.get(actor_id)
        return rec is not None and rec.life.may_restart()

    def owner_of(self, actor_id: bytes) -> bytes:
        rec = self.actors.get(actor_id)
        return rec.owner if rec is not None else b""

    def owner_conn(self, actor_id: bytes) -> Connection | None:
        """The connection of the process that created the actor, if it is on this node."""
        rec = self.actors.get(actor_id)
        return self.node.client_conn(rec.owner) if rec is not None else None

    def owner_gone(self, client_id: bytes) -> None:
        """A driver or worker ended: the actors it created (other than detached ones) die, as
        in Ray, even if that worker was an actor that restarts (its new process is not their
        owner)."""
        for rec in list(self.actors.values()):
            if rec.owner == client_id and not rec.detached:
                self.kill_actor(rec.actor_id, True, OWNER_EXITED)

    def refs_dropped(self, actor_id: bytes) -> None:
        """Every ref to the actor was dropped: it ends (unless detached: such one lives until
        it is killed)."""
        rec = self.actors.get(actor_id)
        if rec is not None and not rec.detached:
            self.kill_actor(actor_id, True, "all references to it were dropped")

    def cannot_place(
        self, actor_id: bytes, message: str, kind: m.ErrorKind = m.ErrorKind.UNSCHEDULABLE
    ) -> None:
        """Its placement can never succeed: it dies with ``message`` (for good, with Ray's
        ActorPlacementGroupRemoved, if its placement group was removed)."""
        rec = self.actors.get(actor_id)
        if rec is None:
            return
        cause = None
        if kind is m.ErrorKind.PLACEMENT_GROUP_REMOVED:
            from ember._runtime import serialization

            cause = serialization.dumps(exc.ActorPlacementGroupRemoved())
        self.handle(rec, life.Unplaceable(message, cause))

    def spill_to(self, actor_id: bytes, node_id: bytes) -> None:
        """The scheduler sends its placement on to another node."""
        rec = self.actors.get(actor_id)
        if rec is not None:
            self.handle(rec, life.SpilledTo(node_id))

    def worker_died(self, actor_id: bytes, why: str, oom: str = "") -> None:
        """The local worker process hosting the actor ended (``oom``: killed by the memory
        monitor, which says why)."""
        rec = self.actors.get(actor_id)
        if rec is not None:
            if oom:
                rec.oom_killed = (rec.life.incarnation, oom)
            self.handle(rec, life.ProcessDied(why))

    # ------------------------------------------------------------------ lifecycle

    def handle(self, rec: _ActorRecord, event: life.Event, grant: _Grant | None = None) -> None:
        """Feed an event to the actor's lifecycle and carry out every action it returns
        (``grant``: the worker a ``Granted`` event is about)."""
        for action in rec.life.handle(event):
            if isinstance(action, life.RequestWorker):
                self.request_placement(rec)
            elif isinstance(action, life.RequestRemoteWorker):
                self.place_actor_remotely(rec, action.node_id, action.incarnation)
            elif isinstance(action, life.CancelRequest):
                cancel = self.node.scheduler.cancel_request(("actor", rec.actor_id), 0)
                self.node.run_actions(cancel)
            elif isinstance(action, life.StartProcess):
                assert grant is not None
                self.start_process(rec, action.incarnation, grant)
            elif isinstance(action, life.ReturnWorker):
                assert grant is not None
                self.return_worker(grant)
            elif isinstance(action, life.EndProcess):
                self.end_process(rec)
            elif isinstance(action, life.Unregister):
                self.unregister(rec)
            elif isinstance(action, life.AnswerCallers):
                self.answer_resolvers(rec)
            else:
                raise AssertionError(f"unknown actor lifecycle action {action!r}")

    def unregister(self, rec: _ActorRecord) -> None:
        """Tell the control store the actor is gone; a kill waiting for its name to be free
        (``on_unregistered``) is answered once the control store has done so."""
        then = self.on_unregistered.pop(rec.actor_id, None)
        if then is None:
            self.node.cluster.gcs_call(lambda _: m.ActorGone(actor_id=rec.actor_id))
            return
        done = then

        def freed(answer: m.Answer) -> None:
            done()

        self.node.cluster.gcs_call(lambda r: m.ActorGone(actor_id=rec.actor_id, rid=r), freed)

    def create_actor(self, conn: Connection, msg: m.CreateActor) -> None:
        """Register with the control store (which checks the name), then place it. A detached
        actor is managed by the head node instead, so that it outlives the node it was
        created from (messages about it that reach this node are forwarded there)."""
        self.registering[msg.actor_id] = []  # callers may ask where it is meanwhile
        head = self.node.cluster.head_conn() if msg.detached else None
        if head is not None:
            self.node.calls.call(
                head,
                lambda rid: m.replace(msg, rid=rid),
                lambda reply: self.actor_registered(conn, msg, reply, here=False),
            )
            return
        self.node.cluster.gcs_call(
            lambda rid: m.replace(msg, rid=rid),
            lambda reply: self.actor_registered(conn, msg, reply),
        )

    def actor_registered(
        self, conn: Connection, msg: m.CreateActor, answer: m.Answer, here: bool = True
    ) -> None:
        deferred = self.registering.pop(msg.actor_id, [])
        try:
            if here:
                self._actor_registered(conn, msg, answer)
            else:  # the head registered it: pass its answer on
                conn.send(m.replace(answer, rid=msg.rid))
        finally:
            for resolve in deferred:
                resolve()

    def _actor_registered(self, conn: Connection, msg: m.CreateActor, answer: m.Answer) -> None:
        conn.send(m.replace(answer, rid=msg.rid))
        # (an error, or another actor's id for get_if_exists: nothing to start here)
        if not isinstance(answer, m.ActorRegistered) or answer.actor_id != msg.actor_id:
            return
        rec = _ActorRecord(
            msg.actor_id,
            msg.spec,
            shape_of(msg.shape),
            msg.owner_id,
            msg.detached,
            ActorLifecycle(msg.max_restarts),
            class_name=msg.class_name,
            name=msg.name,
            namespace=msg.namespace,
            job_id=msg.job_id,
            strategy=msg.strategy,
            capture_child_tasks=msg.capture_child_tasks,
        )
        self.actors[msg.actor_id] = rec
        self.node.objects.hold_actor(msg.actor_id, msg.owner_id)
        if conn.closed and not msg.detached:  # its owner exited while it was registered
            self.kill_actor(msg.actor_id, True, OWNER_EXITED)
        elif msg.spec is not None:
            self.handle(rec, life.SpecReady())
        # else its arguments are still being computed: ActorArgs follows

    def after_registration(self, actor_id: bytes, then: Callable[[], None]) -> bool:
        """True if the actor is still being registered: ``then`` runs once it is (a message
        about it that arrives meanwhile, such as its arguments or its end, must not be lost)."""
        deferred = self.registering.get(actor_id)
        if deferred is None:
            return False
        deferred.append(then)
        return True

    def actor_args(self, msg: m.ActorArgs) -> None:
        if self.after_registration(msg.actor_id, lambda: self.actor_args(msg)):
            return
        rec = self.actors.get(msg.actor_id)
        if rec is None:  # managed by another node (the head, for a detached actor)
            self.send_home(msg.actor_id, msg)
            return
        if msg.error is not None:
            self.handle(rec, life.SpecFailed(m.ARGUMENT_FAILED, msg.error))
            return
        rec.spec = msg.spec
        self.handle(rec, life.SpecReady())

    def request_placement(self, rec: _ActorRecord) -> None:
        self.node.run_actions(
            self.node.scheduler.request(
                ("actor", rec.actor_id),
                0,
                rec.shape,
                f"actor {rec.class_name}",
                dedicated=True,
                strategy=rec.strategy,
                runtime_env=rec.spec.runtime_env if rec.spec is not None else "",
            )
        )

    def place_actor(self, actor_id: bytes, g: sched.Grant) -> None:
        """The scheduler granted the actor a dedicated worker here."""
        rec = self.actors[actor_id]
        grant = _Grant(self.node.node_id, g.lease_id, g.worker_id, list(g.gpu_ids))
        self.handle(rec, life.Granted(rec.life.incarnation), grant)

    def place_actor_remotely(self, rec: _ActorRecord, node_id: bytes, incarnation: int) -> None:
        """Ask another node for a dedicated worker; the actor starts there."""
        conn = self.node.cluster.node_conn(node_id)
        if conn is None:
            # (else it could be chosen again at once, for ever)
            self.node.cluster.peer_unreachable(node_id)
            self.handle(rec, life.GrantFailed(incarnation))
            return
        self.node.calls.call(
            conn,
            lambda rid: m.RequestLease(
                rid=rid,
                shape=shape_dict(rec.shape),
                owner_id=self.node.node_id,
                describe=f"actor {rec.class_name}",
                strategy=None,
                spilled=True,
                dedicated=True,
                runtime_env=rec.spec.runtime_env if rec.spec is not None else "",
                # (that node's memory monitor kills workers that may run again first)
                retriable=rec.life.may_restart(),
                actor_id=rec.actor_id,
            ),
            lambda reply: self.remote_granted(rec, incarnation, node_id, reply),
        )

    def remote_granted(
        self, rec: _ActorRecord, incarnation: int, node_id: bytes, answer: m.Answer
    ) -> None:
        if not isinstance(answer, m.LeaseGranted):  # that node went away meanwhile: place it again
            self.node.cluster.peer_unreachable(node_id)
            self.handle(rec, life.GrantFailed(incarnation))
            return
        grant = _Grant(node_id, answer.lease_id, answer.worker_id, answer.gpu_ids, answer.addr)
        self.handle(rec, life.Granted(incarnation), grant)

    def start_process(self, rec: _ActorRecord, incarnation: int, grant: _Grant) -> None:
        """Start the actor on the worker granted: here, or over a direct connection."""
        if grant.addr is None:
            rec.worker_id = grant.worker_id
            rec.node = grant.node_id
            self.start_actor(rec, self.node.pool.host(grant.worker_id, rec.actor_id), grant)
            return
        try:
            conn = self.node.reactor.connect(
                grant.addr,
                self.remote_message,
                self.remote_closed,
                timeout=1.0,
                token=self.node.token,
            )
        except OSError:
            granter = self.node.cluster.node_conn(grant.node_id)
            if granter is not None:
                granter.send(m.ReturnLease(lease_id=grant.lease_id, worker_failed=True))
            self.handle(rec, life.GrantFailed(incarnation))
            return
        conn.node = grant.node_id
        conn.peer = rec
        rec.remote = conn
        rec.node = grant.node_id
        rec.worker_id = grant.worker_id
        self.start_actor(rec, conn, grant)

    def remote_message(self, conn: Connection[_ActorRecord], msg: m.Message) -> None:
        """From an actor's worker on another node (``peer``: the actor)."""
        if isinstance(msg, m.Answer):
            self.node.calls.on_reply(msg)
        else:
            refuse(conn, msg, "a node manager")

    def remote_closed(self, conn: Connection[_ActorRecord]) -> None:
        self.node.calls.on_close(conn)
        rec = conn.peer
        if rec is not None and rec.remote is conn:
            rec.remote = None
            self.remote_worker_died(rec)

    def remote_worker_died(self, rec: _ActorRecord) -> None:
        """Its worker on another node went away: ask that node how (its memory monitor may
        have killed it, which the actor's callers are told), then let the actor die or
        restart."""
        node_id, worker_id, incarnation = rec.node, rec.worker_id, rec.life.incarnation
        went = f"its worker process on node {node_id.hex()[:8]} went away"

        def answered(answer: m.Answer) -> None:
            if rec.life.incarnation != incarnation:  # (it ended otherwise meanwhile)
                return
            why, oom = went, answer.oom if isinstance(answer, m.WorkerExited) else ""
            if oom:
                rec.oom_killed = (incarnation, oom)
                why = f"{why}, killed by the memory monitor. {oom.rstrip('.')}"
            self.handle(rec, life.ProcessDied(why))

        conn = self.node.cluster.node_conn(node_id)
        if conn is None:
            self.handle(rec, life.ProcessDied(went))
            return
        self.node.calls.call(conn, lambda rid: m.WorkerExit(rid=rid, worker_id=worker_id), answered)

    def return_worker(self, grant: _Grant) -> None:
        if grant.addr is None:
            self.node.run_actions(self.node.scheduler.return_lease(grant.lease_id))
            return
        conn = self.node.cluster.node_conn(grant.node_id)
        if conn is not None:
            conn.send(m.ReturnLease(lease_id=grant.lease_id))

    def start_actor(self, rec: _ActorRecord, conn: Connection, grant: _Grant) -> None:
        incarnation = rec.life.incarnation
        spec = rec.spec
        assert spec is not None  # (placed once its constructor's arguments are ready)
        self.node.calls.call(
            conn,
            lambda rid: m.StartActor(
                rid=rid,
                actor_id=rec.actor_id,
                spec=spec,
                incarnation=incarnation,
                gpu_ids=grant.gpu_ids,
                resources=shape_dict(rec.shape),
                capture_child_tasks=rec.capture_child_tasks,
            ),
            lambda reply: self.actor_started(rec, incarnation, reply),
        )

    def actor_started(self, rec: _ActorRecord, incarnation: int, answer: m.Answer) -> None:
        if isinstance(answer, m.ActorStarted):
            rec.pid = answer.pid
            if answer.ran:
                rec.ran = [*answer.ran, answer.pid, rec.worker_id]
            self.handle(rec, life.Started(incarnation, answer.addr))
        elif isinstance(answer, m.Reply) and answer.kind is not m.ErrorKind.CONNECTION_LOST:
            why = answer.error[1] if answer.error else f"unexpected answer {answer!r:.100}"
            self.handle(rec, life.StartFailed(incarnation, why, answer.value))
        # else the process died while starting: its ProcessDied follows

    def end_process(self, rec: _ActorRecord) -> None:
        """Stop the actor's process (its end comes back as ProcessDied)."""
        if rec.remote is not None:
            node = self.node.cluster.node_conn(rec.node)
            if node is not None:
                node.send(m.KillWorker(worker_id=rec.worker_id))
            rec.remote.close()
        elif rec.worker_id:
            self.node.pool.kill(rec.worker_id)

    def kill_actor(
        self,
        actor_id: bytes,
        no_restart: bool,
        reason: str,
        answered: Callable[[], None] | None = None,
    ) -> None:
        """``answered`` (for ``ember.kill``, which returns then) runs once the control store
        has freed the actor's name, or at once when there is none to free."""
        if self.after_registration(
            actor_id, lambda: self.kill_actor(actor_id, no_restart, reason, answered)
        ):
            return
        rec = self.actors.get(actor_id)
        if rec is None:  # managed by another node (a caller elsewhere kills it): tell it
            kill = m.KillActor(actor_id=actor_id, no_restart=no_restart, reason=reason)
            if answered is None:
                self.send_home(actor_id, kill)
                return
            then = answered

            def at_home(home: Connection | None) -> None:
                if home is None:
                    then()
                else:
                    self.node.calls.call(home, lambda r: m.replace(kill, rid=r), lambda _: then())

            self.via_home(actor_id, at_home)
            return
        if answered is not None:
            self.on_unregistered[actor_id] = answered
        self.handle(rec, life.Kill(no_restart, reason))
        unanswered = self.on_unregistered.pop(actor_id, None)
        if unanswered is not None:  # there was nothing to unregister
            unanswered()

    def resolve_actor(
        self, conn: Connection, rid: int, actor_id: bytes, min_inc: int, ended: bool = False
    ) -> None:
        if self.after_registration(
            actor_id, lambda: self.resolve_actor(conn, rid, actor_id, min_inc, ended)
        ):
            return
        rec = self.actors.get(actor_id)
        if rec is not None:
            rec.waiters.append((conn, rid, min_inc, ended))
            self.answer_resolvers(rec)
            return

        def relay(answer: m.Answer) -> None:
            conn.send(m.replace(answer, rid=rid))

        def at_home(home: Connection | None) -> None:
            if home is None:
                conn.send(
                    m.error_reply(rid, m.ErrorKind.ACTOR_DIED, "the actor is unknown or has died")
                )
                return
            self.node.calls.call(
                home,
                lambda r: m.ResolveActor(
                    rid=r, actor_id=actor_id, min_incarnation=min_inc, ended=ended
                ),
                relay,
            )

        self.via_home(actor_id, at_home)

    def send_home(self, actor_id: bytes, msg: m.Message) -> None:
        """Pass a message about an actor on to the node that manages it (if any)."""

        def at_home(home: Connection | None) -> None:
            if home is not None:
                home.send(msg)

        self.via_home(actor_id, at_home)

    def via_home(self, actor_id: bytes, then: Callable[[Connection | None], None]) -> None:
        """For an actor managed by another node: ask the control store which node that is
        and call ``then`` with a connection to it (None if it is unknown or gone)."""

        def found(answer: m.Answer) -> None:
            value = m.reply_value(answer)
            home = value["node_id"] if value else None
            then(self.node.cluster.node_conn(home) if home and home != self.node.node_id else None)

        self.node.cluster.gcs_call(lambda r: m.LookupActor(rid=r, actor_id=actor_id), found)

    def answer_resolvers(self, rec: _ActorRecord) -> None:
        keep = []
        for conn, rid, min_inc, ended in rec.waiters:
            answer = rec.life.answer_for(min_inc, ended)
            oom_inc, oom = rec.oom_killed
            if oom and (
                (isinstance(answer, life.IsDead) and oom_inc == rec.life.incarnation)
                or (isinstance(answer, life.HasEnded) and oom_inc == min_inc - 1)
            ):
                # As in Ray: the calls its process ran when the memory monitor killed it, and
                # (if it stays dead) every later one, fail with OutOfMemoryError.
                conn.send(m.error_reply(rid, m.ErrorKind.OUT_OF_MEMORY, oom))
            elif isinstance(answer, life.IsDead):
                conn.send(m.error_reply(rid, m.ErrorKind.ACTOR_DIED, answer.reason, answer.cause))
            elif isinstance(answer, life.HasEnded):
                conn.send(m.ActorEnded(rid=rid, how=answer.how))
            elif isinstance(answer, life.IsAt):
                conn.send(
                    m.ActorAlive(
                        rid=rid,
                        addr=answer.addr,
                        incarnation=answer.incarnation,
                        node_id=rec.node,
                        max_concurrency=rec.spec and rec.spec.max_concurrency or 1,
                        ran=rec.ran,
                    )
                )
            else:
                keep.append((conn, rid, min_inc, ended))
        rec.waiters = keep
