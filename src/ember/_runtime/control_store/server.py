"""The control store: cluster metadata that outlives any one worker or node.

It holds the node table (addresses, resources, liveness), the jobs (drivers) that are
connected, exported functions and classes (so a function is shipped to each worker once, by
id), actors by id with the node that manages them, and actor names per namespace. It is off
the per-task path: nodes heartbeat to it a few times a second and get the cluster view back;
callers touch it when they first use a function on a worker or look up an actor elsewhere.

Liveness: a node that has not heartbeated for ``node_timeout`` seconds, or whose connection
closed, is declared dead and every node is told (``NodeDied``); a node declared dead that
comes back is told so and stops, as its work has been redone elsewhere.

On one machine it runs inside the node manager's process, behind its own socket; on a cluster
it is a process of its own on the head (``python -m ember._runtime.control_store.server``),
optionally writing through to Redis (``_runtime/control_store/storage.py``) so that it can restart.
"""

from __future__ import annotations

import collections
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ember._protocol import messages as m
from ember._runtime import proctitle
from ember._runtime.control_store.placement_groups import PlacementGroups
from ember._runtime.control_store.state_queries import StateQueries
from ember._runtime.control_store.storage import Storage, open_storage
from ember._runtime.launch.process_config import ControlStoreConfig, read_config
from ember._transport.reactor import Connection, Reactor
from ember._transport.rpc import Calls, refuse

NODE_TIMEOUT = 5.0  # seconds without a heartbeat before a node is declared dead
HEARTBEAT_INTERVAL = 0.5
_GONE_ACTORS_KEPT = 100_000
_ENDED_JOBS_KEPT = 1000


class Driver(NamedTuple):
    """The peer of a driver's connection: the job it runs (it ends when the connection
    does)."""

    job_id: bytes


# Who is at the other end of a connection to the control store, once it said: a node (its
# id, from RegisterNode or a Heartbeat) or a driver (from JobStarted).
Peer = bytes | Driver
PeerConnection = Connection[Peer]


class NameTaken(ValueError):
    pass


@dataclass
class NodeEntry:
    node_id: bytes
    address: str
    local_address: str
    host: str
    total: dict[str, float]
    pid: int
    labels: dict[str, str] = field(default_factory=dict)
    available: dict[str, float] = field(default_factory=dict)
    pending: list[list[Any]] = field(default_factory=list)  # as in Heartbeat
    alive: bool = True
    death_reason: str = ""  # why it was declared dead
    last_seen: float = 0.0
    conn: PeerConnection | None = None
    started_ms: int = 0  # when it registered and when it was declared dead (wall clock)
    ended_ms: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "address": self.address,
            "local_address": self.local_address,
            "host": self.host,
            "total": self.total,
            "available": self.available,
            "pending": self.pending,
            "alive": self.alive,
            "death_reason": self.death_reason,
            "pid": self.pid,
            "labels": self.labels,
        }


class ControlStore:
    def __init__(
        self,
        storage: Storage | None = None,
        node_timeout: float = NODE_TIMEOUT,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
    ) -> None:
        self.storage = storage or Storage()
        self.node_timeout = node_timeout
        self.heartbeat_interval = heartbeat_interval
        # How long a lookup of an actor waits for its registration before calling it unknown:
        # long enough for a node to send it, and for a node that died before it could to be
        # declared dead (on one machine nodes never time out: as for the default timeout).
        self.registration_wait = 2 * (node_timeout if math.isfinite(node_timeout) else NODE_TIMEOUT)
        self.functions: dict[bytes, bytes] = {}
        self._fn_waiters: dict[bytes, list[tuple[PeerConnection, int]]] = {}
        self.names: dict[tuple[str, str], bytes] = {}
        self.actors: dict[bytes, dict[str, Any]] = {}
        # Ids of actors that ended (bounded, and stored: a restart must not take them for
        # actors not registered yet), oldest first, each with its number in that order: a
        # lookup of any other unknown id waits for its registration, which may still be on
        # its way (a handle can reach another node before its actor is registered here).
        self.gone_actors: collections.OrderedDict[bytes, int] = collections.OrderedDict()
        self._gone_count = 0
        self._lookups: dict[bytes, list[tuple[PeerConnection, int, float]]] = {}
        self.nodes: dict[bytes, NodeEntry] = {}
        self.jobs: dict[bytes, dict[str, Any]] = {}
        self.ended_jobs: collections.OrderedDict[bytes, dict[str, Any]] = collections.OrderedDict()
        self.calls = Calls()  # the store's requests to nodes
        self.placement_groups = PlacementGroups(self)
        self.state_queries = StateQueries(self)
        self._load()

    def _load(self) -> None:
        """Pick up where an earlier process left off (a no-op without external storage)."""
        self.functions = {bytes.fromhex(k): v for k, v in self.storage.load("functions").items()}
        for key, raw in self.storage.load("actors").items():
            info = json.loads(raw)
            info["handle_meta"] = bytes.fromhex(info["handle_meta"])
            info["home"] = bytes.fromhex(info["home"])
            actor_id = bytes.fromhex(key)
            self.actors[actor_id] = info
            if info["name"] is not None:
                self.names[(info["namespace"], info["name"])] = actor_id
        self.jobs = {bytes.fromhex(k): json.loads(v) for k, v in self.storage.load("jobs").items()}
        gone = sorted((int(v), bytes.fromhex(k)) for k, v in self.storage.load("gone").items())
        self.gone_actors.update((actor_id, n) for n, actor_id in gone)
        self._gone_count = gone[-1][0] + 1 if gone else 0
        now = time.monotonic()
        # Their drivers announce themselves again when they reconnect; those that do not
        # within a node timeout ended while the store was down (see forget_unclaimed_jobs).
        self.unclaimed_jobs = set(self.jobs)
        self.loaded_at = now
        for key, raw in self.storage.load("nodes").items():
            info = json.loads(raw)
            # Known again, and given a full timeout to reconnect before being declared dead.
            self.nodes[bytes.fromhex(key)] = NodeEntry(
                bytes.fromhex(key),
                info["address"],
                info["local_address"],
                info["host"],
                info["total"],
                info["pid"],
                info.get("labels") or {},
                available=dict(info["total"]),
                last_seen=now,
            )

    # ------------------------------------------------------------------ actors

    def register_actor(
        self,
        actor_id: bytes,
        name: str | None,
        namespace: str,
        handle_meta: bytes,
        get_if_exists: bool,
        home: bytes,
    ) -> bytes:
        """Record an actor; returns the id to use (an existing one for get_if_exists)."""
        if name is not None:
            existing = self.names.get((namespace, name))
            if existing is not None:
                if get_if_exists:
                    return existing
                raise NameTaken(
                    f"The name {name!r} (namespace={namespace!r}) is already taken by another "
                    "actor. Pick another name, kill that actor first, or pass "
                    "get_if_exists=True to reuse it."
                )
            self.names[(namespace, name)] = actor_id
        info = {"name": name, "namespace": namespace, "handle_meta": handle_meta, "home": home}
        self.actors[actor_id] = info
        self.storage.put(
            "actors",
            actor_id.hex(),
            json.dumps({**info, "handle_meta": handle_meta.hex(), "home": home.hex()}),
        )
        for conn, rid, _ in self._lookups.pop(actor_id, []):
            self.lookup_actor(conn, rid, actor_id, 0.0)
        return actor_id

    def actor_dead(self, actor_id: bytes) -> None:
        gone = self.gone_actors
        if actor_id not in gone:
            gone[actor_id] = n = self._gone_count
            self._gone_count += 1
            self.storage.put("gone", actor_id.hex(), str(n))
            if len(gone) > _GONE_ACTORS_KEPT:
                self.storage.delete("gone", gone.popitem(last=False)[0].hex())
        info = self.actors.pop(actor_id, None)
        if info is None:
            return
        self.storage.delete("actors", actor_id.hex())
        if info["name"] is not None:
            self.names.pop((info["namespace"], info["name"]), None)

    def lookup_actor(self, conn: PeerConnection, rid: int, actor_id: bytes, now: float) -> None:
        """Answer which node manages an actor; for an id not registered yet, once it is (or
        as unknown after ``registration_wait``)."""
        info = self.actors.get(actor_id)
        if info is None and actor_id not in self.gone_actors:
            self._lookups.setdefault(actor_id, []).append((conn, rid, now + self.registration_wait))
            return
        node = self.nodes.get(info["home"]) if info is not None else None
        if node is None or not node.alive:
            conn.send(m.error_reply(rid, m.ErrorKind.ACTOR_DIED, "the actor is unknown or gone"))
        else:
            conn.send(m.Reply(rid=rid, value=node.public()))

    def expire_lookups(self, now: float) -> None:
        """Lookups of ids that were never registered (their creator died first) fail."""
        for actor_id, waiting in list(self._lookups.items()):
            for conn, rid, due in waiting:
                if due <= now:
                    conn.send(
                        m.error_reply(rid, m.ErrorKind.ACTOR_DIED, "the actor is unknown or gone")
                    )
            keep = [w for w in waiting if w[2] > now]
            if keep:
                self._lookups[actor_id] = keep
            else:
                del self._lookups[actor_id]

    # ------------------------------------------------------------------ nodes

    def register_node(
        self, conn: PeerConnection, msg: m.RegisterNode, now: float
    ) -> m.NodeRegistered:
        entry = NodeEntry(
            msg.node_id,
            msg.address,
            msg.local_address,
            msg.host,
            msg.total,
            msg.pid,
            msg.labels or {},
            available=dict(msg.total),
            last_seen=now,
            conn=conn,
            started_ms=int(time.time() * 1000),
        )
        self.nodes[msg.node_id] = entry
        conn.peer = msg.node_id
        self.storage.put(
            "nodes",
            msg.node_id.hex(),
            json.dumps(
                {
                    "address": msg.address,
                    "local_address": msg.local_address,
                    "host": msg.host,
                    "total": msg.total,
                    "pid": msg.pid,
                    "labels": msg.labels or {},
                }
            ),
        )
        return m.NodeRegistered(
            rid=msg.rid,
            heartbeat_interval=self.heartbeat_interval,
            node_timeout=self.node_timeout,
            view=self.view(),
        )

    def heartbeat(self, conn: PeerConnection, msg: m.Heartbeat, now: float) -> m.Reply:
        entry = self.nodes.get(msg.node_id)
        if entry is None or not entry.alive:
            return m.error_reply(
                msg.rid, m.ErrorKind.NODE_DIED, "this node was declared dead by the control store"
            )
        changed = entry.available != msg.available
        entry.available = msg.available
        entry.pending = msg.pending
        entry.last_seen = now
        if msg.total is not None:
            entry.total = msg.total
        if entry.conn is not conn:  # came back after the control store restarted
            entry.conn = conn
            conn.peer = msg.node_id
        if changed:
            self.placement_groups.schedule()
        return m.Reply(rid=msg.rid, value=self.view())

    def view(self) -> list[dict[str, Any]]:
        return [e.public() for e in self.nodes.values()]

    def forget_unclaimed_jobs(self, now: float) -> None:
        """Drop the reloaded jobs whose drivers did not come back within a node timeout."""
        if self.unclaimed_jobs and now - self.loaded_at > self.node_timeout:
            for job_id in self.unclaimed_jobs:
                self.job_ended(job_id)
            self.unclaimed_jobs.clear()

    def expire(self, now: float) -> list[bytes]:
        """Nodes silent for longer than the timeout: declared dead now."""
        return [
            e.node_id
            for e in self.nodes.values()
            if e.alive and now - e.last_seen > self.node_timeout
        ]

    def node_dead(self, node_id: bytes, reason: str) -> list[PeerConnection]:
        """Mark a node dead and forget its actors; returns who must be told."""
        entry = self.nodes.get(node_id)
        if entry is None or not entry.alive:
            return []
        entry.alive = False
        entry.death_reason = reason
        entry.ended_ms = int(time.time() * 1000)
        entry.available = {}
        self.storage.delete("nodes", node_id.hex())
        for actor_id in [a for a, info in self.actors.items() if info["home"] == node_id]:
            self.actor_dead(actor_id)
        if entry.conn is not None:
            entry.conn.close()
        self.placement_groups.node_died(node_id)
        return [e.conn for e in self.nodes.values() if e.alive and e.conn is not None]

    # ------------------------------------------------------------------ messages

    def handle(self, conn: PeerConnection, msg: m.Message) -> None:
        if self.placement_groups.handle(conn, msg) or self.state_queries.handle(conn, msg):
            return
        if isinstance(msg, m.Answer):  # (a node's, to a request of the store's)
            self.calls.on_reply(msg)
        elif isinstance(msg, m.ExportFunction):
            if msg.fn_id not in self.functions:
                self.functions[msg.fn_id] = msg.data
                self.storage.put("functions", msg.fn_id.hex(), msg.data)
            for waiter, rid in self._fn_waiters.pop(msg.fn_id, []):
                waiter.send(m.Reply(rid=rid, value=msg.data))
        elif isinstance(msg, m.FetchFunction):
            data = self.functions.get(msg.fn_id)
            if data is None:
                self._fn_waiters.setdefault(msg.fn_id, []).append((conn, msg.rid))
            else:
                conn.send(m.Reply(rid=msg.rid, value=data))
        elif isinstance(msg, m.CreateActor):
            try:
                actor_id = self.register_actor(
                    msg.actor_id,
                    msg.name,
                    msg.namespace,
                    msg.handle_meta,
                    msg.get_if_exists,
                    conn.peer if isinstance(conn.peer, bytes) else b"",
                )
            except NameTaken as e:
                conn.send(m.error_reply(msg.rid, m.ErrorKind.INVALID, str(e)))
            else:
                conn.send(m.ActorRegistered(rid=msg.rid, actor_id=actor_id))
        elif isinstance(msg, m.ActorGone):
            self.actor_dead(msg.actor_id)
            if msg.rid:
                conn.send(m.Reply(rid=msg.rid))
        elif isinstance(msg, m.LookupActor):
            self.lookup_actor(conn, msg.rid, msg.actor_id, time.monotonic())
        elif isinstance(msg, m.GetNamedActor):
            named = self.names.get((msg.namespace, msg.name))
            if named is None:
                conn.send(
                    m.error_reply(
                        msg.rid,
                        m.ErrorKind.INVALID,
                        f"Failed to look up actor with name {msg.name!r} in namespace "
                        f"{msg.namespace!r}. It was never created, it has died, or it lives "
                        "in another namespace (pass namespace=...).",
                    )
                )
            else:
                info = self.actors[named]
                conn.send(
                    m.NamedActor(
                        rid=msg.rid,
                        actor_id=named,
                        handle_meta=info["handle_meta"],
                        home=info["home"],
                    )
                )
        elif isinstance(msg, m.ListNamedActors):
            names = [
                m.NamedActorEntry(name, ns)
                for (ns, name) in self.names
                if msg.namespace is None or ns == msg.namespace
            ]
            conn.send(m.NamedActors(rid=msg.rid, actors=names))
        elif isinstance(msg, m.GetNodes):
            conn.send(m.Reply(rid=msg.rid, value=self.view()))
        elif isinstance(msg, m.ListJobs):
            jobs = [{"job_id": job_id, **info} for job_id, info in self.jobs.items()]
            conn.send(m.Reply(rid=msg.rid, value=jobs))
        elif isinstance(msg, m.JobStarted):
            info = {
                "namespace": msg.namespace,
                "host": msg.host,
                "pid": msg.pid,
                "start_time": int(time.time() * 1000),
            }
            self.jobs[msg.job_id] = info
            self.unclaimed_jobs.discard(msg.job_id)
            self.storage.put("jobs", msg.job_id.hex(), json.dumps(info))
            conn.peer = Driver(msg.job_id)
        else:
            refuse(conn, msg, "the control store")

    def job_ended(self, job_id: bytes) -> None:
        info = self.jobs.pop(job_id, None)
        if info is not None:
            self.storage.delete("jobs", job_id.hex())
            # (kept a while for the state API, as Ray lists finished jobs)
            self.ended_jobs[job_id] = {**info, "end_time": int(time.time() * 1000)}
            if len(self.ended_jobs) > _ENDED_JOBS_KEPT:
                self.ended_jobs.popitem(last=False)
        self.placement_groups.job_ended(job_id)


class ControlStoreServer:
    """The control store's own loop: serves the store, times out silent nodes. Also used by
    the single-machine node manager, which shares its reactor."""

    def __init__(self, store: ControlStore, reactor: Reactor) -> None:
        self.store = store
        self.reactor = reactor
        self._last_check = time.monotonic()

    def listen(self, address: str, token: str | None) -> str:
        bound = self.reactor.listen(address, self.handle, self.closed, token=token)
        self.reactor.call_later(self.store.heartbeat_interval, self._check)
        return bound

    def handle(self, conn: PeerConnection, msg: m.Message) -> None:
        now = time.monotonic()
        if isinstance(msg, m.RegisterNode):
            known = self.store.nodes.get(msg.node_id)
            if known is not None and not known.alive:  # its work was redone: it must stop
                conn.send(
                    m.error_reply(msg.rid, m.ErrorKind.NODE_DIED, "this node was declared dead")
                )
                return
            conn.send(self.store.register_node(conn, msg, now))
            view = m.ClusterView(view=self.store.view())
            for entry in self.store.nodes.values():
                if entry.alive and entry.conn is not None and entry.conn is not conn:
                    entry.conn.send(view)
        elif isinstance(msg, m.Heartbeat):
            conn.send(self.store.heartbeat(conn, msg, now))
        else:
            self.store.handle(conn, msg)

    def closed(self, conn: PeerConnection) -> None:
        self.store.calls.on_close(conn)
        peer = conn.peer
        if isinstance(peer, Driver):  # its job is over
            self.store.job_ended(peer.job_id)
            return
        entry = self.store.nodes.get(peer) if peer is not None else None
        if entry is not None and entry.conn is conn:
            self.declare_dead(entry.node_id, "its node manager's connection closed")

    def declare_dead(self, node_id: bytes, reason: str) -> None:
        for conn in self.store.node_dead(node_id, reason):
            conn.send(m.NodeDied(node_id=node_id, reason=reason))

    def _check(self) -> None:
        now = time.monotonic()
        if now - self._last_check > max(1.0, 4 * self.store.heartbeat_interval):
            # This loop was held up (a slow Redis write, say): the silence may be ours, so
            # every node gets a full timeout again rather than being declared dead for it.
            for entry in self.store.nodes.values():
                entry.last_seen = max(entry.last_seen, now)
        self._last_check = now
        for node_id in self.store.expire(now):
            self.declare_dead(node_id, f"no heartbeat for more than {self.store.node_timeout:g} s")
        self.store.forget_unclaimed_jobs(now)
        self.store.expire_lookups(now)
        self.store.placement_groups.schedule()  # (again: an attempt may have failed)
        self.reactor.call_later(self.store.heartbeat_interval, self._check)


def main(argv: list[str]) -> None:
    proctitle.show("ember::control_store")
    config = read_config(ControlStoreConfig)
    storage = open_storage(config.storage)
    if config.fresh:
        storage.clear()
    store = ControlStore(
        storage,
        node_timeout=NODE_TIMEOUT if config.node_timeout is None else config.node_timeout,
        heartbeat_interval=(
            HEARTBEAT_INTERVAL if config.heartbeat_interval is None else config.heartbeat_interval
        ),
    )
    reactor = Reactor("ember-control")
    server = ControlStoreServer(store, reactor)
    bound = server.listen(config.address, config.token)
    signal.signal(signal.SIGTERM, lambda *_: reactor.call_soon(reactor.stop))
    fd = config.ready_fd
    if fd is not None:
        os.write(fd, json.dumps({"control": bound, "pid": os.getpid()}).encode() + b"\n")
        os.close(fd)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
