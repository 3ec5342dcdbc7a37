"""The Ember client inside every driver and worker process: objects, tasks, actors.

Theory of operation
-------------------
The client owns a reactor thread that reads every socket of the process. Calls from user
threads (``submit_task``, ``get``, ``put``...) change the client's tables under one lock and
write to sockets directly; answers come back on the reactor thread, which updates the tables
and wakes waiters. Nothing is deserialized and no user code runs under the lock.

The client is composed of three parts that share its lock and connections: an
``ObjectTable``, a ``TaskSubmitter`` and an ``ActorCaller``.

Objects: the process that makes an object (by ``put`` or by submitting the task that returns
it) owns it and keeps its state in its object table. Small values live inline in that table;
values over ``INLINE_MAX`` live in the node's shared-memory store. A process that receives a
ref it does not own (a borrower) fetches the value through the store or the node manager.

Tasks: submitted tasks wait for their top-level ObjectRef arguments, then queue per resource
shape. For each shape the client leases workers from the node manager and pushes tasks straight
to them, one in flight per lease; a lease stays with the client briefly after its queue drains
so that a loop of submit-and-get reuses it, and goes back at once if the node revokes it.

Actors: calls queue per actor in submission order and go straight to the actor's process once
the node manager says where it lives; if that process dies, the calls are retried or failed
according to ``max_task_retries`` while the node restarts the actor or declares it dead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack

from ember import exceptions as exc
from ember._core import error_types, task_events
from ember._protocol import messages as m
from ember._runtime import metrics, serialization, task_context
from ember._runtime.client.actor_caller import ActorCaller
from ember._runtime.client.generator_streams import GeneratorStreams
from ember._runtime.client.object_table import ObjectTable
from ember._runtime.client.task_submitter import TaskSubmitter
from ember._runtime.launch.process_config import setting
from ember._transport.reactor import Connection, OnMessage, Reactor
from ember._transport.rpc import Calls, RemoteError, refuse

if TYPE_CHECKING:
    from ember._runtime.object_store.remote_store import RemoteStore

_DEC_FLUSH_SECONDS = 0.05
_CONTROL_START_SECONDS = 10.0  # how long a new process waits for the control store
# A leaving driver's tasks still running get this long to finish (and print), as they do in
# Ray's slower shutdown; then its nodes get this long to pass on what their workers printed.
_EXIT_GRACE_SECONDS = 0.5
_FLUSH_OUTPUT_SECONDS = 2.0
_METRICS_SECONDS = 1.0  # how often user metrics that changed go to the node


class CoreClient:
    """One per process; see the module docstring."""

    def __init__(
        self,
        *,
        kind: str,
        node_address: str,
        control_address: str,
        shm_dir: str,
        spill_dir: str,
        client_id: bytes,
        job_id: bytes,
        namespace: str,
        node_id: bytes,
        log_to_driver: bool = False,
        listen_address: str | None = None,
        reactor: Reactor | None = None,
        extra_handler: OnMessage[None] | None = None,
        token: str | None = None,
        store: RemoteStore | None = None,
    ) -> None:
        """``shm_dir``, ``spill_dir``: the node's store (a worker learns them from its node
        later); ``store``: the head node's, in client mode, instead."""
        self.kind = kind
        self.log_to_driver = log_to_driver
        self.client_id = client_id
        self.job_id = job_id
        self.namespace = namespace
        self.node_id = node_id
        self.calls = Calls()
        self.lock = threading.RLock()  # the client's tables, all parts' (see ObjectTable)
        self._peers: dict[str, Connection[str]] = {}  # (``peer``: the address)
        self._nodes: dict[bytes, Connection[None]] = {}  # other nodes, for spilled lease requests
        self.token = token  # the cluster's, for TCP connections
        # What this process exported, sent again to a control store that restarted (one
        # killed before it stored an export would otherwise never have it).
        self._exported: dict[bytes, Callable[[], bytes]] = {}
        self.closed = False
        self.node_lost = False
        # Called around blocking waits by a worker, to lend its CPU back to the node.
        self.on_block: Callable[[], None] | None = None
        self.on_unblock: Callable[[], None] | None = None
        self.log_handler: Callable[[list[str], bool], None] | None = None
        self.extra_handler = extra_handler  # node messages for a worker, e.g. StartActor
        self.on_node_lost: Callable[[], None] | None = None
        self.runtime_env = ""  # the job's (a driver) or the env it serves (a worker)
        # The task events of the tasks this process owns, shipped to its node in batches.
        self.events = task_events.EventBuffer(
            int(
                setting(
                    None,
                    "task_events_max_num_status_events_buffer_on_worker",
                    task_events.MAX_BUFFERED_EVENTS,
                )
            )
        )
        self._events_interval = (
            setting(None, "task_events_report_interval_ms", task_events.REPORT_INTERVAL_MS) / 1000
        )
        self.objects = ObjectTable(self, shm_dir, spill_dir, store)
        self.store = self.objects.store
        self.tasks = TaskSubmitter(self, self.objects)
        self.actors = ActorCaller(self, self.objects, self.tasks)
        self.streams = GeneratorStreams(self, self.objects)
        # The calls the API makes, bound here once: a call per ref or task through a method
        # that only passes it on would cost on the hot path.
        self.add_local_ref = self.objects.add_local_ref
        self.remove_local_ref = self.objects.remove_local_ref
        self.ref_serialized = self.objects.ref_serialized
        self.add_actor_ref = self.objects.add_actor_ref
        self.actor_ref_serialized = self.objects.actor_ref_serialized
        self.put = self.objects.put
        self.get = self.objects.get
        self.wait = self.objects.wait
        self.future_of = self.objects.future_of
        self.read_stored = self.objects.read_stored
        self.interrupt_wait = self.objects.interrupt_wait
        self.submit_task = self.tasks.submit_task
        self._on_task_done = self.tasks.on_task_done  # (for each result a worker sends)
        self.cancel = self.tasks.cancel
        self.stream_next = self.streams.next
        self.stream_peek = self.streams.peek
        self.stream_drop = self.streams.drop
        self.cancel_children = self.tasks.cancel_children
        self.create_actor = self.actors.create_actor
        self.submit_actor_task = self.actors.submit_actor_task
        self.kill_actor = self.actors.kill_actor
        self.actor_handle_meta = self.actors.actor_handle_meta
        self.named_actors = self.actors.named_actors
        self._own_reactor = reactor is None
        self.reactor = reactor or Reactor("ember-client")
        if self._own_reactor:
            self.reactor.start()
        self.node = self.reactor.connect(
            node_address,
            self._on_node_message,
            self._on_node_lost,
            token=self._token_for(node_address),
        )
        self.control_address = control_address
        self._control_lock = threading.Lock()
        self.control = self._connect_control_at_start()
        self._announce_job(self.control)
        # Not awaited here: init() returns while the node finishes booting; the first thing
        # that needs the answer waits for it.
        self._hello = self.calls.future(
            self.node,
            lambda rid: m.Hello(
                rid=rid,
                kind=kind,
                client_id=client_id,
                pid=os.getpid(),
                job_id=job_id,
                listen_addr=listen_address,
                log_to_driver=log_to_driver,
            ),
        )
        self.reactor.call_later(_DEC_FLUSH_SECONDS, self._periodic)
        self.reactor.call_later(self._events_interval, self._ship_events)

        self.reactor.call_later(_METRICS_SECONDS, self._report_metrics_periodically)

    @property
    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = self._hello.result(timeout=30)
        return info

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        if self.kind == "driver" and self.log_to_driver and not self.closed:
            self._flush_output()
        if not self.closed:
            self.flush_events()
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.objects.drain_decs()
            self.objects.wake_all()
        self.report_metrics()
        with metrics.lock:  # (a later session starts from zero)
            metrics.buffer.clear()
        for conn in [self.node, self.control, *self._peers.values(), *self._nodes.values()]:
            conn.close()
        if self._own_reactor:
            self.reactor.stop()

    def _flush_output(self) -> None:
        """Before a driver leaves, what its tasks printed must reach it: the lines come
        through the nodes, after the results that came straight from the workers. Tasks still
        running get a moment to finish; then every node this driver used passes on what its
        workers printed before it answers (a bounded wait: exit never hangs on it)."""
        deadline = time.monotonic() + _EXIT_GRACE_SECONDS
        while self.tasks.pending() and not self.node_lost and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            nodes = [c for c in [self.node, *self._nodes.values()] if not c.closed]
        flushed = [self.calls.future(c, lambda rid: m.FlushOutput(rid=rid)) for c in nodes]
        deadline = time.monotonic() + _FLUSH_OUTPUT_SECONDS
        for done in flushed:
            with contextlib.suppress(Exception):  # a node gone meanwhile has nothing to pass on
                done.result(timeout=max(0.0, deadline - time.monotonic()))

    def _periodic(self) -> None:
        if self.closed:
            return
        with self.lock:
            self.objects.drain_decs()
            self.streams.drain_drops()
            self.tasks.expire_idle_leases()
            self.objects.drop_idle_wait_index(time.monotonic())
        self.objects.pool_dropped()
        self.store.tidy()
        self.reactor.call_later(_DEC_FLUSH_SECONDS, self._periodic)

    def _ship_events(self) -> None:
        if self.closed:
            return
        self.flush_events()
        self.reactor.call_later(self._events_interval, self._ship_events)

    def flush_events(self) -> None:
        """Send the task events recorded since the last batch to this process's node."""
        with self.lock:
            events, dropped = self.events.drain()
        if (events or dropped) and not self.node.closed:
            packed = msgpack.packb(task_events.to_wire(events, _error_info))
            self.node.send(m.TaskEvents(events=packed, dropped=dropped))

    def report_metrics(self) -> None:
        """Send the node the user metrics that changed since the last report."""
        if not self.node.closed:
            metrics.report(self.node.send)

    def _report_metrics_periodically(self) -> None:
        if not self.closed:
            self.report_metrics()
            self.reactor.call_later(_METRICS_SECONDS, self._report_metrics_periodically)

    def peer(self, addr: str, node: bytes = b"") -> Connection[str]:
        """The connection to a worker or actor at ``addr`` (on ``node``), opened if need be."""
        conn = self._peers.get(addr)
        if conn is None or conn.closed:
            conn = self.reactor.connect(
                addr, self._on_peer_message, self._on_peer_lost, token=self._token_for(addr)
            )
            conn.peer = addr
            if node != self.node_id:
                conn.node = node
            self._peers[addr] = conn
        return conn

    def _token_for(self, addr: str) -> str | None:
        return self.token if addr.startswith("tcp:") else None

    def remote_node(self, node_id: bytes, addr: str) -> Connection:
        """A connection to another node's manager (spilled lease requests go there)."""
        conn = self._nodes.get(node_id)
        if conn is None or conn.closed:
            conn = self.reactor.connect(
                addr,
                self._on_node_message,
                self._on_remote_node_lost,
                timeout=2.0,
                token=self.token,
            )
            conn.node = node_id
            self._nodes[node_id] = conn
            kind = "driver" if self.kind == "driver" else "caller"
            conn.send(
                m.Hello(
                    rid=0,
                    kind=kind,
                    client_id=self.client_id,
                    pid=os.getpid(),
                    job_id=self.job_id,
                    listen_addr=None,
                    log_to_driver=True,
                )
            )
        return conn

    # ------------------------------------------------------------------ connections

    def _on_node_message(self, conn: Connection[None], msg: m.Message) -> None:
        """From this process's node, another node, or the control store."""
        if isinstance(msg, m.Answer):
            self.calls.on_reply(msg)
        elif isinstance(msg, m.RevokeLease):
            self.tasks.on_revoke(msg.lease_id)
        elif isinstance(msg, m.LogLines):
            self.on_log_lines(msg.lines, msg.err)
        elif isinstance(msg, m.NodeDied):
            self._on_node_died(msg.node_id)
        elif self.extra_handler is not None:
            self.extra_handler(conn, msg)
        else:
            refuse(conn, msg, "a core client")

    def _on_peer_message(self, conn: Connection[str], msg: m.Message) -> None:
        """From a worker or actor this process pushes tasks to."""
        if isinstance(msg, m.TaskDone):
            self._on_task_done(msg)
        elif isinstance(msg, m.GeneratorItem):
            self.streams.on_item(conn, msg)
        elif isinstance(msg, m.Answer):
            self.calls.on_reply(msg)
        else:
            refuse(conn, msg, "a core client")

    def _on_control_lost(self, conn: Connection[None]) -> None:
        """The control store may restart (with Redis); the next request reconnects."""
        self.calls.on_close(conn)
        self.reactor.call_later(0.2, self._keep_reconnecting)

    def _on_remote_node_lost(self, conn: Connection[None]) -> None:
        """Another node this process leases workers from: losing it is not the end."""
        self.calls.on_close(conn)
        with self.lock:
            if self._nodes.get(conn.node) is conn:
                del self._nodes[conn.node]

    def _on_node_died(self, node_id: bytes) -> None:
        """Reactor thread: whatever this process has open to a dead node is gone."""
        # A lease there is gone too, even on a connection that has not noticed yet (no task
        # may be pushed to it meanwhile).
        with self.lock:
            self.objects.node_died(node_id)
            leased = [lease.peer for lease in self.tasks.leases_on(node_id)]
        for conn in [*self._peers.values(), *self._nodes.values(), *leased]:
            if conn.node == node_id or conn in leased:
                conn.close()

    def _on_peer_lost(self, conn: Connection[str]) -> None:
        """Reactor thread: a worker or actor this process pushed to is gone."""
        self.calls.on_close(conn)
        with self.lock:
            if conn.peer is not None:
                self._peers.pop(conn.peer, None)
            self.tasks.peer_lost(conn)
            self.actors.peer_lost(conn)

    def _on_node_lost(self, conn: Connection[None]) -> None:
        self.calls.on_close(conn)
        if self.closed:
            return
        self.node_lost = True
        if self.on_node_lost is not None:
            self.on_node_lost()
        with self.lock:
            self.objects.wake_all()
            err = exc.LocalRayletDiedError("the Ember node manager died; the session is over")
            self.tasks.fail_all(err)
            self.objects.fail_pending(err)

    def check_open(self) -> None:
        """Raise if this client can no longer wait for anything."""
        if self.node_lost:
            raise exc.LocalRayletDiedError(
                "the Ember node manager this process was connected to has died"
            )
        if self.closed:
            raise exc.RaySystemError("ember.shutdown() was called while this waited")

    def current_namespace(self) -> str:
        """The namespace of the job the running code belongs to."""
        ctx = task_context.current.get()
        return ctx.namespace if ctx is not None and ctx.namespace else self.namespace

    def current_job(self) -> bytes:
        ctx = task_context.current.get()
        return ctx.job_id if ctx is not None and ctx.job_id else self.job_id

    # ------------------------------------------------------------------ functions

    def export_function(self, fn_id: bytes, data: Callable[[], bytes], obj: Any = None) -> None:
        if fn_id in self._exported:
            return
        self._exported[fn_id] = data
        self._control().send(m.ExportFunction(fn_id=fn_id, data=data()))

    def fetch_function(self, fn_id: bytes) -> bytes:
        return self.control_request(lambda rid: m.FetchFunction(rid=rid, fn_id=fn_id))  # type: ignore[no-any-return]

    def _control(self, timeout: float = 60.0) -> Connection:
        """The connection to the control store, opened again if it restarted."""
        deadline = time.monotonic() + timeout
        while not self._reconnect_control():
            if time.monotonic() > deadline:
                raise ConnectionError(f"the control store at {self.control_address} is down")
            time.sleep(0.1)
        return self.control

    def _connect_control_at_start(self) -> Connection:
        """The first connection to the control store; one that is being started again (by
        a head started with ``--storage``) listens within a second or two."""
        deadline = time.monotonic() + _CONTROL_START_SECONDS
        while True:
            try:
                return self.reactor.connect(
                    self.control_address,
                    self._on_node_message,
                    self._on_control_lost,
                    token=self.token,
                )
            except ConnectionRefusedError:  # (a wrong address fails at once)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _reconnect_control(self) -> bool:
        """One attempt to reconnect to the control store (from any thread); True when
        connected. A reconnect exports this process's functions again."""
        with self._control_lock:
            if not self.control.closed or self.closed:
                return True
            try:
                conn = self.reactor.connect(
                    self.control_address,
                    self._on_node_message,
                    self._on_control_lost,
                    token=self.token,
                    timeout=2.0,
                )
            except OSError:
                return False
            for fn_id, data in list(self._exported.items()):
                conn.send(m.ExportFunction(fn_id=fn_id, data=data()))
            self._announce_job(conn)
            self.control = conn
            return True

    def _announce_job(self, conn: Connection) -> None:
        if self.kind == "driver":
            conn.send(
                m.JobStarted(
                    job_id=self.job_id,
                    namespace=self.namespace,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                )
            )

    def _keep_reconnecting(self) -> None:
        """Reactor thread: a restarted control store must get this process's exports even if
        nothing here asks it anything."""
        if not self._reconnect_control():
            self.reactor.call_later(0.2, self._keep_reconnecting)

    def control_request(self, make: Callable[[int], m.Message], timeout: float = 60.0) -> Any:
        """Ask the control store, again if it restarts before it answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.calls.future(self._control(timeout), make).result(
                    timeout=max(0.1, deadline - time.monotonic())
                )
            except RemoteError as e:
                if e.kind is not m.ErrorKind.CONNECTION_LOST or time.monotonic() > deadline:
                    raise

    # ------------------------------------------------------------------ misc

    def cluster_info(self) -> dict[str, Any]:
        """The nodes and their resources. This process's idle leases go back first: its
        own node hears of that before the question (on the same connection), so what its
        finished tasks held there counts as free; other nodes report theirs to the control
        store within a heartbeat of the change (0.1 s)."""
        with self.lock:
            self.tasks.return_idle_leases()
        try:
            asked = self.calls.future(self.node, lambda rid: m.ClusterInfo(rid=rid))
            info: dict[str, Any] = asked.result(timeout=30)
            return info
        except RemoteError as e:
            if e.kind is m.ErrorKind.CONNECTION_LOST:
                raise exc.LocalRayletDiedError(
                    "the Ember node manager this process used has died"
                ) from None
            raise

    def this_node(self) -> dict[str, Any]:
        """What this process's node said of itself when this process connected."""
        info = self.info
        return {
            "node_id": self.node_id,
            "host": info["host"],
            "local_address": info["local_address"],
            "labels": info["labels"],
        }

    def on_log_lines(self, lines: list[str], err: bool = True) -> None:
        if self.log_handler is not None:
            self.log_handler(lines, err)
        else:
            sys.stderr.write("".join(line + "\n" for line in lines))
            sys.stderr.flush()


def _error_info(error: bytes | BaseException) -> tuple[str, str]:
    """Ray's error type of an error a task ended with, and its text (with the remote
    traceback, for a task's own exception)."""
    if isinstance(error, bytes):
        try:
            error = serialization.loads(error)
        except Exception:
            return "TASK_EXECUTION_EXCEPTION", "(the task's error could not be read here)"
    assert isinstance(error, BaseException)
    cause = getattr(error, "cause", None)
    kind = error_types.error_type(
        (c.__name__ for c in type(error).__mro__),
        (c.__name__ for c in type(cause).__mro__) if cause is not None else (),
    )
    return kind, str(error)
