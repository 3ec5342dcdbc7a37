"""The client's task submitter: dependencies, direct pushes and results; the lease and retry
decisions are ``_core.task_leases``'s, carried out here."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ember import exceptions as exc
from ember._core.placement_groups import in_group
from ember._core.resources import Shape
from ember._core.task_events import (
    ACTOR_TASK,
    ARGS_READY,
    ENDED,
    NORMAL_TASK,
    PUSHED,
    RAN,
    STARTED,
    SUBMITTED,
)
from ember._core.task_leases import (
    Action,
    AskLease,
    CancelAsk,
    Fail,
    Finish,
    Key,
    Lease,
    Push,
    RetryLater,
    ReturnLease,
    RunAgain,
    SendCancel,
    TakeBack,
    Task,
    TaskLeases,
    WorkerCrashed,
)
from ember._protocol import ids
from ember._protocol import messages as m
from ember._protocol.messages import ERROR
from ember._runtime import serialization, task_context
from ember._runtime.client.records import (
    _EMPTY_ARGS,
    _cause,
    _Obj,
    _placeholder,
    _retryable,
    _Task,
)
from ember._runtime.launch.process_config import setting
from ember._runtime.object_ref import ObjectRef
from ember._transport.reactor import Connection

if TYPE_CHECKING:
    from ember._runtime.client.core_client import CoreClient
    from ember._runtime.client.object_table import ObjectTable

# A task whose stored arguments on one other node add up to this much prefers to run there.
LOCALITY_MIN_BYTES = 1 << 20
_PushTask = m.builder(m.PushTask)  # (once per task: see builder)


class TaskSubmitter:
    """Tasks this process submitted and has no result for yet (actor calls included), and
    the leases that run the ones that are not actor calls.

    Shares the client's lock: methods named "under lock" expect the caller to hold it."""

    def __init__(self, client: CoreClient, objects: ObjectTable) -> None:
        self._client = client
        self._lock = client.lock
        self._objects = objects
        self._tasks: dict[bytes, _Task] = {}  # submitted, not finished; by task id
        self._machine = TaskLeases(setting(None, "task_oom_retry_delay_base_ms", 1000) / 1000)
        # Runs of a task that the memory monitor killed (with max_retries != 0); -1: no limit.
        self._oom_retries = int(setting(None, "task_oom_retries", -1))
        self._asks: dict[int, tuple[int, Connection]] = {}  # lease requests: rid, node asked
        self.record = client.events.record  # a task event (under lock)

    def pending(self) -> bool:
        return bool(self._tasks)

    def new_task(
        self,
        fn_id: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        num_returns: int,
        name: str,
        task_events: bool = True,
    ) -> _Task:
        task = _Task()
        task.task_events = task_events
        task.ran = None
        task.task_id = ids.new_task_id()
        task.args_ref = b""
        task.deps = []
        task.handler = self
        task.actor = None
        ctx = task_context.current.get()
        task.parent = ctx.task_id if ctx is not None else b""
        # (Read now, on the submitting thread: a task may be pushed later from the reactor's.)
        task.job = self._client.current_job()
        task.namespace = self._client.current_namespace()
        task.fn_id = fn_id
        task.num_returns = num_returns
        task.backpressure = -1
        task.name = name
        task.concurrency_group = ""
        task.captures = False
        dep_refs: list[ObjectRef] = []
        if ObjectRef in map(type, args) or (kwargs and ObjectRef in map(type, kwargs.values())):
            args = tuple(_placeholder(a, dep_refs) for a in args)
            kwargs = {k: _placeholder(v, dep_refs) for k, v in kwargs.items()}
        task.dep_refs = dep_refs
        returns = num_returns if num_returns >= 0 else 1  # (a generator task's: when it ends)
        task.return_ids = [ids.return_object_id(task.task_id, i + 1) for i in range(returns)]
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

    def register(self, task: _Task, backpressure: int = -1) -> list[ObjectRef]:
        """Under lock: register the task's return objects and make their refs (and, for a
        generator task, the stream its items go to)."""
        client = self._client
        if task.num_returns < 0:
            task.backpressure = backpressure
            client.streams.open(task, backpressure)
        self._objects.add_pending(task.return_ids)
        if task.task_events:
            actor = task.actor
            self.record(
                (
                    SUBMITTED,
                    task.task_id,
                    time.time(),
                    NORMAL_TASK if actor is None else ACTOR_TASK,
                    task.name,
                    "" if actor is None else actor.class_name,
                    b"" if actor is None else actor.actor_id,
                    task.job,
                    task.parent,
                    task.shape if actor is None else (),
                    [ref._id for ref in task.dep_refs] if task.dep_refs else (),
                )
            )
        refs: list[ObjectRef[Any]] = [
            ObjectRef(oid, client.client_id, client) for oid in task.return_ids
        ]
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
        capture_child_tasks: bool = False,
        runtime_env: str = "",
        enable_task_events: bool = True,
        backpressure: int = -1,
    ) -> list[ObjectRef]:
        task = self.new_task(fn_id, args, kwargs, num_returns, name, enable_task_events)
        task.shape = shape
        task.strategy = strategy
        task.captures = capture_child_tasks
        task.runtime_env = runtime_env
        task.retries_left = max_retries
        task.retriable = max_retries != 0
        task.oom_retries_left = self._oom_retries if task.retriable else 0
        task.retry_exceptions = retry_exceptions
        with self._lock:
            self._objects.drain_decs()
            refs = self.register(task, backpressure)
            self.resolve_deps(task, self._enqueue, self._args_failed)
        self._objects.pool_dropped()
        return refs

    def resolve_deps(
        self,
        task: _Task,
        ready: Callable[[_Task, bytes], None],
        failed: Callable[[_Task, bytes], None],
    ) -> None:
        """Under lock: once every top-level ref argument is ready, call ``ready(task, near)``
        (``near``: the node that holds the largest of them, if large enough to prefer it, else
        b""), or ``failed(task, error)`` with the error one of them holds."""
        if not task.dep_refs:
            task.ready = True
            ready(task, b"")
            return
        for ref in task.dep_refs:
            dep = self._objects.lost(ref._id)
            if dep is not None:
                self.rerun(dep)  # lost with its node: made again first, if it can be
        task.missing = len(task.dep_refs)

        def one_ready() -> None:
            task.missing -= 1
            if task.missing == 0:
                self._deps_ready(task, ready, failed)

        for ref in task.dep_refs:
            self._objects.on_ready(self._objects.entry_for(ref), one_ready)

    def _deps_ready(
        self,
        task: _Task,
        ready: Callable[[_Task, bytes], None],
        failed: Callable[[_Task, bytes], None],
    ) -> None:
        deps = []
        near = b""
        biggest = LOCALITY_MIN_BYTES
        arg_for_task = self._objects.arg_for_task
        for ref in task.dep_refs:
            dep, where, size = arg_for_task(ref._id)
            if dep[0] == ERROR:
                task.ready = True
                failed(task, dep[1])
                return
            if size >= biggest:
                near, biggest = where, size
            deps.append(dep)
        task.deps = deps
        task.ready = True
        if task.task_events:
            self.record((ARGS_READY, task.task_id, time.time()))
        ready(task, near)

    def _enqueue(self, task: _Task, near: bytes) -> None:
        """``task``'s arguments are ready; the largest are on the node ``near``, if any (work
        in a placement group goes to its bundle wherever they are)."""
        strategy = task.strategy
        if near and (not in_group(task.shape) if strategy is None else strategy[0] == "locality"):
            task.strategy = ["locality", near]  # prefer running there, if it has room
        actions = self._machine.submit(task)
        if actions:  # (most often none: the task queues behind busy leases)
            self._run(actions)

    def _args_failed(self, task: _Task, error: bytes) -> None:
        results = [m.ReturnValue(ERROR, error)] * max(1, task.num_returns)
        self._run(self._machine.args_failed(task, results))

    def _run(self, actions: list[Action]) -> None:
        """Under lock: carry out the lease machine's actions, every one, in order. (Its
        tasks are this client's ``_Task`` records, handed back: hence the ignores.)"""
        for action in actions:
            if isinstance(action, Finish):  # (one per task: the common actions first)
                self.finish(action.task, action.results, lineage=True)  # type: ignore[arg-type]
            elif isinstance(action, Push):
                task, lease = action.task, action.lease
                conn = lease.peer
                if conn.closed:  # (its loss is on its way; the task never ran there)
                    self._run(self._machine.push_failed(task, lease))
                    continue
                key = lease.key
                if task.task_events:  # type: ignore[attr-defined]
                    node = conn.node or self._client.node_id
                    first = lease.tasks[0] is task  # (nothing ahead of it: it starts now)
                    self.record((PUSHED, task.task_id, time.time(), node, lease.worker_id, first))
                conn.send(
                    self.push_message(task, lease.lease_id, lease.gpu_ids, b"", key.resources)  # type: ignore[arg-type]
                )
            elif isinstance(action, AskLease):
                self._ask_lease(action)
            elif isinstance(action, ReturnLease):
                lease = action.lease
                if not self._client.closed:
                    lease.via.send(
                        m.ReturnLease(lease_id=lease.lease_id, worker_failed=action.failed)
                    )
            elif isinstance(action, CancelAsk):
                asked = self._asks.pop(action.req, None)
                if asked is not None:
                    asked[1].send(m.CancelLeaseRequest(rid=asked[0]))
            elif isinstance(action, Fail):
                self.fail(action.task, action.error)  # type: ignore[arg-type]
            elif isinstance(action, TakeBack):
                self._take_back(action)
            elif isinstance(action, SendCancel):
                lease = action.lease
                task_id = action.task.task_id
                lease.peer.send(
                    m.CancelTask(task_id=task_id, force=action.force, recursive=action.recursive)
                )
                if action.kill:
                    lease.via.send(m.KillWorker(worker_id=lease.worker_id))
            elif isinstance(action, WorkerCrashed):
                self._worker_crashed(action.task, action.lease)
            elif isinstance(action, RetryLater):
                self._retry_later(action.task, action.delay)
            elif isinstance(action, RunAgain):
                self._run_again(action.task)  # type: ignore[arg-type]
            else:
                raise AssertionError(f"unknown action {action!r}")

    def _ask_lease(self, ask: AskLease) -> None:
        key, req = ask.key, ask.req
        client = self._client
        if ask.to is None:
            via = client.node
        else:
            try:
                via = client.remote_node(*ask.to)
            except OSError:
                self._run(self._machine.refused(key, req, None, True))
                return
        rid = client.calls.call(
            via,
            lambda rid: m.RequestLease(
                rid=rid,
                shape=key.resources,
                owner_id=client.client_id,
                describe=key.describe,
                strategy=key.strategy,
                runtime_env=key.runtime_env,
                spilled=ask.spilled,
                job_id=key.job,
                retriable=key.retriable,
            ),
            lambda reply: self._on_lease(key, req, reply, via),
        )
        if self._machine.asking(key, req):  # (not answered already: a connection closed meanwhile)
            self._asks[req] = (rid, via)

    def _on_lease(self, key: Key, req: int, answer: m.Answer, via: Connection) -> None:
        """Reactor thread: a node answered a lease request."""
        if isinstance(answer, m.LeaseGranted):
            self._granted(key, req, answer, via)
        elif isinstance(answer, m.LeaseSpilled):  # that node has no room: ask the one it names
            with self._lock:
                self._asks.pop(req, None)
                if not self._client.closed:
                    self._run(self._machine.spilled(key, req, (answer.node_id, answer.address)))
        else:
            kind = answer.kind if isinstance(answer, m.Reply) else None
            text = answer.error[1] if isinstance(answer, m.Reply) and answer.error else ""
            error: BaseException | None = None
            if kind is m.ErrorKind.WORKER_START_FAILED:
                error = exc.RaySystemError(text)
            elif kind is m.ErrorKind.UNSCHEDULABLE:
                error = exc.TaskUnschedulableError(text)
            elif kind is m.ErrorKind.PLACEMENT_GROUP_REMOVED:
                error = exc.TaskPlacementGroupRemoved(f"The task was not run: {text}.")
            with self._lock:
                self._asks.pop(req, None)
                # (else another node asked went away: ask again, unless ours did)
                self._run(self._machine.refused(key, req, error, not self._client.node.closed))

    def _granted(self, key: Key, req: int, grant: m.LeaseGranted, via: Connection) -> None:
        conn: Connection | None
        try:
            conn = self._client.peer(grant.addr, grant.node_id)
        except OSError:
            conn = None
        with self._lock:
            self._asks.pop(req, None)
            if self._client.closed:
                via.send(m.ReturnLease(lease_id=grant.lease_id))
                return
            self._run(
                self._machine.granted(
                    key,
                    req,
                    grant.lease_id,
                    grant.worker_id,
                    grant.gpu_ids,
                    grant.saturated,
                    via,
                    conn,
                )
            )

    def _take_back(self, ask: TakeBack) -> None:
        key, lease, task_ids = ask.key, ask.lease, ask.task_ids
        self._client.calls.call(
            lease.peer,
            lambda rid: m.TakeBackTasks(rid=rid, lease_id=lease.lease_id, task_ids=task_ids),
            lambda reply: self._took_back(key, lease, task_ids, reply),
        )

    def _took_back(self, key: Key, lease: Lease, asked: list[bytes], answer: m.Answer) -> None:
        """Reactor thread: the worker answered a take-back with the tasks it handed back."""
        if isinstance(answer, m.Reply) and answer.error is None:
            back: list[bytes] | None = answer.value or []
        else:
            back = None
        with self._lock:
            self._run(self._machine.took_back(key, lease, asked, back, time.monotonic()))

    def push_message(
        self,
        task: _Task,
        lease_id: int,
        gpu_ids: list[int],
        actor_id: bytes,
        resources: dict[str, float] | None,
    ) -> m.PushTask:
        return _PushTask(
            task_id=task.task_id,
            fn_id=task.fn_id,
            blob=task.blob,
            deps=task.deps,
            num_returns=task.num_returns,
            name=task.name,
            owner_id=self._client.client_id,
            lease_id=lease_id,
            gpu_ids=gpu_ids,
            actor_id=actor_id,
            job_id=task.job,
            namespace=task.namespace,
            args_ref=task.args_ref,
            resources=resources,
            capture_child_tasks=task.captures,
            backpressure=task.backpressure,
            concurrency_group=task.concurrency_group,
        )

    def leases_on(self, node_id: bytes) -> list[Lease]:
        """Under lock: the leases of workers on that node (worker ids start with its tag)."""
        return self._machine.leases_on(node_id[:4])

    def return_idle_leases(self) -> None:
        """Under lock: what the leases without a task hold is free again at their node."""
        self._run(self._machine.return_idle())

    def expire_idle_leases(self) -> None:
        self._run(self._machine.tick(time.monotonic()))

    def on_revoke(self, lease_id: int) -> None:
        with self._lock:
            self._run(self._machine.revoked(lease_id))

    # ------------------------------------------------------------------ results

    def on_task_done(self, msg: m.TaskDone) -> None:
        with self._lock:
            task = self._tasks.get(msg.task_id)
            if task is not None:
                lease = task.lease
                if lease is not None:
                    if msg.retiring:
                        self._machine.retiring(lease)
                    elif len(lease.tasks) > 1 and lease.tasks[0] is task:
                        behind = lease.tasks[1]  # (it runs now: its worker is free)
                        if behind.task_events:  # type: ignore[attr-defined]
                            self.record((STARTED, behind.task_id, time.time()))
                if task.num_returns < 0:
                    self._client.streams.answered(task.task_id, msg.results)
                if task.task_events:
                    results = msg.results
                    if results and results[0].kind == ERROR:  # (it may run again: say so now)
                        self.record((RAN, task.task_id, time.time(), msg.ran, results[0].data))
                        task.ran = None
                    else:
                        task.ran = msg.ran
                task.handler.task_done(task, msg.results)

    def task_done(self, task: _Task, results: Sequence[m.ReturnValue]) -> None:
        """Under lock: the worker answered a task that is not an actor call."""
        retryable = False
        if results and results[0].kind == ERROR:
            lost = self._lost_argument(task, results)
            if lost is not None and (not lost.ready or self.rerun(lost)):
                # It failed for want of an argument that is being made again: run it once
                # that is ready (its own retries are not used: the fault was not its own).
                self._run(self._machine.detach(task, time.monotonic()))
                self.resolve_deps(task, self._enqueue, self._args_failed)
                return
            retryable = _retryable(task, results)
        self._run(self._machine.task_done(task, results, retryable, time.monotonic()))

    def _lost_argument(self, task: _Task, results: Sequence[m.ReturnValue]) -> _Obj | None:
        """Under lock, for a task that failed: the argument this process owns whose loss made
        it fail, if that is how it failed."""
        cause = _cause(results[0].data)
        if not isinstance(cause, exc.ObjectLostError):
            return None
        for ref in task.dep_refs:
            if ref._id.hex() == cause.object_ref_hex:
                dep = self._objects.entry(ref._id)
                return dep if dep is not None and dep.owned else None
        return None

    def finish(self, task: _Task, results: Sequence[m.ReturnValue], lineage: bool = False) -> None:
        """Under lock: record the task's return values and wake whoever waits for them; with
        ``lineage``, keep the task to run again should an object it made be lost (while it has
        retries left)."""
        self._tasks.pop(task.task_id, None)
        pins: list[ObjectRef] = []
        if task.num_returns < 0:
            results, pins = self._client.streams.task_over(task, results)
        if len(results) != len(task.return_ids):
            err = exc.RayTaskError(
                task.name,
                "",
                ValueError(
                    f"Task {task.name!r} declared num_returns={len(task.return_ids)} but "
                    f"returned {len(results)} values."
                ),
            )
            results = [m.ReturnValue(ERROR, serialization.dumps(err))] * len(task.return_ids)
        if task.task_events:
            error = results[0].data if results and results[0].kind == ERROR else None
            self.record((ENDED, task.task_id, time.time(), task.ran, error))
        keep = task if lineage and task.retries_left != 0 else None
        if not self._objects.store_returns(task.return_ids, results, keep):
            task.pins = []  # (a task kept as lineage keeps its arguments alive)
        if pins:  # a dynamic generator's value holds its items
            self._objects.pin(task.return_ids[0], pins)

    def fail(self, task: _Task, error: BaseException) -> None:
        error_value = m.ReturnValue(ERROR, serialization.dumps(error))
        self.finish(task, [error_value] * len(task.return_ids))

    def peer_lost(self, conn: Connection) -> None:
        """Under lock: the connection to a worker closed; the tasks pushed to it are lost."""
        for lease in self._machine.leases_of(conn):
            self._run(self._machine.worker_lost(lease))

    def _worker_crashed(self, task: Task, lease: Lease) -> None:
        """Under lock: once the node that leased it says how the process of a task whose
        worker died ended (it may see the end after this process did), run the task again or
        fail it with that."""

        def answered(answer: m.Answer) -> None:
            end = answer if isinstance(answer, m.WorkerExited) else m.WorkerExited(rid=0)
            error: exc.RayError = (
                exc.OutOfMemoryError(end.oom)
                if end.oom
                else exc.WorkerCrashedError(
                    task_name=task.name,
                    pid=end.pid,
                    exit_code=end.code,
                    log_path=end.log or None,
                    log_note=end.log_note or None,
                )
            )
            with self._lock:
                if task.task_events:  # type: ignore[attr-defined]
                    self.record((RAN, task.task_id, time.time(), None, error))
                if not self._client.closed:
                    self._run(self._machine.worker_ended(task, bool(end.oom), error, end.oom_retry))

        node = lease.via
        if node.closed:
            answered(m.error_reply(0, m.ErrorKind.CONNECTION_LOST, "its node is gone"))
        else:
            self._client.calls.call(
                node, lambda rid: m.WorkerExit(rid=rid, worker_id=lease.worker_id), answered
            )

    def _retry_later(self, task: Task, delay: float) -> None:
        """Under lock: queue the task again after ``delay`` seconds."""

        def again() -> None:
            with self._lock:
                if not self._client.closed:
                    self._run(self._machine.submit(task))

        self._client.reactor.call_later(delay, again)

    def rerun(self, obj: _Obj) -> bool:
        """Under lock: run the task that made ``obj`` again (see ``TaskLeases.rerun``); False
        if it may not."""
        task: _Task | None = obj.lineage
        if task is None or self._client.closed:
            return False
        actions = self._machine.rerun(task, obj.where[:4])
        if actions is None:
            return False
        self._run(actions)
        return True

    def _run_again(self, task: _Task) -> None:
        """Under lock: the task runs again once its arguments are ready (those lost too are
        made again first: see ``resolve_deps``; the chain is walked through
        ``ObjectTable.fire``'s queue, not by recursion, however long it is)."""
        self._objects.unready(task.return_ids, task)
        self._tasks[task.task_id] = task
        self._objects.fire([lambda: self.resolve_deps(task, self._enqueue, self._args_failed)])

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
            if task is not None:
                task.handler.cancel_task(task, force, recursive)

    def cancel_task(self, task: _Task, force: bool, recursive: bool) -> None:
        """Under lock: cancel a task that is not an actor call."""
        self._run(self._machine.cancel(task, force, recursive))
