"""The node manager process: resources, worker pool, leases, actors and the object store index.

Theory of operation: one single-threaded reactor serves every local process. Lease decisions
come from ``_core.scheduler.LeaseScheduler`` and reference counts from ``_core.refcount``;
this module carries out their actions (answering callers, starting and killing workers) and
keeps the index of objects in the node's shared-memory folder (sizes, owners, who waits for
them, and what to spill when the store is over capacity). Objects are in ``node_objects``,
actors in ``node_actors``, and the node's part in a cluster (registration, heartbeats, other
nodes) in ``node_cluster``. On one machine the control store runs in this process too, behind
its own socket; on a cluster the node joins the head's, and also listens on TCP for other
nodes and for callers on other hosts.

Start: ``python -m ember._runtime.node`` with its settings as JSON on stdin; it writes its
addresses on the file descriptor named in them once it listens.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from ember import exceptions as exc
from ember._core import scheduler as sched
from ember._core.placement import Placement
from ember._core.refcount import RefTable
from ember._core.resources import NodeResources, describe, shape_of
from ember._protocol import ids
from ember._protocol import messages as m
from ember._runtime import proctitle
from ember._runtime.cluster_files import alive, describe_logs, remove_node_files
from ember._runtime.control_store import ControlStore, ControlStoreServer, read_config
from ember._runtime.node_actors import ActorsMixin, _ActorRecord
from ember._runtime.node_cluster import ClusterMixin, node_host
from ember._runtime.node_objects import ObjectsMixin, _Object, _Waiter
from ember._runtime.object_store import StoreFiles
from ember._transport.reactor import Connection, Reactor, local_address
from ember._transport.rpc import Calls

# Idle workers beyond one per CPU are stopped after this long (EMBER_IDLE_WORKER_SECONDS).
IDLE_WORKER_SECONDS = 10.0
# Freed store files kept for reuse go back to the system after this long unused.
_POOL_IDLE_SECONDS = 30.0
# How often the store's count of its shared memory is checked against its files (at least).
_RECOUNT_SECONDS = 1.0
# Workers whose process ended, kept so that a caller can still ask how (WorkerExit).
_ENDED_WORKERS_KEPT = 64
# A worker's connection closes a moment before its process can be reaped: how long to wait
# for its exit status, and how often to look.
_EXIT_WAIT_SECONDS = 1.0
_EXIT_POLL_SECONDS = 0.005
# How long a leaving driver's FlushOutput waits for workers (one that is stuck must not hold
# the driver's exit).
_FLUSH_OUTPUT_SECONDS = 1.0


@dataclass
class _Client:
    conn: Connection
    kind: str
    client_id: bytes
    pid: int
    job_id: bytes
    listen_addr: str | None
    log_to_driver: bool


class _Forked:
    """A worker forked from this process. ``returncode`` is its exit status as Popen has it
    (a signal as its negative number) once it is reaped, and stays None for one that ended
    with a status nobody can tell (reaped elsewhere: not this process's child any more)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._ended = False

    def has_ended(self) -> bool:
        if not self._ended:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self._ended = True
                return True
            if pid:
                self._ended = True
                self.returncode = os.waitstatus_to_exitcode(status)
        return self._ended

    def kill(self) -> None:
        if not self._ended:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.has_ended() and time.monotonic() < deadline:
            time.sleep(0.002)


@dataclass
class _WorkerProc:
    worker_id: bytes
    proc: _Forked
    log_path: str
    client: _Client | None = None
    actor_id: bytes = b""


class _Handler:
    def __init__(self, node: NodeManager) -> None:
        self.node = node

    def on_message(self, conn: Connection, msg: m.Message) -> None:
        self.node.handle(conn, msg)

    def on_close(self, conn: Connection) -> None:
        self.node.client_closed(conn)


class NodeManager(ObjectsMixin, ActorsMixin, ClusterMixin):
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.node_id = bytes.fromhex(config["node_id"])
        self.session_dir = config["session_dir"]
        self.log_dir = config["log_dir"]
        self.store = StoreFiles(config["shm_dir"], config["spill_dir"])
        self.capacity = int(config["object_store_memory"])
        self.store.create_usage(self.capacity)
        self.store.make_room = self.make_room
        # The store's size is a resource, as in Ray (cluster_resources(), nodes()); no task
        # asks for it.
        self.resources = NodeResources(
            {**config["resources"], "object_store_memory": float(self.capacity)}
        )
        # Joining a cluster (a control store elsewhere) means deciding where work goes.
        self.clustered = bool(config.get("control_address"))
        self.scheduler = sched.LeaseScheduler(
            self.resources,
            max_starting=max(2, int(config["resources"].get("CPU", 1))),
            placement=Placement(self.node_id) if self.clustered else None,
            first_lease_id=(int.from_bytes(self.node_id[:4], "big") << 32) + 1,
        )
        self.refs = RefTable(grace=float(config.get("ref_grace", 1.0)))
        self.token: str | None = config.get("token")
        self.host = node_host(config) if self.clustered else "127.0.0.1"
        self.tcp_address: str | None = None
        self.view: dict[bytes, dict[str, Any]] = {}
        self.by_tag: dict[bytes, bytes] = {self.node_id[:4]: self.node_id}
        self.peer_conns: dict[bytes, Connection] = {}
        self.joined = False
        self.gcs_ready = False
        self.gcs_queue: list[tuple[Any, Any]] = []
        self.heartbeat_interval = 0.5
        self.beat_at = -float("inf")  # when the last heartbeat went, with these free resources
        self.beat_sent: dict[str, float] = {}
        self.beat_waiting = False  # for the control store's answer to the last one
        self.located: dict[bytes, tuple[bytes, bytes]] = {}  # oid -> (node holding it, owner)
        self.borrowed: dict[bytes, bytes] = {}  # oid -> the node that counts its holders
        self.contains: dict[bytes, list[bytes]] = {}  # oid -> ids of the refs inside it
        self.lost: dict[bytes, str] = {}
        self.pulls: dict[bytes, list[Any]] = {}
        self.locating: dict[bytes, list[_Waiter]] = {}
        self.receiving: dict[bytes, tuple[bytes, Any]] = {}  # oid -> (node, FileReceiver)
        self.senders: dict[Any, bytes] = {}  # FileSender -> the node pulling
        self.calls = Calls()
        self.reactor = Reactor("ember-node")
        self.clients: dict[bytes, _Client] = {}
        self.workers: dict[bytes, _WorkerProc] = {}
        self.ended_workers: collections.OrderedDict[bytes, _WorkerProc] = collections.OrderedDict()
        self.objects: collections.OrderedDict[bytes, _Object] = collections.OrderedDict()
        self.waiters: dict[bytes, list[_Waiter]] = {}
        self.actors: dict[bytes, _ActorRecord] = {}
        self.registering: dict[bytes, list[Any]] = {}
        self.control_proc: Any = None  # a control store this (head) node started again
        self.control_revived = -float("inf")  # when it last did
        self.gcs_down_since: float | None = None  # since when the control store is unreachable
        self.lease_holder: dict[int, Connection] = {}
        self.recount_at = 0.0  # when to recount the store's files next (see ``reap``)
        self.owner_pid = int(config.get("owner_pid", 0))
        self.worker_env = dict(os.environ)
        self.worker_env.update(config.get("worker_env", {}))
        self.worker_env.pop("CUDA_VISIBLE_DEVICES", None)
        self._waiting_owner: dict[bytes, bytes] = {}
        self._free_timer = False
        self.start_failures = 0
        self.exited: list[_Forked] = []
        self.idle_since: dict[bytes, float] = {}
        self.idle_worker_seconds = float(
            os.environ.get("EMBER_IDLE_WORKER_SECONDS", IDLE_WORKER_SECONDS)
        )
        self.freed: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self.soft_limit = max(1, int(config["resources"].get("CPU", 1)))
        self.stopping = False
        self.failed = False  # stopped by a failure, not on request: keep the logs

    # ------------------------------------------------------------------ process lifetime

    def start(self) -> None:
        self.address = self.reactor.listen(
            local_address(self.session_dir, "node"), self.new_handler
        )
        if self.clustered:
            self.control_address = self.config["control_address"]
            port = int(self.config.get("node_port", 0))
            self.tcp_address = self.reactor.listen(
                f"tcp:{self.host}:{port}", self.new_handler, token=self.token
            )
        else:
            server = ControlStoreServer(ControlStore(node_timeout=float("inf")), self.reactor)
            self.control_address = server.listen(local_address(self.session_dir, "control"), None)
        self.join()
        self.reactor.call_later(0.5, self.reap)
        fd = self.config.get("ready_fd")
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
        from ember._runtime import worker  # noqa: F401

        for _ in range(int(self.config.get("prestart_workers", 0))):
            self.start_worker(prestart=True)

    def new_handler(self) -> _Handler:
        """For every connection the node serves or opens to another node."""
        return _Handler(self)

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
        procs = [w.proc for w in self.workers.values()] + self.exited
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(timeout=5)
        remove_node_files(self.store.shm_dir, self.session_dir, self.log_dir, self.failed)

    # ------------------------------------------------------------------ workers

    def start_worker(self, prestart: bool = False) -> None:
        """Fork a worker: this process has the runtime imported and no threads, so a fork
        costs a few milliseconds where starting an interpreter costs a hundred or more."""
        worker_id = self.node_id[:4] + ids.random_id(8)
        log_path = os.path.join(self.log_dir, f"worker-{worker_id.hex()[:12]}.log")
        pid = os.fork()
        if pid == 0:
            self._become_worker(worker_id, log_path)
        self.workers[worker_id] = _WorkerProc(worker_id, _Forked(pid), log_path)
        if prestart:
            self.scheduler._starting += 1  # counted as starting, so no extra one is launched

    def _become_worker(self, worker_id: bytes, log_path: str) -> None:
        code = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self.reactor.close_in_child()
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            os.environ.clear()
            os.environ.update(self.worker_env)
            from ember._runtime import worker  # already imported by start(): no cost here

            listen = f"tcp:{self.host}:0" if self.clustered else ""
            worker.main(
                [self.address, self.control_address, self.session_dir, worker_id.hex(), listen],
                token=self.token if self.clustered else None,
            )
            code = 0
        except BaseException:  # noqa: BLE001 - a child must never return into the node's loop
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)

    def reap(self) -> None:
        """Notice workers that exited without ever connecting (a crash at start-up), stop
        workers that have been idle for a while beyond one per CPU, give pooled store files
        unused for a while back to the system, repair the store's count of its shared memory
        (``StoreFiles.recount``), and reap a control store this node started."""
        for w in list(self.workers.values()):
            if w.proc.has_ended() and w.client is None:
                del self.workers[w.worker_id]
                self.worker_start_failed(w)
        self.exited = [p for p in self.exited if not p.has_ended()]
        if self.control_proc is not None:
            self.control_proc.poll()  # reaped when it exits, so it is not taken for alive
        self.stop_idle_workers(time.monotonic())
        self.store.trim_pool(self.capacity // 2, idle_seconds=_POOL_IDLE_SECONDS)
        now = time.monotonic()
        if now >= self.recount_at:
            self.store.recount()
            # (a folder of many thousands of objects takes a while to go through: then less often)
            self.recount_at = now + max(_RECOUNT_SECONDS, 100 * (time.monotonic() - now))
        if self.owner_pid and not alive(self.owner_pid):
            self.shutdown()
            return
        self.reactor.call_later(0.5, self.reap)

    def stop_idle_workers(self, now: float) -> None:
        idle = set(self.scheduler.idle_workers())
        self.idle_since = {w: self.idle_since.get(w, now) for w in idle}
        spare = len(idle) - self.soft_limit
        for worker_id, since in sorted(self.idle_since.items(), key=lambda kv: kv[1]):
            if spare <= 0 or now - since < self.idle_worker_seconds:
                break
            if self.owns_anything(worker_id):
                continue  # objects, actors or leases of its own still depend on it
            self.run_actions(self.scheduler.worker_died(worker_id))
            self.kill_worker(worker_id)
            spare -= 1

    def owns_anything(self, client_id: bytes) -> bool:
        w = self.workers.get(client_id)
        conn = w.client.conn if w is not None and w.client is not None else None
        return (
            (conn is not None and self.scheduler.has_client(conn))
            or self.refs.holds(client_id)
            or any(obj.owner == client_id for obj in self.objects.values())
            or any(a.owner == client_id and a.state != "dead" for a in self.actors.values())
        )

    def worker_start_failed(self, w: _WorkerProc) -> None:
        """After a few workers in a row die before connecting, fail what waits for them
        with their log instead of starting more for ever."""
        tail = _tail(w.log_path)
        sys.stderr.write(f"ember: a worker failed to start:\n{tail}\n")
        self.start_failures += 1
        if self.start_failures < 3:
            self.run_actions(self.scheduler.worker_start_failed())
            return
        self.scheduler.worker_start_failed()
        text = f"Ember workers fail to start on this node. The last one's log says:\n{tail}"
        for client, rid in self.scheduler.drain():
            if isinstance(client, tuple):
                rec = self.actors.get(client[1])
                if rec is not None:
                    rec.no_restart = True
                    self.mark_dead(rec, text, None)
            else:
                client.send(m.Reply(rid, ["WorkerStartFailed", text]))

    def kill_worker(self, worker_id: bytes) -> None:
        w = self.workers.get(worker_id)
        if w is not None:
            with contextlib.suppress(OSError):
                w.proc.kill()

    def when_exited(self, w: _WorkerProc, then: Any, deadline: float | None = None) -> None:
        """Call ``then`` once the worker's exit status is known (or after a second: a process
        whose connection closed is normally reaped within milliseconds), without blocking."""
        now = time.monotonic()
        deadline = now + _EXIT_WAIT_SECONDS if deadline is None else deadline
        if w.proc.has_ended() or now >= deadline:
            then()
        else:
            self.reactor.call_later(_EXIT_POLL_SECONDS, lambda: self.when_exited(w, then, deadline))

    def worker_exit(self, conn: Connection, msg: m.WorkerExit) -> None:
        w = self.workers.get(msg.worker_id) or self.ended_workers.get(msg.worker_id)
        if w is None:
            conn.send(m.Reply(msg.rid, None, None))
            return
        self.when_exited(
            w,
            lambda: conn.send(
                m.Reply(
                    msg.rid,
                    None,
                    {
                        "pid": w.proc.pid,
                        "code": w.proc.returncode,
                        "log": w.log_path,
                        "log_note": describe_logs(w.log_path, self.session_dir),
                    },
                )
            ),
        )

    def process_end(self, w: _WorkerProc) -> str:
        """How an actor's process ended, for its death or restart."""
        return (
            f"its worker process (pid {w.proc.pid}, log "
            f"{describe_logs(w.log_path, self.session_dir)}) "
            f"{exc.describe_exit(w.proc.returncode)}"
        )

    # ------------------------------------------------------------------ actions

    def run_actions(self, actions: list[sched.Action]) -> None:
        for action in actions:
            if isinstance(action, sched.Grant):
                self.grant(action)
            elif isinstance(action, sched.StartWorker):
                self.start_worker()
            elif isinstance(action, sched.StopWorker):
                self.kill_worker(action.worker_id)
            elif isinstance(action, sched.Revoke):
                if isinstance(action.client, Connection):
                    action.client.send(m.RevokeLease(action.lease_id))
            elif isinstance(action, sched.WarnInfeasible):
                conn = self._conn_for(action.client)
                if conn is not None:
                    conn.send(m.LogLines([f"(ember) Warning: {action.message}"]))
            elif isinstance(action, sched.LeaseLost):
                self.lease_holder.pop(action.lease_id, None)
            elif isinstance(action, sched.Spill):
                self.spill(action)
            elif isinstance(action, sched.Refuse):
                if isinstance(action.client, Connection):
                    action.client.send(m.Reply(action.rid, ["Unschedulable", action.message]))
                elif isinstance(action.client, tuple):
                    rec = self.actors.get(action.client[1])
                    if rec is not None:
                        rec.no_restart = True
                        self.mark_dead(rec, action.message, None)

    def spill(self, action: sched.Spill) -> None:
        """Send a lease request on to another node: the caller asks there, or (for an actor
        this node manages) this node does."""
        if isinstance(action.client, tuple):
            rec = self.actors.get(action.client[1])
            if rec is not None and rec.state != "dead":
                self.place_actor_remotely(rec, action.node_id)
            return
        info = self.view[action.node_id]
        action.client.send(
            m.Reply(action.rid, None, {"spill": action.node_id, "address": info["address"]})
        )

    def _conn_for(self, client: Any) -> Connection | None:
        if isinstance(client, Connection):
            return client
        rec = self.actors.get(client[1]) if isinstance(client, tuple) else None
        owner = self.clients.get(rec.owner) if rec else None
        return owner.conn if owner else None

    def grant(self, g: sched.Grant) -> None:
        w = self.workers[g.worker_id]
        if isinstance(g.client, tuple):  # an actor's placement
            self.place_actor(self.actors[g.client[1]], g, w)
            return
        self.lease_holder[g.lease_id] = g.client
        assert w.client is not None
        lease = self.scheduler.lease(g.lease_id)
        g.client.send(
            m.Reply(
                g.rid,
                None,
                {
                    "lease_id": g.lease_id,
                    "worker_id": g.worker_id,
                    "addr": w.client.listen_addr,
                    "gpu_ids": list(g.gpu_ids),
                    # No room for another lease of this shape now: the caller may queue a
                    # task behind another on its leases instead of waiting for a new one.
                    "saturated": lease is not None and self.scheduler.saturated(lease.alloc.shape),
                    "node": self.node_id,
                },
            )
        )

    # ------------------------------------------------------------------ messages

    def handle(self, conn: Connection, msg: m.Message) -> None:
        client: _Client | None = conn.peer
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
                )
            )
        elif isinstance(msg, m.ReturnLease):
            self.lease_holder.pop(msg.lease_id, None)
            lease = self.scheduler.lease(msg.lease_id)
            if msg.worker_failed and lease is not None:
                # The caller lost its connection to this worker: never lease it again.
                self.kill_worker(lease.worker_id)
                self.run_actions(self.scheduler.worker_died(lease.worker_id))
            else:
                self.run_actions(self.scheduler.return_lease(msg.lease_id))
        elif isinstance(msg, m.CancelLeaseRequest):
            self.run_actions(self.scheduler.cancel_request(conn, msg.rid))
        elif isinstance(msg, m.TaskBlocked):
            self.run_actions(self.scheduler.blocked(msg.lease_id))
        elif isinstance(msg, m.TaskUnblocked):
            self.run_actions(self.scheduler.unblocked(msg.lease_id))
        elif isinstance(msg, m.ObjectCreated):
            self.object_created(msg)
        elif isinstance(msg, m.MakeRoom):
            conn.send(m.Reply(msg.rid, None, self.make_room(msg.size)))
        elif isinstance(msg, m.PutInline):
            self.put_inline(msg)
        elif isinstance(msg, m.WaitObject):
            self.wait_object(conn, msg)
        elif isinstance(msg, m.IncRef):
            assert client is not None
            self.add_refs(client.client_id, msg.ids, msg.owners)
        elif isinstance(msg, m.DecRef):
            assert client is not None
            now = time.monotonic()
            for oid in msg.ids:
                self.refs.remove(oid, client.client_id, now)
            self.schedule_free()
        elif isinstance(msg, m.FreeObjects):
            assert client is not None
            for oid in msg.ids:
                if self.refs.free_now(oid, client.client_id):
                    self.free(oid)
        elif isinstance(msg, m.CreateActor):
            self.create_actor(conn, msg)
        elif isinstance(msg, m.ResolveActor):
            self.resolve_actor(conn, msg.rid, msg.actor_id, msg.min_incarnation, msg.ended)
        elif isinstance(msg, m.KillActor):
            self.kill_actor(
                msg.actor_id, msg.no_restart, msg.reason or "it was killed by ember.kill()"
            )
        elif isinstance(msg, m.ActorArgs):
            self.actor_args(msg)
        elif isinstance(msg, m.ActorDone):
            self.kill_actor(msg.actor_id, True, msg.reason)
        elif isinstance(msg, m.KillWorker):
            self.kill_worker(msg.worker_id)
        elif isinstance(msg, m.WorkerExit):
            self.worker_exit(conn, msg)
        elif isinstance(msg, m.ClusterInfo):
            # The node table fresh from the control store, this node's own entry exact.
            self.gcs_call(
                lambda rid: m.GetNodes(rid),
                lambda reply: conn.send(
                    m.Reply(
                        msg.rid,
                        None,
                        self.cluster_info(reply.value if reply.error is None else None),
                    )
                ),
            )
        elif isinstance(msg, m.LogLines):
            for c in self.clients.values():
                if c.kind == "driver" and c.log_to_driver:
                    c.conn.send(msg)
        elif isinstance(msg, m.FlushOutput):
            self.flush_output(conn, msg.rid)
        elif isinstance(msg, m.Reply):
            self.calls.on_reply(msg)
        elif isinstance(msg, m.ObjectLocated):
            assert client is not None
            self.object_located(msg, client.client_id)
        elif isinstance(msg, m.LocateObject):
            self.locate_object(conn, msg)
        elif isinstance(msg, m.PullObject):
            self.serve_pull(conn, msg)
        elif isinstance(msg, m.DropOwner):
            self.drop_owner(msg)
        elif isinstance(msg, m.PutObject):
            self.store.write_file(msg.object_id, msg.data)

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
                conn.send(m.Reply(rid, None))

        def flushed(reply: m.Reply) -> None:
            nonlocal left
            left -= 1
            if left == 0:
                answer()

        for worker in workers:
            self.calls.call(worker, m.FlushOutput, flushed)
        if workers:
            self.reactor.call_later(_FLUSH_OUTPUT_SECONDS, answer)
        else:
            answer()

    def hello(self, conn: Connection, msg: m.Hello) -> None:
        client = _Client(
            conn, msg.kind, msg.client_id, msg.pid, msg.job_id, msg.listen_addr, msg.log_to_driver
        )
        conn.peer = client
        home = self.home_of(msg.client_id)
        if home != self.node_id:
            conn.node = home or b"?"  # a caller on another node
        self.clients[msg.client_id] = client
        conn.send(
            m.Reply(
                msg.rid,
                None,
                {
                    "node_id": self.node_id,
                    "shm_dir": self.store.shm_dir,
                    "spill_dir": self.store.spill_dir,
                    "session_dir": self.session_dir,
                    "log_dir": self.log_dir,
                    "token": self.token,
                    "control_address": self.control_address,
                },
            )
        )
        if msg.kind == "worker":
            w = self.workers.get(msg.client_id)
            if w is not None:
                w.client = client
                self.start_failures = 0
                self.run_actions(self.scheduler.worker_started(msg.client_id))

    def client_closed(self, conn: Connection) -> None:
        self.calls.on_close(conn)
        client: _Client | None = conn.peer
        if client is None or self.stopping:
            return
        self.clients.pop(client.client_id, None)
        if conn.sock.family == socket.AF_UNIX:  # a process of this node: its unsealed files
            self.store.discard_unsealed(client.pid)
        now = time.monotonic()
        self.refs.holder_gone(client.client_id, now)
        self.schedule_free()
        for oid, waiting in list(self.waiters.items()):
            if self._pending_owner(oid) == client.client_id:
                for w in waiting:
                    w.answer(
                        ["OwnerDiedError", "the process that owned this object has exited"], None
                    )
                del self.waiters[oid]
        # Whatever this process held or asked for as a caller (leases for its nested tasks)
        # goes back, whether it was a driver or a worker; the workers running its tasks are
        # stopped, since nobody is left to take their results (as Ray does).
        self.run_actions(self.scheduler.client_gone(conn))
        if client.kind == "worker":
            w = self.workers.pop(client.client_id, None)
            self.run_actions(self.scheduler.worker_died(client.client_id))
            if w is not None:
                if not w.proc.has_ended():
                    self.exited.append(w.proc)  # reaped later, without blocking the loop
                self.ended_workers[w.worker_id] = w
                while len(self.ended_workers) > _ENDED_WORKERS_KEPT:
                    self.ended_workers.popitem(last=False)
                rec = self.actors.get(w.actor_id) if w.actor_id else None
                if rec is not None:
                    self.when_exited(w, lambda: self.actor_process_died(rec, self.process_end(w)))
        else:
            for rec in list(self.actors.values()):
                if rec.owner == client.client_id and not rec.detached:
                    self.kill_actor(rec.actor_id, True, "its owner (the driver) exited")
            if self.owner_pid and client.pid == self.owner_pid and not conn.node:
                self.shutdown()

    def _pending_owner(self, oid: bytes) -> bytes | None:
        """Who owns an object that waiters are waiting for; the owner is in the id's task."""
        return self._waiting_owner.get(oid)

    # ------------------------------------------------------------------ info

    def cluster_info(self, view: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """This node in detail, and every node of the cluster (as the control store has it,
        or as last heard of)."""
        total, available = self.resources.snapshot()
        nodes = [
            {**n, "available": available} if n["node_id"] == self.node_id else n
            for n in (view if view is not None else self.view.values())
        ] or [
            {
                "node_id": self.node_id,
                "host": self.host,
                "address": self.address,
                "total": total,
                "available": available,
                "alive": True,
            }
        ]
        return {
            "nodes": nodes,
            "node_id": self.node_id,
            "address": self.address,
            "total": total,
            "available": available,
            "object_store_memory": self.capacity,
            "object_store_used": self.store.usage.used,
            "pending": [
                {"what": what, "feasible": feasible} for what, feasible in self.scheduler.pending()
            ],
            "workers": len(self.workers),
            "actors": sum(1 for a in self.actors.values() if a.state != "dead"),
            "describe": describe(shape_of(total)),
        }


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str]) -> None:
    proctitle.show("ember::node")
    config = read_config()
    node = NodeManager(config)
    # Before anything else: a stop that comes while the node is still starting must also
    # clean up (the loop runs the queued shutdown as soon as it starts).
    signal.signal(signal.SIGTERM, lambda *_: node.reactor.call_soon(node.shutdown))
    node.start()
    node.run()


if __name__ == "__main__":
    main(sys.argv[1:])
