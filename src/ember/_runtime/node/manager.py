"""The node manager process: resources, worker pool, leases, actors and the object store index.

Theory of operation: one single-threaded reactor serves every local process. The node manager
holds four parts, each owning its state: a worker pool (``worker_pool``), an object directory
(``object_directory``: the objects in the node's shared-memory folder, their refs, waits,
pulls and spilling), an actor manager (``actor_manager``) and a cluster link
(``cluster_link``: the control store, heartbeats, other nodes). Lease decisions, and when to
start or stop workers, come from ``_core.scheduler.LeaseScheduler``; this module turns
messages into its events and the parts' calls, and carries out every action the scheduler
returns. On one machine the control store
runs in this process too, behind its own socket; on a cluster the node joins the head's, and
also listens on TCP for other nodes and for callers on other hosts.

Start: ``python -m ember._runtime.node.manager`` with its settings as JSON on stdin; it writes its
addresses on the file descriptor named in them once it listens.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

import msgpack

from ember._core import scheduler as sched
from ember._core.labels import node_labels
from ember._core.metrics import MetricsTable
from ember._core.placement import Placement
from ember._core.placement_groups import NodeBundles
from ember._core.progress_bars import MAGIC, process_ended
from ember._core.resources import NodeResources, describe, shape_of
from ember._core.task_events import MAX_TASKS, TaskTable
from ember._protocol import messages as m
from ember._runtime import proctitle
from ember._runtime.control_store.server import ControlStore, ControlStoreServer
from ember._runtime.launch.cluster_files import DUMP_STACKS, remove_node_files
from ember._runtime.launch.process_config import NodeConfig, read_config, setting
from ember._runtime.memory import give_heap_back
from ember._runtime.node.actor_manager import ActorManager
from ember._runtime.node.cluster_link import ClusterLink, node_host
from ember._runtime.node.logs import NodeLogs
from ember._runtime.node.memory_monitor import NodeMemoryMonitor
from ember._runtime.node.object_directory import ObjectDirectory
from ember._runtime.node.state_rows import NodeState
from ember._runtime.node.worker_pool import WorkerPool
from ember._transport.process import process_alive
from ember._transport.reactor import Connection, Reactor, local_address
from ember._transport.rpc import Calls, refuse

# How a leaving driver's FlushOutput waits for workers (one that is stuck must not hold
# the driver's exit).
_FLUSH_OUTPUT_SECONDS = 1.0
_REAP_SECONDS = 0.5


@dataclass
class _Client:
    conn: Connection[_Client]
    kind: str
    client_id: bytes
    pid: int
    job_id: bytes
    listen_addr: str | None
    log_to_driver: bool
    bars: bool = False  # it printed a progress bar's state (tqdm_ray)


class NodeManager:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.session_dir = config.session_dir
        self.log_dir = config.log_dir
        capacity = config.object_store_memory
        # The store's size is a resource, as in Ray (cluster_resources(), nodes()); no task
        # asks for it.
        self.resources = NodeResources({**config.resources, "object_store_memory": float(capacity)})
        self.bundles = NodeBundles(self.resources)  # placement groups' reservations here
        # Joining a cluster (a control store elsewhere) means deciding where work goes.
        self.clustered = bool(config.control_address)
        self.labels = node_labels(config.labels or {}, self.node_id, config.resources)
        cpus = max(1, int(config.resources.get("CPU", 1)))
        self.scheduler = sched.LeaseScheduler(
            self.resources,
            max_starting=max(2, cpus),
            placement=Placement(self.node_id, self.labels) if self.clustered else None,
            first_lease_id=(int.from_bytes(self.node_id[:4], "big") << 32) + 1,
            idle_kept=cpus,
            idle_seconds=setting(None, "idle_worker_seconds", sched.IDLE_WORKER_SECONDS),
            labels=self.labels,
            stalled_seconds=setting(None, "stalled_warn_seconds", sched.STALLED_WARN_SECONDS),
        )
        self.token = config.token
        self.host = node_host(config.node_ip) if self.clustered else config.node_ip or "127.0.0.1"
        self.address = ""
        self.tcp_address: str | None = None
        self.control_address = ""
        self.calls = Calls()
        self.reactor = Reactor("ember-node")
        self.clients: dict[bytes, _Client] = {}
        self.owner_pid = config.owner_pid
        self.stopping = False
        self.failed = False  # stopped by a failure, not on request: keep the logs
        worker_env = dict(os.environ)
        worker_env.pop("CUDA_VISIBLE_DEVICES", None)
        self.pool = WorkerPool(self, worker_env)
        self.objects = ObjectDirectory(
            self,
            config.shm_dir,
            config.spill_dir,
            capacity,
            ref_grace=config.ref_grace_s,
        )
        self.actors = ActorManager(self)
        self.cluster = ClusterLink(self)
        self.memory = NodeMemoryMonitor(self)
        # The tasks that processes here own, from their task events.
        self.tasks = TaskTable(
            int(setting(None, "task_events_max_num_task_in_gcs", MAX_TASKS)),
            msgpack.unpackb,
            merged=give_heap_back,
        )
        self.state = NodeState(self)
        self.metrics = MetricsTable()  # user metrics of this node's processes
        self.state.providers["metrics"] = self.metrics_rows
        self.logs = NodeLogs(self)  # (a provider of state rows)

    # ------------------------------------------------------------------ process lifetime

    def start(self) -> None:
        self.address = self.reactor.listen(
            local_address(self.session_dir, "node"), self.handle, self.client_closed
        )
        if self.config.control_address:  # (clustered)
            self.control_address = self.config.control_address
            self.tcp_address = self.reactor.listen(
                f"tcp:{self.host}:0", self.handle, self.client_closed, token=self.token
            )
        else:
            server = ControlStoreServer(ControlStore(node_timeout=float("inf")), self.reactor)
            self.control_address = server.listen(local_address(self.session_dir, "control"), None)
        self.cluster.join()
        self.reactor.call_later(_REAP_SECONDS, self.reap)
        self.memory.start()
        fd = self.config.ready_fd
        if fd is not None:
            ready = {
                "node": self.address,
                "control": self.control_address,
                "tcp": self.tcp_address,
                "pid": os.getpid(),
            }
            os.write(fd, json.dumps(ready).encode() + b"\n")
            os.close(fd)
        # Only now load what workers run: the driver is already connecting meanwhile, and
        # every forked worker inherits these modules instead of importing them itself.
        from ember._runtime.worker import worker  # noqa: F401

        self.run_actions(self.scheduler.prestart(self.config.prestart_workers))

    def run(self) -> None:
        try:
            self.reactor.run()
        except BaseException:
            self.failed = True
            raise
        finally:
            self.cleanup()

    def shutdown(self, failed: bool = False) -> None:
        """Stop: on request (a stop signal, the end of the driver), or because of a failure
        this node's log tells of."""
        self.failed = self.failed or failed
        self.stopping = True
        self.reactor.stop()

    def cleanup(self) -> None:
        """A node that ends on request leaves nothing; one that failed leaves its logs."""
        self.pool.stop_all()
        remove_node_files(self.config.shm_dir, self.session_dir, self.log_dir, self.failed)

    # ------------------------------------------------------------------ upkeep

    def reap(self) -> None:
        """Every half second: upkeep of the parts, and the end of this node when the driver
        it serves is gone."""
        now = time.monotonic()
        self.pool.reap(now)
        self.cluster.reap()
        self.objects.reap(now)
        if self.owner_pid and not process_alive(self.owner_pid):
            self.shutdown()
            return
        self.reactor.call_later(_REAP_SECONDS, self.reap)

    # ------------------------------------------------------------------ actions

    def run_actions(self, actions: list[sched.Action]) -> None:
        """Carry out every action of the lease scheduler. A request's client is a caller's
        connection, or ``("actor", id)`` for the placement of an actor this node manages."""
        for action in actions:
            if isinstance(action, sched.Grant):
                self.grant(action)
            elif isinstance(action, sched.StartWorker):
                self.pool.start(action.runtime_env)
            elif isinstance(action, sched.StopWorker):
                self.pool.kill(action.worker_id)
            elif isinstance(action, sched.Revoke):
                if isinstance(action.client, Connection):
                    action.client.send(m.RevokeLease(lease_id=action.lease_id))
            elif isinstance(action, (sched.WarnInfeasible, sched.WarnStalled)):
                conn = self._conn_for(action.client)
                if conn is not None:
                    conn.send(m.LogLines(lines=[f"(ember) Warning: {action.message}"]))
            elif isinstance(action, sched.Spill):
                self.spill(action)
            elif isinstance(action, sched.Refuse):
                if isinstance(action.client, Connection):
                    action.client.send(m.error_reply(action.rid, action.error, action.message))
                elif isinstance(action.client, tuple):
                    self.actors.cannot_place(action.client[1], action.message, action.error)
            else:
                raise AssertionError(f"unknown scheduler action {action!r}")

    def spill(self, action: sched.Spill) -> None:
        """Send a lease request on to another node: the caller asks there, or (for an actor
        this node manages) this node does."""
        if isinstance(action.client, tuple):
            self.actors.spill_to(action.client[1], action.node_id)
            return
        assert isinstance(action.client, Connection)
        address = self.cluster.address_of(action.node_id, live=False)
        if address is None:  # (a node the view no longer has): the caller asks again
            action.client.send(
                m.error_reply(action.rid, m.ErrorKind.CONNECTION_LOST, "that node is gone")
            )
            return
        action.client.send(m.LeaseSpilled(rid=action.rid, node_id=action.node_id, address=address))

    def _conn_for(self, client: object) -> Connection | None:
        if isinstance(client, Connection):
            return client
        return self.actors.owner_conn(client[1]) if isinstance(client, tuple) else None

    def grant(self, g: sched.Grant) -> None:
        if isinstance(g.client, tuple):  # an actor's placement
            self.actors.place_actor(g.client[1], g)
            return
        assert isinstance(g.client, Connection)
        w = self.pool.get(g.worker_id)
        # (granted only once its worker has connected, with the address it takes tasks on)
        assert w is not None and w.client is not None and w.client.listen_addr is not None
        if g.actor_id:  # an actor placed from another node (which manages it)
            w.actor_id = g.actor_id
        g.client.send(
            m.LeaseGranted(
                rid=g.rid,
                lease_id=g.lease_id,
                worker_id=g.worker_id,
                addr=w.client.listen_addr,
                gpu_ids=list(g.gpu_ids),
                saturated=g.saturated,
                node_id=self.node_id,
            )
        )

    def prepare_bundles(self, msg: m.PrepareBundles) -> bool:
        """The control store reserves a placement group's bundles here (first phase)."""
        return self.bundles.prepare(
            msg.pg_id, [(b.bundle_index, shape_of(b.shape)) for b in msg.bundles]
        )

    def commit_bundles(self, msg: m.CommitBundles) -> None:
        self.bundles.commit(msg.pg_id, msg.indexes)
        self.run_actions(self.scheduler.resources_changed())

    def release_bundles(self, msg: m.ReleaseBundles) -> None:
        """A group was removed (or its reservation rolled back): what runs in its bundles
        here is stopped, and their resources go back to the node; a removed group's work is
        refused from now on."""
        if msg.removed:
            self.run_actions(self.scheduler.group_removed(msg.pg_id.hex()))
        else:
            self.run_actions(self.scheduler.evict(self.bundles.group_names(msg.pg_id, msg.indexes)))
        self.bundles.release(msg.pg_id, msg.indexes)
        self.run_actions(self.scheduler.resources_changed())

    def client_conn(self, client_id: bytes) -> Connection | None:
        """The connection of a process connected to this node, if it is."""
        client = self.clients.get(client_id)
        return client.conn if client is not None else None

    def is_connected(self, client_id: bytes) -> bool:
        return client_id in self.clients

    def node_died(self, node_id: bytes, reason: str) -> None:
        """The control store declared another node dead."""
        # Local processes hear of it before any answer that it caused (an object lost with
        # it), so an owner knows to rebuild the object's own lost arguments too.
        for client in self.clients.values():
            if client.kind in ("driver", "worker"):
                client.conn.send(m.NodeDied(node_id=node_id, reason=reason))
        self.cluster.forget(node_id)
        self.objects.node_died(node_id, reason)

    # ------------------------------------------------------------------ messages

    def handle(self, conn: Connection[_Client], msg: m.Message) -> None:
        """Every message to this node, on the connections it serves and those it opens to
        other nodes (``peer``: the client record, once its Hello came)."""
        client = conn.peer
        if isinstance(msg, m.Hello):
            self.hello(conn, msg)
        elif isinstance(msg, m.RequestLease):
            self.run_actions(
                self.scheduler.request(
                    conn,
                    msg.rid,
                    shape_of(msg.shape),
                    msg.describe,
                    msg.dedicated,
                    msg.strategy,
                    msg.spilled,
                    msg.job_id,
                    msg.runtime_env,
                    msg.retriable,
                    msg.actor_id,
                )
            )
        elif isinstance(msg, m.ReturnLease):
            if msg.worker_failed:  # the caller lost its connection to this worker
                self.run_actions(self.scheduler.lease_failed(msg.lease_id))
            else:
                self.run_actions(self.scheduler.return_lease(msg.lease_id))
        elif isinstance(msg, m.CancelLeaseRequest):
            self.run_actions(self.scheduler.cancel_request(conn, msg.rid))
        elif isinstance(msg, m.TaskBlocked):
            self.run_actions(self.scheduler.blocked(msg.lease_id))
        elif isinstance(msg, m.TaskUnblocked):
            self.run_actions(self.scheduler.unblocked(msg.lease_id))
        elif isinstance(msg, m.ObjectCreated):
            self.objects.object_created(msg)
        elif isinstance(msg, m.MakeRoom):
            conn.send(m.Reply(rid=msg.rid, value=self.objects.make_room(msg.size)))
        elif isinstance(msg, m.PutInline):
            self.objects.put_inline(msg)
        elif isinstance(msg, m.WaitObject):
            self.objects.wait_object(conn, msg, client.client_id if client else None)
        elif isinstance(msg, m.IncRef):
            assert client is not None
            self.objects.add_refs(client.client_id, msg.ids, msg.owners)
        elif isinstance(msg, m.DecRef):
            assert client is not None
            self.objects.dec_refs(client.client_id, msg.ids)
        elif isinstance(msg, m.FreeObjects):
            assert client is not None
            self.objects.free_now(client.client_id, msg.ids)
        elif isinstance(msg, m.CreateActor):
            self.actors.create_actor(conn, msg)
        elif isinstance(msg, m.ResolveActor):
            self.actors.resolve_actor(conn, msg.rid, msg.actor_id, msg.min_incarnation, msg.ended)
        elif isinstance(msg, m.KillActor):
            self.actors.kill_actor(
                msg.actor_id,
                msg.no_restart,
                msg.reason or "it was killed by ember.kill()",
                (lambda: conn.send(m.Reply(rid=msg.rid))) if msg.rid else None,
            )
        elif isinstance(msg, m.ActorArgs):
            self.actors.actor_args(msg)
        elif isinstance(msg, m.ActorDone):
            self.actors.kill_actor(msg.actor_id, True, msg.reason)
        elif isinstance(msg, m.KillWorker):
            self.pool.kill(msg.worker_id)
        elif isinstance(msg, m.WorkerExit):
            self.pool.worker_exit(conn, msg)
        elif isinstance(msg, m.ClusterInfo):
            # The node table fresh from the control store, this node's own entry exact.
            self.cluster.gcs_call(
                lambda rid: m.GetNodes(rid=rid),
                lambda answer: conn.send(
                    m.Reply(rid=msg.rid, value=self.cluster_info(m.reply_value(answer)))
                ),
            )
        elif isinstance(msg, m.TaskEvents):
            self.tasks.add_packed(msg.events, msg.dropped)
        elif isinstance(msg, m.LogLines):
            if client is not None and not client.bars:
                client.bars = any(MAGIC in line for line in msg.lines)
            self.to_drivers(msg)
        elif isinstance(msg, m.InstallRuntimeEnv):
            self.run_actions(self.scheduler.prestart(1, msg.runtime_env))
        elif isinstance(msg, m.FlushOutput):
            self.flush_output(conn, msg.rid)
        elif isinstance(msg, m.Answer):
            self.calls.on_reply(msg)
        elif isinstance(msg, m.ObjectLocated):
            assert client is not None
            self.objects.object_located(msg, client.client_id)
        elif isinstance(msg, m.LocateObject):
            self.objects.locate_object(conn, msg)
        elif isinstance(msg, m.PullObject):
            self.objects.serve_pull(conn, msg)
        elif isinstance(msg, m.DropOwner):
            self.objects.dec_refs(msg.owner_id, msg.ids)
        elif isinstance(msg, m.PutObject):
            self.objects.put_file(msg.object_id, msg.data)
        elif isinstance(msg, m.MetricsReport):
            if client is not None:
                self.metrics.report(client.client_id, msg.points, msg.dropped)
        else:
            refuse(conn, msg, "a node manager")

    def flush_output(self, conn: Connection, rid: int) -> None:
        """A driver leaves: answer once every worker here has answered a FlushOutput (so the
        lines they printed before it were passed on, ahead of this answer), or after a
        moment."""
        workers = [c.conn for c in self.clients.values() if c.kind == "worker"]
        left = len(workers)
        answered = False

        def answer() -> None:
            nonlocal answered
            if not answered:
                answered = True
                conn.send(m.Reply(rid=rid))

        def flushed(_: m.Answer) -> None:
            nonlocal left
            left -= 1
            if left == 0:
                answer()

        for worker in workers:
            self.calls.call(worker, lambda rid: m.FlushOutput(rid=rid), flushed)
        if workers:
            self.reactor.call_later(_FLUSH_OUTPUT_SECONDS, answer)
        else:
            answer()

    def hello(self, conn: Connection[_Client], msg: m.Hello) -> None:
        client = _Client(
            conn, msg.kind, msg.client_id, msg.pid, msg.job_id, msg.listen_addr, msg.log_to_driver
        )
        conn.peer = client
        home = self.cluster.home_of(msg.client_id)
        if home != self.node_id:
            conn.node = home or b"?"  # a caller on another node
        self.clients[msg.client_id] = client
        conn.send(
            m.Reply(
                rid=msg.rid,
                value={
                    "node_id": self.node_id,
                    "shm_dir": self.config.shm_dir,
                    "spill_dir": self.config.spill_dir,
                    "session_dir": self.session_dir,
                    "log_dir": self.log_dir,
                    "token": self.token,
                    "control_address": self.control_address,
                    # (this node's entry in the cluster table, without asking for it)
                    "host": self.host,
                    "local_address": self.address,
                    "labels": self.labels,
                },
            )
        )
        if msg.kind == "worker" and self.pool.connected(client):
            env = self.pool.workers[msg.client_id].runtime_env
            self.run_actions(self.scheduler.worker_started(msg.client_id, env))

    def client_closed(self, conn: Connection[_Client]) -> None:
        self.calls.on_close(conn)
        client = conn.peer
        if client is None or self.stopping:
            return
        self.clients.pop(client.client_id, None)
        # (a process of this node leaves unsealed files behind)
        local = conn.sock.family == socket.AF_UNIX
        self.objects.client_gone(client.client_id, client.pid if local else None)
        # Whatever this process held or asked for as a caller (leases for its nested tasks)
        # goes back, whether it was a driver or a worker; the workers running its tasks are
        # stopped, since nobody is left to take their results (as Ray does).
        self.run_actions(self.scheduler.client_gone(conn))
        if client.kind == "worker":
            if client.bars:  # (after its last line: the drivers end the bars it left open)
                self.to_drivers(m.LogLines(lines=[process_ended(self.node_id.hex(), client.pid)]))
            w = self.pool.disconnected(client.client_id)
            self.run_actions(self.scheduler.worker_died(client.client_id))
            if w is not None and w.actor_id:
                actor_id = w.actor_id
                self.pool.when_exited(
                    w, lambda: self.actors.worker_died(actor_id, self.pool.process_end(w), w.oom)
                )
        self.actors.owner_gone(client.client_id)
        self.metrics.process_gone(client.client_id)
        driver = client.kind != "worker" and not conn.node
        if driver and self.owner_pid and client.pid == self.owner_pid:
            self.shutdown()

    def to_drivers(self, msg: m.LogLines) -> None:
        """Lines for the drivers that show their workers' output."""
        for c in self.clients.values():
            if c.kind == "driver" and c.log_to_driver:
                c.conn.send(msg)

    # ------------------------------------------------------------------ info

    def metrics_rows(self, detail: bool) -> list[dict[str, Any]]:
        """The user metrics of this node's processes, one row per series, each naming
        the node and how many points it dropped so far (its caps)."""
        node = {
            "node_id": self.node_id.hex(),
            "node_ip": self.host,
            "dropped": self.metrics.dropped,
        }
        return [{**row, **node} for row in self.metrics.rows()]

    def cluster_info(self, view: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """This node in detail, and every node of the cluster (as the control store has it,
        or as last heard of)."""
        total, available = self.resources.snapshot()
        capacity, used = self.objects.usage()
        nodes = [
            {**n, "available": available} if n["node_id"] == self.node_id else n
            for n in (view if view is not None else self.cluster.nodes())
        ] or [
            {
                "node_id": self.node_id,
                "host": self.host,
                "address": self.address,
                "local_address": self.address,
                "total": total,
                "available": available,
                "alive": True,
                "labels": self.labels,
            }
        ]
        return {
            "nodes": nodes,
            "node_id": self.node_id,
            "address": self.address,
            "total": total,
            "available": available,
            "object_store_memory": capacity,
            "object_store_used": used,
            "pending": [
                {"what": what, "feasible": feasible} for what, feasible in self.scheduler.pending()
            ],
            "workers": len(self.pool),
            "actors": self.actors.live_count(),
            "describe": describe(shape_of(total)),
        }


def main(argv: list[str]) -> None:
    proctitle.show("ember::node")
    faulthandler.register(DUMP_STACKS, all_threads=True)
    node = NodeManager(read_config(NodeConfig))
    # Before anything else: a stop that comes while the node is still starting must also
    # clean up (the loop runs the queued shutdown as soon as it starts).
    signal.signal(signal.SIGTERM, lambda *_: node.reactor.call_soon(node.shutdown))
    node.start()
    node.run()


if __name__ == "__main__":
    main(sys.argv[1:])
