"""The node manager's actors: registration, placement (here or on another node), restarts and
death, and telling callers where an actor lives.

The node where an actor is created manages it for its whole life (its *home*): the control
store records the actor (and its name) with that node, so a caller anywhere asks its own node,
which asks the control store for the home and forwards the question there. The home places the
actor on one of its own workers or, when it lacks the resources, asks another node for a
dedicated worker and starts the actor there over a direct connection; either way, the end of
that worker's connection is the actor's death, and it is restarted per ``max_restarts``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ember._core import scheduler as sched
from ember._core.resources import Shape, shape_dict, shape_of
from ember._protocol import messages as m
from ember._transport.reactor import Connection

if TYPE_CHECKING:
    from ember._runtime.node import NodeManager


@dataclass
class _ActorRecord:
    actor_id: bytes
    spec: bytes
    shape: Shape
    owner: bytes
    job_id: bytes
    name: str | None
    detached: bool
    max_restarts: int
    class_name: str = ""
    strategy: Any = None
    restarts: int = 0
    incarnation: int = 0
    state: str = "pending"  # pending | alive | restarting | dead
    worker_id: bytes = b""
    lease_id: int = 0
    addr: str = ""
    node: bytes = b""  # where its worker runs
    remote: Connection | None = None  # the direct connection to a worker on another node
    reason: str = ""
    cause: bytes | None = None
    no_restart: bool = False
    killing: str = ""  # why its process is being ended, when it may restart
    last_end: str = ""  # how its last process ended, and that it was restarted
    # (caller, rid, min incarnation, answer once the one before has ended)
    waiters: list[tuple[Connection, int, int, bool]] = field(default_factory=list)


class _RemoteActorHandler:
    """The home's connection to an actor's worker on another node."""

    def __init__(self, manager: ActorManager, rec: _ActorRecord) -> None:
        self.manager = manager
        self.rec = rec

    def on_message(self, conn: Connection, msg: m.Message) -> None:
        if isinstance(msg, m.Reply):
            self.manager.node.calls.on_reply(msg)

    def on_close(self, conn: Connection) -> None:
        self.manager.node.calls.on_close(conn)
        if self.rec.remote is conn:
            self.rec.remote = None
            self.manager.actor_process_died(
                self.rec, f"its worker process on node {self.rec.node.hex()[:8]} went away"
            )


class ActorManager:
    """The actors this node manages (their *home*), and the way to the home of others."""

    def __init__(self, node: NodeManager) -> None:
        self.node = node
        self.actors: dict[bytes, _ActorRecord] = {}
        # Actors being registered with the control store: what to do once they are.
        self.registering: dict[bytes, list[Callable[[], None]]] = {}

    # ------------------------------------------------------------------ the node's questions

    def owned_by(self, client_id: bytes) -> bool:
        return any(a.owner == client_id and a.state != "dead" for a in self.actors.values())

    def live_count(self) -> int:
        return sum(1 for a in self.actors.values() if a.state != "dead")

    def owner_conn(self, actor_id: bytes) -> Connection | None:
        """The connection of the process that created the actor, if it is on this node."""
        rec = self.actors.get(actor_id)
        return self.node.client_conn(rec.owner) if rec is not None else None

    def owner_gone(self, client_id: bytes) -> None:
        """A driver or worker ended: the actors it created (other than detached ones) die."""
        for rec in list(self.actors.values()):
            if rec.owner == client_id and not rec.detached:
                self.kill_actor(rec.actor_id, True, "its owner (the driver) exited")

    def refs_dropped(self, oid: bytes) -> bool:
        """Every ref to ``oid`` was dropped: if it is an actor of this node, it ends (unless
        detached: such one lives until it is killed). True if it is one."""
        rec = self.actors.get(oid)
        if rec is None:
            return False
        if not rec.detached:
            self.kill_actor(oid, True, "all references to it were dropped")
        return True

    def cannot_place(self, actor_id: bytes, message: str) -> None:
        """Its placement can never succeed: it dies with ``message``."""
        rec = self.actors.get(actor_id)
        if rec is not None:
            rec.no_restart = True
            self.mark_dead(rec, message, None)

    def spill_to(self, actor_id: bytes, node_id: bytes) -> None:
        """The scheduler sends its placement on to another node."""
        rec = self.actors.get(actor_id)
        if rec is not None and rec.state != "dead":
            self.place_actor_remotely(rec, node_id)

    def worker_died(self, actor_id: bytes, why: str) -> None:
        """The local worker process hosting the actor ended."""
        rec = self.actors.get(actor_id)
        if rec is not None:
            self.actor_process_died(rec, why)

    # ------------------------------------------------------------------ lifecycle

    def create_actor(self, conn: Connection, msg: m.CreateActor) -> None:
        """Register with the control store (which checks the name), then place it. A detached
        actor is managed by the head node instead, so that it outlives the node it was
        created from (messages about it that reach this node are forwarded there)."""
        fields = msg.encode()[2:]
        self.registering[msg.actor_id] = []  # callers may ask where it is meanwhile
        head = self.node.cluster.head_conn() if msg.detached else None
        if head is not None:
            self.node.calls.call(
                head,
                lambda rid: m.CreateActor(rid, *fields),
                lambda reply: self.actor_registered(conn, msg, reply, here=False),
            )
            return
        self.node.cluster.gcs_call(
            lambda rid: m.CreateActor(rid, *fields),
            lambda reply: self.actor_registered(conn, msg, reply),
        )

    def actor_registered(
        self, conn: Connection, msg: m.CreateActor, reply: m.Reply, here: bool = True
    ) -> None:
        deferred = self.registering.pop(msg.actor_id, [])
        try:
            if here:
                self._actor_registered(conn, msg, reply)
            else:  # the head registered it: pass its answer on
                conn.send(m.Reply(msg.rid, reply.error, reply.value))
        finally:
            for resolve in deferred:
                resolve()

    def _actor_registered(self, conn: Connection, msg: m.CreateActor, reply: m.Reply) -> None:
        if reply.error is not None:
            conn.send(m.Reply(msg.rid, reply.error))
            return
        actor_id = reply.value["actor_id"]
        conn.send(m.Reply(msg.rid, None, {"actor_id": actor_id}))
        if actor_id != msg.actor_id:
            return
        rec = _ActorRecord(
            msg.actor_id,
            msg.spec,
            shape_of(msg.shape),
            msg.owner_id,
            msg.job_id,
            msg.name,
            msg.detached,
            msg.max_restarts,
            class_name=msg.class_name,
            strategy=msg.strategy,
        )
        self.actors[msg.actor_id] = rec
        self.node.objects.hold(msg.actor_id, msg.owner_id)
        if conn.closed and not msg.detached:  # its owner exited while it was registered
            self.kill_actor(msg.actor_id, True, "its owner (the driver) exited")
        elif msg.spec:
            self.request_placement(rec)
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
        if rec.state == "dead":
            return
        if msg.error is not None:
            rec.no_restart = True
            self.mark_dead(rec, m.ARGUMENT_FAILED, msg.error)
            return
        rec.spec = msg.spec
        self.request_placement(rec)

    def request_placement(self, rec: _ActorRecord) -> None:
        self.node.run_actions(
            self.node.scheduler.request(
                ("actor", rec.actor_id),
                0,
                rec.shape,
                f"actor {rec.class_name}",
                dedicated=True,
                strategy=rec.strategy,
            )
        )

    def place_actor(self, actor_id: bytes, g: sched.Grant) -> None:
        """The scheduler granted the actor a dedicated worker here."""
        rec = self.actors[actor_id]
        if rec.state == "dead":
            self.node.run_actions(self.node.scheduler.return_lease(g.lease_id))
            return
        rec.worker_id = g.worker_id
        rec.lease_id = g.lease_id
        rec.node = self.node.node_id
        self.start_actor(rec, self.node.pool.host(g.worker_id, actor_id), list(g.gpu_ids))

    def place_actor_remotely(self, rec: _ActorRecord, node_id: bytes) -> None:
        """Ask another node for a dedicated worker; the actor starts there."""
        conn = self.node.cluster.node_conn(node_id)
        if conn is None:
            self.node.cluster.peer_unreachable(
                node_id
            )  # (else it could be chosen again at once, for ever)
            self.request_placement(rec)
            return
        incarnation = rec.incarnation
        self.node.calls.call(
            conn,
            lambda rid: m.RequestLease(
                rid,
                shape_dict(rec.shape),
                self.node.node_id,
                f"actor {rec.class_name}",
                None,
                True,
                True,
            ),
            lambda reply: self.remote_granted(rec, incarnation, node_id, reply),
        )

    def remote_granted(
        self, rec: _ActorRecord, incarnation: int, node_id: bytes, reply: m.Reply
    ) -> None:
        if reply.error is not None:
            if rec.state != "dead" and rec.incarnation == incarnation:
                self.node.cluster.peer_unreachable(
                    node_id
                )  # that node went away meanwhile: place it again
                self.request_placement(rec)
            return
        grant = reply.value
        if rec.state == "dead" or rec.incarnation != incarnation:
            conn = self.node.cluster.node_conn(node_id)
            if conn is not None:
                conn.send(m.ReturnLease(grant["lease_id"]))
            return
        try:
            conn = self.node.reactor.connect(
                grant["addr"], _RemoteActorHandler(self, rec), timeout=1.0, token=self.node.token
            )
        except OSError:
            granter = self.node.cluster.node_conn(node_id)
            if granter is not None:
                granter.send(m.ReturnLease(grant["lease_id"], True))
            self.request_placement(rec)
            return
        conn.node = node_id
        rec.remote = conn
        rec.node = node_id
        rec.worker_id = grant["worker_id"]
        self.start_actor(rec, conn, grant["gpu_ids"])

    def start_actor(self, rec: _ActorRecord, conn: Connection, gpu_ids: list[int]) -> None:
        incarnation = rec.incarnation
        self.node.calls.call(
            conn,
            lambda rid: m.StartActor(
                rid, rec.actor_id, rec.spec, incarnation, gpu_ids, shape_dict(rec.shape)
            ),
            lambda reply: self.actor_started(rec, incarnation, reply),
        )

    def actor_started(self, rec: _ActorRecord, incarnation: int, reply: m.Reply) -> None:
        if rec.state == "dead" or rec.incarnation != incarnation:
            return
        if reply.error is not None:
            if reply.error[0] == "ConnectionLost":
                return  # the process died while starting; actor_process_died handles it
            rec.no_restart = True
            self.mark_dead(rec, reply.error[1], reply.value)
            self.end_actor_worker(rec)
            return
        rec.state = "alive"
        rec.addr = reply.value["addr"]
        self.answer_resolvers(rec)

    def actor_process_died(self, rec: _ActorRecord, why: str) -> None:
        if rec.state == "dead":
            return
        why, rec.killing = rec.killing or why, ""
        if not rec.no_restart and (rec.max_restarts < 0 or rec.restarts < rec.max_restarts):
            rec.restarts += 1
            rec.incarnation += 1
            rec.state = "restarting"
            rec.remote = None
            rec.last_end = f"{why}. It was restarted ({_restarts_used(rec)})"
            self.answer_resolvers(rec)
            self.request_placement(rec)
            return
        self.mark_dead(rec, rec.reason or _stays_dead(why, rec), None)

    def end_actor_worker(self, rec: _ActorRecord) -> bool:
        """Stop the actor's process; False if it has none."""
        if rec.remote is not None:
            node = self.node.cluster.node_conn(rec.node)
            if node is not None:
                node.send(m.KillWorker(rec.worker_id))
            rec.remote.close()
            return True
        if rec.worker_id and self.node.pool.get(rec.worker_id) is not None:
            self.node.pool.kill(rec.worker_id)
            return True
        return False

    def kill_actor(self, actor_id: bytes, no_restart: bool, reason: str) -> None:
        if self.after_registration(actor_id, lambda: self.kill_actor(actor_id, no_restart, reason)):
            return
        rec = self.actors.get(actor_id)
        if rec is None:  # managed by another node (a caller elsewhere kills it): tell it
            self.send_home(actor_id, m.KillActor(actor_id, no_restart, reason))
            return
        if rec.state == "dead":
            return
        if no_restart:
            rec.no_restart = True
            rec.reason = reason
            self.node.cluster.gcs_call(
                lambda _: m.ActorGone(actor_id)
            )  # its name is free again at once
            if not self.end_actor_worker(rec):
                self.node.run_actions(self.node.scheduler.cancel_request(("actor", actor_id), 0))
                self.mark_dead(rec, reason, None)
        elif self.end_actor_worker(rec):
            # Only a process ended here: an actor without one (restarting, not placed yet)
            # is not restarted by this kill, and its next real end must not be blamed on it.
            rec.killing = f"{reason} (with no_restart=False)"

    def mark_dead(self, rec: _ActorRecord, reason: str, cause: bytes | None) -> None:
        rec.state = "dead"
        rec.reason = reason
        rec.cause = cause
        self.node.cluster.gcs_call(lambda _: m.ActorGone(rec.actor_id))
        self.answer_resolvers(rec)

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

        def relay(reply: m.Reply) -> None:
            conn.send(m.Reply(rid, reply.error, reply.value))

        def at_home(home: Connection | None) -> None:
            if home is None:
                conn.send(m.Reply(rid, ["ActorDiedError", "the actor is unknown or has died"]))
                return
            self.node.calls.call(home, lambda r: m.ResolveActor(r, actor_id, min_inc, ended), relay)

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

        def found(reply: m.Reply) -> None:
            home = None if reply.error else reply.value["node_id"]
            then(self.node.cluster.node_conn(home) if home and home != self.node.node_id else None)

        self.node.cluster.gcs_call(lambda r: m.LookupActor(r, actor_id), found)

    def answer_resolvers(self, rec: _ActorRecord) -> None:
        keep = []
        for conn, rid, min_inc, ended in rec.waiters:
            if rec.state == "dead":
                conn.send(m.Reply(rid, ["ActorDiedError", rec.reason], rec.cause))
            elif ended and rec.incarnation >= min_inc:
                conn.send(m.Reply(rid, None, {"ended": rec.last_end}))
            elif rec.state == "alive" and rec.incarnation >= min_inc:
                conn.send(
                    m.Reply(
                        rid,
                        None,
                        {"addr": rec.addr, "incarnation": rec.incarnation, "node": rec.node},
                    )
                )
            else:
                keep.append((conn, rid, min_inc, ended))
        rec.waiters = keep


def _restarts_used(rec: _ActorRecord) -> str:
    if rec.max_restarts < 0:
        return f"restart {rec.restarts}, max_restarts=-1 sets no limit"
    return f"{rec.restarts} of {rec.max_restarts} restarts used"


def _stays_dead(why: str, rec: _ActorRecord) -> str:
    """Why an actor whose process ended is not restarted, and what to do about it."""
    if rec.max_restarts == 0:
        return (
            f"{why}. It stays dead because max_restarts is 0: create the actor with "
            "max_restarts > 0 if it should survive crashes (and max_task_retries > 0 to retry "
            "the calls they interrupt)."
        )
    return (
        f"{why}. It stays dead: {_restarts_used(rec)}. Raise max_restarts (-1 for no limit) "
        "if it should survive more crashes."
    )
