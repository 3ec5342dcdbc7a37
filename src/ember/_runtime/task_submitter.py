"""The client's task submitter: dependencies, leases, direct pushes, results and retries."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ember import exceptions as exc
from ember._core import retry
from ember._core.resources import Shape, shape_dict
from ember._protocol import ids
from ember._protocol import messages as m
from ember._protocol.messages import ERROR, INLINE, STORED
from ember._runtime import serialization, task_context
from ember._runtime.client_state import (
    _EMPTY_ARGS,
    IDLE_LEASE_SECONDS,
    MAX_LEASE_REQUESTS,
    PIPELINE_DEPTH,
    _cause,
    _Key,
    _Lease,
    _Obj,
    _placeholder,
    _Task,
)
from ember._runtime.object_ref import ObjectRef
from ember._transport.reactor import Connection

if TYPE_CHECKING:
    from ember._runtime.core_client import CoreClient
    from ember._runtime.object_table import ObjectTable

# A task whose stored arguments on one other node add up to this much prefers to run there.
LOCALITY_MIN_BYTES = 1 << 20


def _key_id(task: _Task) -> Any:
    """Tasks share leases when they have the same shape and the same placement."""
    strategy = task.strategy
    return task.shape, tuple(strategy) if isinstance(strategy, list) else strategy


class TaskSubmitter:
    """Tasks this process submitted and has no result for yet (actor calls included), and
    the leases that run the ones that are not actor calls.

    Shares the client's lock: methods named "under lock" expect the caller to hold it."""

    def __init__(self, client: CoreClient, objects: ObjectTable) -> None:
        self._client = client
        self._lock = client.lock
        self._objects = objects
        self._tasks: dict[bytes, _Task] = {}  # submitted, not finished; by task id
        self._keys: dict[Any, _Key] = {}
        self._leases: dict[int, _Lease] = {}

    def pending(self) -> bool:
        return bool(self._tasks)

    def is_pending(self, task_id: bytes) -> bool:
        return task_id in self._tasks

    def new_task(
        self,
        fn_id: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        num_returns: int,
        name: str,
    ) -> _Task:
        task = _Task()
        task.task_id = ids.new_task_id()
        ctx = task_context.current.get()
        task.parent = ctx.task_id if ctx is not None else b""
        # (Read now, on the submitting thread: a task may be pushed later from the reactor's.)
        task.job = self._client.current_job()
        task.namespace = self._client.current_namespace()
        task.fn_id = fn_id
        task.num_returns = num_returns
        task.name = name
        dep_refs: list[ObjectRef] = []
        if ObjectRef in map(type, args) or (kwargs and ObjectRef in map(type, kwargs.values())):
            args = tuple(_placeholder(a, dep_refs) for a in args)
            kwargs = {k: _placeholder(v, dep_refs) for k, v in kwargs.items()}
        task.dep_refs = dep_refs
        task.return_ids = [ids.return_object_id(task.task_id, i + 1) for i in range(num_returns)]
        if not kwargs and serialization.plain(args):  # the common case, without the machinery
            blob = serialization.dump_plain((args, kwargs))
            if len(blob) <= serialization.INLINE_MAX:
                task.blob = blob
                task.pins = dep_refs
                return task
        ser = serialization.serialize((args, kwargs)) if args or kwargs else _EMPTY_ARGS
        # Refs nested in the arguments stay alive until the task is done with them.
        pins: list[Any] = [*dep_refs, *(ObjectRef(i, o, self._client) for i, o in ser.refs)]
        if ser.nbytes > serialization.INLINE_MAX:
            ref = self._objects.put_serialized(ser)
            task.args_ref = ref._id
            task.blob = b""
            pins.append(ref)
        else:
            task.blob = ser.inline()
        task.pins = pins
        return task

    def register(self, task: _Task) -> list[ObjectRef]:
        """Under lock: register the task's return objects and make their refs."""
        refs = []
        client = self._client
        for oid in task.return_ids:
            self._objects.add_pending(oid)
            refs.append(ObjectRef(oid, client.client_id, client))
        self._tasks[task.task_id] = task
        return refs

    def submit_task(
        self,
        fn_id: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        num_returns: int,
        name: str,
        shape: Shape,
        max_retries: int,
        retry_exceptions: Any,
        strategy: Any = None,
    ) -> list[ObjectRef]:
        task = self.new_task(fn_id, args, kwargs, num_returns, name)
        task.shape = shape
        task.strategy = strategy
        task.retries_left = max_retries
        task.retry_exceptions = retry_exceptions
        with self._lock:
            self._objects.drain_decs()
            refs = self.register(task)
            self.resolve_deps(task, self._enqueue)
        self._objects.pool_dropped()
        return refs

    def resolve_deps(self, task: _Task, then: Callable[[_Task], None]) -> None:
        """Under lock: call ``then(task)`` once every top-level ref argument is ready."""
        if not task.dep_refs:
            task.ready = True
            then(task)
            return
        for ref in task.dep_refs:
            dep = self._objects.lost(ref._id)
            if dep is not None:
                self.rerun(dep)  # lost with its node: made again first, if it can be
        task.missing = len(task.dep_refs)

        def one_ready() -> None:
            task.missing -= 1
            if task.missing == 0:
                self._deps_ready(task, then)

        for ref in task.dep_refs:
            self._objects.on_ready(self._objects.entry_for(ref), one_ready)

    def _deps_ready(self, task: _Task, then: Callable[[_Task], None]) -> None:
        deps = []
        biggest = LOCALITY_MIN_BYTES
        for ref in task.dep_refs:
            obj = self._objects.entry(ref._id)
            assert obj is not None  # (held by the task's pins)
            if obj.where and obj.kind == STORED and obj.data >= biggest and task.actor is None:
                # Large arguments on another node: prefer running there, if it has room.
                biggest = obj.data
                if task.strategy is None or task.strategy[0] == "locality":
                    task.strategy = ["locality", obj.where]
            if obj.kind == ERROR:
                task.ready = True
                if task.on_error is not None:
                    task.on_error(obj.data)
                self.finish(task, [[ERROR, obj.data]] * max(1, task.num_returns))
                if task.actor is not None:
                    self._client.actors.flush(task.actor)
                return
            if obj.kind == STORED:
                obj.shared = True  # the worker's hold on it may reach the node after our free
                deps.append([STORED, ref._id])
            else:
                deps.append([INLINE, obj.data])
        task.deps = deps
        task.ready = True
        if not task.cancelled:
            then(task)

    def _enqueue(self, task: _Task) -> None:
        key_id = _key_id(task)
        key = self._keys.get(key_id)
        if key is None:
            key = self._keys[key_id] = _Key(task.shape, task.strategy)
            key.describe = task.name
        key.job = task.job
        key.queue.append(task)
        self._pump(key)

    def _pump(self, key: _Key) -> None:
        """Under lock: push queued tasks to free leases (or take back, for a free lease, a
        task waiting behind another), and ask for or give back leases."""
        # SPREAD: one task per lease, so that every task is placed on its own.
        spread = key.strategy == "SPREAD"
        queue = key.queue
        if queue:
            depth = PIPELINE_DEPTH if key.saturated and key.requests and not spread else 1
            for room in range(1, depth + 1):  # free leases first, then seconds on busy ones
                for lease in key.leases.values():
                    if len(lease.tasks) < room and not lease.revoked:
                        if spread and lease.spent or lease.conn.closed:
                            continue  # (a closed one is about to be handled as lost)
                        self._push(queue.popleft(), lease)
                        if not queue:
                            break
                if not queue:
                    break
        # Tasks queued behind another still want a worker of their own: a lease granted
        # later takes them back. (One pass over the leases: this runs for every task.)
        waiting = len(queue)
        behind = 0
        done: list[_Lease] = []
        for lease in key.leases.values():
            tasks = lease.tasks
            if len(tasks) > 1:
                for i in range(1, len(tasks)):
                    if not tasks[i].started:
                        behind += 1
            elif not tasks and (lease.revoked or spread and lease.spent):
                done.append(lease)
        for lease in done:
            self._return_lease(lease)
        if behind:
            waiting += behind
            if not queue:
                self._take_back(key)
        wanted = min(waiting, MAX_LEASE_REQUESTS) - len(key.requests)
        for _ in range(wanted):
            self._request_lease(key)
        if not waiting and key.requests:
            for rid, via in key.requests.items():
                via.send(m.CancelLeaseRequest(rid))
            key.requests.clear()

    def _take_back(self, key: _Key) -> None:
        """Under lock, with no task queued here: for each free lease, ask the worker of the
        oldest task waiting behind another on its lease to hand it back; unless it started
        meanwhile, it then runs on the free lease (``_took_back``)."""
        free = sum(1 for x in key.leases.values() if not x.tasks and not x.revoked)
        free -= len(key.taking_back)
        if free <= 0:
            return
        behind = sorted(
            ((task, lease) for lease in key.leases.values() for task in lease.tasks[1:]),
            key=lambda pair: pair[0].task_id,  # (ids count up in submission order)
        )
        asks: dict[_Lease, list[bytes]] = {}
        for task, lease in behind:
            if free <= 0:
                break
            if not task.started and task.task_id not in key.taking_back:
                asks.setdefault(lease, []).append(task.task_id)
                free -= 1
        for lease, task_ids in asks.items():
            key.taking_back.update(task_ids)
            self._client.calls.call(
                lease.conn,
                lambda rid, lease=lease, task_ids=task_ids: m.TakeBackTasks(
                    rid, lease.lease_id, task_ids
                ),
                lambda reply, lease=lease, task_ids=task_ids: self._took_back(
                    key, lease, task_ids, reply
                ),
            )

    def _took_back(self, key: _Key, lease: _Lease, asked: list[bytes], reply: m.Reply) -> None:
        """Reactor thread: the worker answered a take-back with the tasks it handed back."""
        with self._lock:
            key.taking_back.difference_update(asked)
            answered = reply.error is None  # (else the worker is gone: its tasks are redone)
            back = set(reply.value or ()) if answered else set()
            returned = []
            # (The task ahead may have finished meanwhile: a task handed back can be first.)
            for task in lease.tasks:
                if task.task_id in back:
                    returned.append(task)
                elif answered and task.task_id in asked:
                    task.started = True
            for task in returned:
                lease.tasks.remove(task)
                task.lease = None
                task.conn = None
            if not lease.tasks:
                lease.idle_since = time.monotonic()
            for task in reversed(returned):
                if task.cancelled:
                    self.fail(task, exc.TaskCancelledError(task.task_id.hex()))
                else:
                    key.queue.appendleft(task)
            self._pump(key)

    def _request_lease(self, key: _Key) -> None:
        # Idle leases of other shapes would only hold resources this request may need.
        for lease in [x for x in self._leases.values() if not x.tasks and x.key is not key]:
            self._return_lease(lease)
        self._ask_lease(key, self._client.node, False)

    def _ask_lease(self, key: _Key, via: Connection, spilled: bool) -> None:
        rid = self._client.calls.call(
            via,
            lambda rid: m.RequestLease(
                rid,
                shape_dict(key.shape),
                self._client.client_id,
                key.describe,
                key.strategy,
                spilled,
                job_id=key.job,
            ),
            lambda reply: self._on_lease(key, reply, via),
        )
        key.requests[rid] = via

    def _on_lease(self, key: _Key, reply: m.Reply, via: Connection) -> None:
        if reply.error is not None:
            with self._lock:
                key.requests.pop(reply.rid, None)
                kind, text = reply.error
                if kind == "WorkerStartFailed":
                    while key.queue:
                        self.fail(key.queue.popleft(), exc.RaySystemError(text))
                elif kind == "Unschedulable":
                    while key.queue:
                        self.fail(key.queue.popleft(), exc.TaskUnschedulableError(text))
                elif not self._client.node.closed:  # another node asked went away: ask again
                    self._pump(key)
            return
        grant = reply.value
        if "spill" in grant:  # that node has no room: ask the one it names
            with self._lock:
                if key.requests.pop(reply.rid, None) is None or self._client.closed:
                    return
                try:
                    self._ask_lease(
                        key, self._client.remote_node(grant["spill"], grant["address"]), True
                    )
                except OSError:
                    self._pump(key)
            return
        try:
            conn = self._client.peer(grant["addr"], grant["node"])
        except OSError:
            via.send(m.ReturnLease(grant["lease_id"], True))
            with self._lock:
                key.requests.pop(reply.rid, None)
                self._pump(key)
            return
        with self._lock:
            lease = _Lease(grant["lease_id"], grant["worker_id"], conn, grant["gpu_ids"])
            lease.key = key
            lease.node_conn = via
            # Only CPU-only leases carry a second task: only they let it start when the first
            # blocks (a GPU, custom resource or memory stays with the blocked task).
            key.saturated = grant["saturated"] and set(key.resources) <= {"CPU"}
            if reply.rid not in key.requests or self._client.closed:
                via.send(m.ReturnLease(lease.lease_id))
                return
            key.requests.pop(reply.rid, None)
            key.leases[lease.lease_id] = lease
            self._leases[lease.lease_id] = lease
            self._pump(key)

    def _push(self, task: _Task, lease: _Lease) -> None:
        lease.spent = True
        task.started = False  # (not known to run here yet, whatever happened elsewhere)
        lease.tasks.append(task)
        task.lease = lease
        task.conn = lease.conn
        key = lease.key
        lease.conn.send(
            self.push_message(
                task, lease.lease_id, lease.gpu_ids, b"", key.resources if key else None
            )
        )

    def push_message(
        self,
        task: _Task,
        lease_id: int,
        gpu_ids: list[int],
        actor_id: bytes,
        resources: dict[str, float] | None,
    ) -> m.PushTask:
        return m.PushTask(
            task.task_id,
            task.fn_id,
            task.blob,
            task.deps,
            task.num_returns,
            task.name,
            self._client.client_id,
            lease_id,
            gpu_ids,
            actor_id,
            task.job,
            task.namespace,
            task.args_ref,
            resources,
        )

    def _return_lease(self, lease: _Lease, failed: bool = False) -> None:
        key = lease.key
        if key is not None:
            key.leases.pop(lease.lease_id, None)
        self._leases.pop(lease.lease_id, None)
        if not self._client.closed:
            (lease.node_conn or self._client.node).send(m.ReturnLease(lease.lease_id, failed))

    def leases_on(self, node_id: bytes) -> list[_Lease]:
        """Under lock: the leases of workers on that node (worker ids start with its tag)."""
        return [x for x in self._leases.values() if x.worker_id[:4] == node_id[:4]]

    def return_idle_leases(self) -> None:
        """Under lock: what the leases without a task hold is free again at their node."""
        for lease in [x for x in self._leases.values() if not x.tasks]:
            self._return_lease(lease)

    def expire_idle_leases(self) -> None:
        now = time.monotonic()
        for lease in list(self._leases.values()):
            if not lease.tasks and now - lease.idle_since > IDLE_LEASE_SECONDS:
                self._return_lease(lease)

    def on_revoke(self, lease_id: int) -> None:
        with self._lock:
            lease = self._leases.get(lease_id)
            if lease is None:
                return
            lease.revoked = True
            if not lease.tasks:
                self._return_lease(lease)

    # ------------------------------------------------------------------ results

    def on_task_done(self, msg: m.TaskDone) -> None:
        with self._lock:
            task = self._tasks.get(msg.task_id)
            if task is None:
                return
            results = msg.results
            lost = self._lost_argument(task, results)
            if lost is not None and (not lost.ready or self.rerun(lost)):
                # It failed for want of an argument that is being made again: run it once
                # that is ready (its own retries are not used: the fault was not its own).
                self._detach(task)
                self.resolve_deps(task, self._enqueue)
                return
            if (
                results
                and results[0][0] == ERROR
                and task.retries_left != 0
                and not task.cancelled
                and retry.should_retry_error(task.retry_exceptions, lambda: _cause(results[0][1]))
            ):
                self._detach(task)
                self.retry(task)
                return
            self._detach(task)
            self.finish(task, results)

    def _lost_argument(self, task: _Task, results: list[list[Any]]) -> _Obj | None:
        """Under lock: the argument this process owns whose loss made the task fail, if
        that is how it failed."""
        if task.actor is not None or not results or results[0][0] != ERROR:
            return None
        cause = _cause(results[0][1])
        if not isinstance(cause, exc.ObjectLostError):
            return None
        for ref in task.dep_refs:
            if ref._id.hex() == cause.object_ref_hex:
                dep = self._objects.entry(ref._id)
                return dep if dep is not None and dep.owned else None
        return None

    def _detach(self, task: _Task) -> None:
        """Under lock: the task no longer occupies its lease or actor slot."""
        lease = task.lease
        if lease is not None:
            task.lease = None
            if task in lease.tasks:
                lease.tasks.remove(task)
            if not lease.tasks:
                lease.idle_since = time.monotonic()
            if lease.key is not None:
                self._pump(lease.key)
        if task.actor is not None:
            self._client.actors.call_ended(task)

    def retry(self, task: _Task) -> None:
        if task.retries_left > 0:
            task.retries_left -= 1
        if task.actor is not None:
            self._client.actors.retry(task)
        else:
            self._enqueue(task)

    def finish(self, task: _Task, results: list[list[Any]]) -> None:
        """Under lock: record the task's return values and wake whoever waits for them."""
        self._tasks.pop(task.task_id, None)
        if len(results) != len(task.return_ids):
            err = exc.RayTaskError(
                task.name,
                "",
                ValueError(
                    f"Task {task.name!r} declared num_returns={len(task.return_ids)} but "
                    f"returned {len(results)} values."
                ),
            )
            results = [[ERROR, serialization.dumps(err)]] * len(task.return_ids)
        lineage = task if task.actor is None and task.retries_left != 0 else None
        if not self._objects.store_returns(task.return_ids, results, lineage):
            task.pins = []  # (a task kept as lineage keeps its arguments alive)

    def fail(self, task: _Task, error: BaseException) -> None:
        self.finish(task, [[ERROR, serialization.dumps(error)]] * task.num_returns)

    def peer_lost(self, conn: Connection) -> None:
        """Under lock: the connection to a worker closed; the tasks pushed to it are lost."""
        for lease in [x for x in self._leases.values() if x.conn is conn]:
            lost, lease.tasks = lease.tasks, []
            self._return_lease(lease, failed=True)
            for i, task in enumerate(lost):
                task.lease = None
                if i == 0 or task.started:
                    self._task_lost(task, lease)
                else:  # queued behind the first: it most likely never ran; no retry used
                    self._enqueue(task)
            if lease.key is not None:
                self._pump(lease.key)

    def _task_lost(self, task: _Task, lease: _Lease) -> None:
        if task.cancelled:
            self.fail(task, exc.TaskCancelledError(task.task_id.hex()))
        elif task.retries_left != 0:
            self.retry(task)
        else:
            self._worker_crashed(task, lease)

    def _worker_crashed(self, task: _Task, lease: _Lease) -> None:
        """Under lock: fail a task whose worker died, once the node that leased it says how
        the process ended (it may see the end after this process did)."""

        def answered(reply: m.Reply) -> None:
            end = reply.value if reply.error is None and reply.value else {}
            error = exc.WorkerCrashedError(
                task_name=task.name,
                pid=end.get("pid"),
                exit_code=end.get("code"),
                log_path=end.get("log"),
                log_note=end.get("log_note"),
            )
            with self._lock:
                if self._tasks.get(task.task_id) is task:  # (not cancelled meanwhile)
                    self.fail(task, error)

        node = lease.node_conn or self._client.node
        if node.closed:
            answered(m.Reply(0, ["ConnectionLost", "its node is gone"]))
        else:
            self._client.calls.call(node, lambda rid: m.WorkerExit(rid, lease.worker_id), answered)

    def rerun(self, obj: _Obj) -> bool:
        """Under lock: run the task that made ``obj`` again, once its arguments are ready
        (those lost too are made again first: see ``resolve_deps``; the chain is walked
        through ``ObjectTable.fire``'s queue, not by recursion, however long it is)."""
        task = obj.lineage
        if task is None or task.retries_left == 0 or task.cancelled or self._client.closed:
            return False
        if task.retries_left > 0:
            task.retries_left -= 1
        if obj.where:
            # Its copy there could not be had: that node is likely dying, before anyone has
            # said so. Put no task on the leases held there (each loss would use a retry).
            for lease in self.leases_on(obj.where):
                lease.revoked = True
                if not lease.tasks:
                    self._return_lease(lease)
        self._objects.unready(task.return_ids, task)
        self._tasks[task.task_id] = task
        task.lease = None
        self._objects.fire([lambda: self.resolve_deps(task, self._enqueue)])
        return True

    def fail_all(self, error: BaseException) -> None:
        """Under lock: the node is lost; no task will finish."""
        for task in list(self._tasks.values()):
            self.fail(task, error)

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool = True) -> None:
        self._cancel_task(ids.task_of(ref._id), force, recursive)

    def cancel_children(self, parent_id: bytes, force: bool) -> None:
        """The task ``parent_id`` (running here) was cancelled: cancel what it submitted."""
        with self._lock:
            children = [t.task_id for t in self._tasks.values() if t.parent == parent_id]
        for child in children:
            self._cancel_task(child, force, True)

    def _cancel_task(self, task_id: bytes, force: bool, recursive: bool) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return
            if force and task.actor is not None:
                raise ValueError(
                    "force=True is not supported for actor tasks; use ember.kill(actor) to "
                    "end the actor, or cancel without force."
                )
            task.cancelled = True
            if task.actor is None and task.lease is None:
                key = self._keys.get(_key_id(task))
                if key is not None and task in key.queue:
                    key.queue.remove(task)
                self.fail(task, exc.TaskCancelledError(task_id.hex()))
                return
            if task.actor is not None and self._client.actors.withdraw(task):
                self.fail(task, exc.TaskCancelledError(task_id.hex()))
                return
            conn = task.conn
        if conn is not None:
            conn.send(m.CancelTask(task_id, force, recursive))
            lease = task.lease
            if force and lease is not None and lease.tasks and lease.tasks[0] is task:
                # Only the running task is killed with its worker; one queued behind it on the
                # lease is skipped by the worker when its turn comes.
                (lease.node_conn or self._client.node).send(m.KillWorker(lease.worker_id))
