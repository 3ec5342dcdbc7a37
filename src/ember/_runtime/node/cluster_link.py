"""The node manager's place in a cluster: joining, heartbeats, the cluster view, other nodes.

A node registers with the control store and then heartbeats a few times a second with what it
has available; each answer is the node table, which feeds the placement decisions (spilling
work to nodes with room) and tells where other nodes listen. Connections to other nodes are
opened on first use, authenticated with the cluster's token, and say ``Hello`` as a "node".

When the control store declares a node dead, every node closes whatever it has open to that
node, which turns into the ordinary failure paths (lost leases are retried, actors restarted,
transfers fail); objects that lived only there are marked lost, and local clients are told so
that their own connections to it close too. A node that learns it was declared dead stops.
A lost connection to the control store is retried, so a control store that restarts (with
Redis) finds its nodes again; requests for it meanwhile wait in ``gcs_queue`` and go out
once the node has registered again.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ember._core.resources import shape_dict
from ember._protocol import ids
from ember._protocol import messages as m
from ember._runtime.launch import cluster_files, launcher
from ember._runtime.memory import after_big_answer
from ember._transport.process import process_alive
from ember._transport.reactor import Connection
from ember._transport.rpc import refuse

if TYPE_CHECKING:
    from ember._runtime.node.manager import NodeManager, _Client

MakeRequest = Callable[[int], m.Message]  # a request to the control store, given its rid
OnReply = Callable[[m.Answer], None]

_RECONNECT_SECONDS = 0.5
_REVIVE_SECONDS = 5.0  # at most one new control store this often (Redis may be down)
_CHANGE_SECONDS = 0.1  # how soon a change of this node's free resources is reported
# Connecting from the node's loop blocks it: keep that well under the heartbeat timeout (a
# host that died without a word answers nothing until it is declared dead).
CONNECT_SECONDS = 1.0


class ClusterLink:
    """This node's connections to the control store and to other nodes, and its view of the
    cluster."""

    def __init__(self, node: NodeManager) -> None:
        self.node = node
        self.gcs: Connection[None] | None = None
        self.joined = False
        self.gcs_ready = False
        self.gcs_queue: list[tuple[MakeRequest, OnReply | None]] = []
        self.heartbeat_interval = 0.5
        self.beat_at = -float("inf")  # when the last heartbeat went, with these free resources
        self.beat_sent: dict[str, float] = {}
        self.total_sent: dict[str, float] = {}  # (bundles of placement groups change it)
        self.beat_waiting = False  # for the control store's answer to the last one
        self.view: dict[bytes, dict[str, Any]] = {}
        self.by_tag: dict[bytes, bytes] = {node.node_id[:4]: node.node_id}
        self.peer_conns: dict[bytes, Connection[_Client]] = {}
        self.control_proc: Any = None  # a control store this (head) node started again
        self.control_revived = -float("inf")  # when it last did
        self.gcs_down_since: float | None = None  # since when the control store is unreachable

    def join(self) -> None:
        """Connect to the control store and register (again, after a reconnect)."""
        node = self.node
        try:
            self.gcs = gcs = node.reactor.connect(
                node.control_address, self.gcs_message, self.gcs_closed, token=node.token
            )
        except OSError:
            self.gcs_unreachable()
            return
        total, _ = node.resources.snapshot()
        node.calls.call(
            gcs,
            lambda rid: m.RegisterNode(
                rid=rid,
                node_id=node.node_id,
                address=node.tcp_address or node.address,
                local_address=node.address,
                host=node.host,
                total=total,
                pid=os.getpid(),
                labels=node.labels,
            ),
            self.registered,
        )

    def gcs_call(self, make: MakeRequest, on_reply: OnReply | None = None) -> None:
        """A request (or, without ``on_reply``, a notice) to the control store; held while
        it is unreachable and sent again if the connection drops before the answer."""
        if self.gcs_ready and self.gcs is not None:
            if on_reply is None:
                self.gcs.send(make(0))
                return
            then = on_reply

            def answered(answer: m.Answer) -> None:
                if isinstance(answer, m.Reply) and answer.kind is m.ErrorKind.CONNECTION_LOST:
                    self.gcs_call(make, then)
                else:
                    then(answer)

            self.node.calls.call(self.gcs, make, answered)
        else:
            self.gcs_queue.append((make, on_reply))

    def gcs_unreachable(self) -> None:
        """The control store did not take a connection: try again shortly, or, after
        ``control_store_timeout`` seconds of that, stop (the cluster is gone, as a Ray
        raylet decides; no node lingers for ever after its head vanished)."""
        now = time.monotonic()
        if self.gcs_down_since is None:
            self.gcs_down_since = now
        limit = self.node.config.control_store_timeout
        if now - self.gcs_down_since > limit:
            why = f"the control store has been unreachable for {limit:g} s; stopping\n"
            os.write(2, b"ember: " + why.encode())
            self.node.shutdown(failed=True)
            return
        self.revive_control_store()
        self.node.reactor.call_later(_RECONNECT_SECONDS, self.join)

    def registered(self, answer: m.Answer) -> None:
        if not isinstance(answer, m.NodeRegistered):
            self.heartbeat_answered(answer)  # declared dead: stop; else gcs_closed reconnects
            return
        self.gcs_down_since = None
        first = not self.joined
        self.joined = True
        self.gcs_ready = True
        queued, self.gcs_queue = self.gcs_queue, []
        for make, on_reply in queued:
            self.gcs_call(make, on_reply)
        self.heartbeat_interval = answer.heartbeat_interval
        self.update_view(answer.view)
        if first:
            self.node.reactor.call_later(self.heartbeat_interval, self.heartbeat)

    def gcs_message(self, conn: Connection[None], msg: m.Message) -> None:
        if isinstance(msg, m.Answer):
            self.node.calls.on_reply(msg)
        elif isinstance(msg, m.NodeDied):
            self.node.node_died(msg.node_id, msg.reason)
        elif isinstance(msg, m.ClusterView):
            self.update_view(msg.view)
        elif isinstance(msg, m.PrepareBundles):
            conn.send(m.Reply(rid=msg.rid, value=self.node.prepare_bundles(msg)))
        elif isinstance(msg, m.CommitBundles):
            self.node.commit_bundles(msg)
        elif isinstance(msg, m.ReleaseBundles):
            self.node.release_bundles(msg)
        elif isinstance(msg, m.StateQuery):
            conn.send(self.node.state.answer(msg))
            after_big_answer(msg.limit, self.node.reactor.call_later)
        elif isinstance(msg, m.ReadLog):
            conn.send(self.node.logs.answer(msg))
        else:
            refuse(conn, msg, "a node manager")

    def gcs_closed(self, conn: Connection[None]) -> None:
        self.node.calls.on_close(conn)
        if conn is self.gcs:
            self.gcs_ready = False
        if conn is self.gcs and not self.node.stopping:
            # Not revived from here: `ember stop` ends the store and this node together, and
            # this node may see the store go before its own stop signal.
            self.node.reactor.call_later(_RECONNECT_SECONDS, self.join)

    def revive_control_store(self) -> None:
        """On a head started by ``ember start --head --storage ...``: start the control store
        again if its process died (its tables come back from the storage; its log goes to
        this node's log folder). The node then reconnects and registers as after any
        restart."""
        config = self.node.config
        settings, pid = config.control_store_settings, config.control_store_pid
        if settings is None or pid is None or self.node.stopping:
            return
        proc = self.control_proc  # None until this node has started one itself
        running = process_alive(pid) if proc is None else proc.poll() is None
        if running or time.monotonic() < self.control_revived + _REVIVE_SECONDS:
            return  # the connection will be retried (one that fails at once, later)
        self.control_revived = time.monotonic()
        store = launcher.spawn_control_store(**settings, fresh=False, wait=False)
        self.control_proc = store.proc
        node_id = self.node.node_id.hex()
        for record in cluster_files.read_records():
            if record.get("node_id") == node_id:
                record["control_pid"] = store.proc.pid  # for `ember stop`
                record["control_started"] = cluster_files.started_at(store.proc.pid)
                cluster_files.write_record(record)
        note = f"ember: the control store died; started it again (pid {store.proc.pid})\n"
        os.write(2, note.encode())

    def reap(self) -> None:
        """Reap a control store this node started (so that it is not taken for alive)."""
        if self.control_proc is not None:
            self.control_proc.poll()

    def heartbeat(self) -> None:
        """Every ``heartbeat_interval``, and sooner (within ``_CHANGE_SECONDS``) when this
        node's free resources changed: other nodes place work, and ``ember status`` and
        ``available_resources()`` report it, from these."""
        node = self.node
        if node.stopping:
            return
        # (imported with the worker code once the node listens; not before, to start sooner)
        from ember._core.task_leases import MAX_LEASE_REQUESTS

        total, available = node.resources.snapshot()
        now = time.monotonic()
        due = now - self.beat_at >= self.heartbeat_interval or available != self.beat_sent
        # (one at a time: a slow store)
        if due and self.gcs_ready and self.gcs is not None and not self.beat_waiting:
            pending = [
                [kind, shape_dict(shape), n, capped]
                for kind, shape, n, capped in node.scheduler.waiting(MAX_LEASE_REQUESTS)
            ]
            self.beat_at, self.beat_sent, self.beat_waiting = now, available, True
            changed = None if total == self.total_sent else total
            self.total_sent = total
            node.calls.call(
                self.gcs,
                lambda rid: m.Heartbeat(
                    rid=rid,
                    node_id=node.node_id,
                    available=available,
                    pending=pending,
                    total=changed,
                ),
                self.heartbeat_answered,
            )
        node.reactor.call_later(min(_CHANGE_SECONDS, self.heartbeat_interval), self.heartbeat)

    def heartbeat_answered(self, answer: m.Answer) -> None:
        self.beat_waiting = False
        if not isinstance(answer, m.Reply):
            return
        if answer.error is None:
            self.update_view(answer.value)
        elif answer.kind is m.ErrorKind.NODE_DIED:
            os.write(2, b"ember: this node was declared dead by the control store; stopping\n")
            self.node.shutdown(failed=True)

    def update_view(self, view: list[dict[str, Any]]) -> None:
        node = self.node
        for entry in view:
            known = self.view.get(entry["node_id"])
            if known is not None and known["alive"] and not entry["alive"]:
                node.node_died(entry["node_id"], "the control store declared it dead")
            self.view[entry["node_id"]] = entry
            self.by_tag[entry["node_id"][:4]] = entry["node_id"]
        node.run_actions(node.scheduler.view_changed(view))

    def nodes(self) -> list[dict[str, Any]]:
        """Every node as last heard of."""
        return list(self.view.values())

    def is_alive(self, node_id: bytes) -> bool:
        info = self.view.get(node_id)
        return info is not None and bool(info["alive"])

    def address_of(self, node_id: bytes, live: bool = True) -> str | None:
        """Where a node listens; None if it is unknown (or, if ``live``, dead)."""
        info = self.view.get(node_id)
        return info["address"] if info is not None and (info["alive"] or not live) else None

    def peer_unreachable(self, node_id: bytes) -> None:
        """No work goes to that node until a new view says it is alive (it may be dying)."""
        self.node.run_actions(self.node.scheduler.peer_unreachable(node_id))

    def head_conn(self) -> Connection | None:
        """A connection to the head node, if this node is not it (None on one machine)."""
        for node_id, info in self.view.items():
            if info["alive"] and "node:__internal_head__" in info["total"]:
                return None if node_id == self.node.node_id else self.node_conn(node_id)
        return None

    def home_of(self, client_id: bytes) -> bytes | None:
        """The node a process runs on: client ids start with their node's tag."""
        return self.by_tag.get(client_id[:4])

    def node_conn(self, node_id: bytes | None) -> Connection[_Client] | None:
        """A connection to another node's manager, opened on first use; None if it is gone."""
        if node_id is None:
            return None
        conn = self.peer_conns.get(node_id)
        if conn is not None and not conn.closed:
            return conn
        address = self.address_of(node_id)
        if address is None:
            return None
        node = self.node
        try:
            conn = node.reactor.connect(
                address, node.handle, node.client_closed, timeout=CONNECT_SECONDS, token=node.token
            )
        except OSError:
            return None
        conn.node = node_id
        self.peer_conns[node_id] = conn
        conn.send(
            m.Hello(
                rid=0,
                kind="node",
                client_id=node.node_id[:4] + ids.random_id(8),
                pid=os.getpid(),
                job_id=b"",
                listen_addr=None,
            )
        )
        return conn

    def forget(self, node_id: bytes) -> None:
        """That node died: it takes no more work, and whatever is open to it closes (which
        turns into the ordinary failure paths of what used it)."""
        info = self.view.get(node_id)
        if info is not None:
            info["alive"] = False
        self.peer_unreachable(node_id)
        for conn in self.node.reactor.connections():
            if conn.node == node_id:
                conn.close()
        self.peer_conns.pop(node_id, None)


def node_host(node_ip: str | None) -> str:
    """The address other hosts reach this node at."""
    if node_ip:
        return node_ip
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
