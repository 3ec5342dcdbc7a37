"""The worker process: runs the tasks callers push to it, or hosts one actor.

Theory of operation: the reactor thread receives ``PushTask`` messages from callers and hands
each to an executor slot. The main thread is the first slot, so ordinary tasks run on the main
thread as users expect. A slot whose task blocks in ``get`` lends its CPU back to the node,
which may then lease this same worker again; the new task then runs on a fresh slot thread, so
recursion does not need a process per waiting task.

As an actor, the process runs ``__init__`` when the node sends ``StartActor`` and then executes
method calls in arrival order on the main thread, on a thread pool (``max_concurrency`` > 1) or
on an asyncio event loop (any ``async def`` method). An actor with concurrency groups starts
each call when ``_core.concurrency_groups`` admits it, on the pool or the loop.

Start: the node manager forks itself and calls ``main`` (see ``NodeManager.start_worker``).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import faulthandler
import inspect
import io
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cloudpickle

from ember import exceptions as exc
from ember._core.call_limits import CallCounter, CallLimited
from ember._core.concurrency_groups import GroupAdmission
from ember._core.generator_stream import must_pause
from ember._protocol import ids
from ember._protocol import messages as m
from ember._protocol.messages import ERROR, INLINE, STORED, ReturnValue
from ember._runtime import proctitle, serialization, state, task_context
from ember._runtime.client.core_client import CoreClient
from ember._runtime.client.records import _Placeholder
from ember._runtime.task_context import TaskContext
from ember._transport.reactor import Connection, Reactor, local_address
from ember._transport.rpc import refuse

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

_SPECIAL_METHODS = {"__ray_ready__", "__ray_terminate__", "__ray_call__"}
EXITED = "it exited intentionally: exit_actor() was called in {}"  # the node's reason
SYS_EXITED = "it exited intentionally: sys.exit() was called in {}"
_TaskDone = m.builder(m.TaskDone)  # (once per task: see builder)
# Tasks that may wait in get/wait at once in one worker process, each on its own executor
# thread (EMBER_MAX_BLOCKED_TASKS). Past it a get raises instead of blocking: thousands of
# threads and leases in one process slow every nested call down (each submit costs in
# proportion to the leases its process holds) and near the system's limit of threads.
MAX_BLOCKED_TASKS = 4000


class _Title:
    """The process's name in ``ps``: ``ember::f`` while task ``f`` runs (the latest started,
    when several do), and ``ember::worker`` again once none runs, set by a periodic tick
    (``Worker._retitle``) rather than after each task: a rename costs about a microsecond and
    a half, and tasks pushed back to back keep the name. The tick runs only while a task's
    name is shown (``on_busy`` starts it), so an idle worker's loop sleeps. An actor's
    process is named after its class (``ember::Counter``) for its life."""

    IDLE = "ember::worker"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self._titles: dict[str, str] = {}
        self._ticking = False
        self.on_busy: Callable[[], None] | None = None  # starts the tick

    @staticmethod
    def of(name: str) -> str:
        """``ember::f`` for a task or class named ``test_x.<locals>.f``."""
        return "ember::" + _short(name)

    def enter(self, name: str) -> None:
        title = self._titles.get(name)
        if title is None:
            title = self._titles[name] = self.of(name)
        with self._lock:
            self.running += 1
            start, self._ticking = not self._ticking, True
        proctitle.show(title)
        if start and self.on_busy is not None:
            self.on_busy()

    def leave(self) -> None:
        with self._lock:
            self.running -= 1

    def idle(self) -> bool:
        """Show the idle name if no task runs (and stop ticking); False if one does."""
        with self._lock:
            if self.running:
                return False
            self._ticking = False
            proctitle.show(self.IDLE)
            return True


_TITLE = _Title()
_RETITLE_SECONDS = 0.1


class _Slot:
    """An executor: a thread that runs one task at a time from its queue."""

    def __init__(self, worker: Worker, main: bool) -> None:
        self.worker = worker
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.running: TaskContext | None = None
        self.thread: threading.Thread | None = None
        if not main:
            self.thread = threading.Thread(target=self.loop, daemon=True, name="ember-slot")
            self.thread.start()

    def loop(self) -> None:
        if self.thread is None:
            self.thread = threading.current_thread()
        while True:
            try:
                item = self.queue.get()
                if item is None:
                    return
                item()
            except exc.TaskCancelledError:
                # A cancel aimed at a task that finished just before it arrived: nothing to
                # interrupt any more, and this executor must go on.
                continue


class _LeaseRun:
    """The tasks pushed on one lease: queued in order, and how many executors drain them."""

    __slots__ = ("queue", "drainers", "blocked", "lent")

    def __init__(self) -> None:
        self.queue: collections.deque[tuple[Connection, m.PushTask, TaskContext]] = (
            collections.deque()
        )
        self.drainers = 0
        self.blocked = 0
        self.lent = False  # the node was told that this lease's CPU is free meanwhile


class _Outflow:
    """A running generator task's items: how many it yielded and how many its caller said it
    took, which pause it under backpressure (``must_pause``) until the caller takes more."""

    __slots__ = ("conn", "threshold", "produced", "consumed", "cond", "on_change")

    def __init__(
        self, conn: Connection, threshold: int, on_change: Callable[[], object] | None = None
    ) -> None:
        self.conn = conn
        self.threshold = threshold
        self.produced = 0
        self.consumed = 0
        self.cond = threading.Condition()
        self.on_change = on_change  # (an async actor's: wakes its pause on the loop)

    def taken(self, consumed: int) -> None:
        """Reactor thread: the caller took ``consumed`` items (-1: it wants no more, or it
        is gone: never pause again)."""
        with self.cond:
            if consumed < 0:
                self.threshold = -1
            self.consumed = max(self.consumed, consumed)
            self.cond.notify_all()
        if self.on_change is not None:
            self.on_change()

    def pause(self, ctx: TaskContext) -> None:
        """The task's thread, after an item: wait while backpressure says so, or until the
        task is cancelled."""
        with self.cond:
            while must_pause(self.produced, self.consumed, self.threshold):
                if ctx.cancelled:
                    raise exc.TaskCancelledError(ctx.task_id.hex())
                self.cond.wait()

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()
        if self.on_change is not None:
            self.on_change()


def _send_through_cancels(conn: Connection, done: m.TaskDone) -> None:
    while True:
        try:
            conn.send(done)
            return
        except exc.TaskCancelledError:
            continue  # a late cancel landed here: the answer must still go out


class Worker:
    def __init__(
        self,
        node_addr: str,
        control_addr: str,
        session_dir: str,
        worker_id: bytes,
        listen: str = "",
        token: str | None = None,
    ):
        self.worker_id = worker_id
        self.session_dir = session_dir
        self.reactor = Reactor("ember-worker")
        self.reactor.start()
        # On a cluster, callers on other hosts push tasks here over TCP, with the token.
        self.address = self.reactor.listen(
            listen or local_address(session_dir, f"w-{worker_id.hex()}"),
            self.caller_message,
            self.caller_closed,
            token=token,
        )
        self.functions: dict[bytes, Any] = {}
        self.fn_lock = threading.Lock()
        # Functions with max_calls: at the limit this process retires (starts no more tasks,
        # answers those it runs, then exits).
        self.calls = CallCounter()
        self.retiring = False
        self.main_slot = _Slot(self, main=True)
        self.idle: list[_Slot] = [self.main_slot]
        self.slots_lock = threading.Lock()
        self.by_task: dict[bytes, tuple[_Slot | None, TaskContext]] = {}
        self.outflows: dict[bytes, _Outflow] = {}  # running generator tasks, by task id
        self.lease_runs: dict[int, _LeaseRun] = {}
        self.blocked = 0  # tasks of leases blocked in get/wait, under slots_lock
        self.max_blocked = _max_blocked_tasks()
        self.actor: Any = None
        self.actor_id = b""
        self.actor_name = ""
        self.actor_gpu_ids: list[int] = []
        self.actor_resources: dict[str, float] | None = None
        self.actor_captures = False  # its placement group takes the tasks it starts
        self.actor_pool: ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # An async actor's concurrency groups other than the default one: a loop each, on a
        # thread of its own, as in Ray (so a method that blocks its loop holds up only its group).
        self.group_loops: dict[str, asyncio.AbstractEventLoop] = {}
        self.async_sem: asyncio.Semaphore | None = None
        # With concurrency groups: which calls may start (under slots_lock, or on the loop).
        self.admission: GroupAdmission[Any] | None = None
        self.running_calls = 0  # actor calls running, under slots_lock
        self.exiting = ""  # why the actor ends once its running calls have (exit_actor)
        # Unless the user set it, as in Ray (see size_blas); the CPUs it was set for last.
        self.set_omp = "OMP_NUM_THREADS" not in os.environ
        self.omp_cpus: float | None = None
        # Why its runtime env could not be set up ("" if it was): its tasks and actor fail so.
        self.setup_error = ""
        self.client = CoreClient(
            kind="worker",
            node_address=node_addr,
            control_address=control_addr,
            shm_dir="",  # the node tells where, in its answer to Hello
            spill_dir="",
            client_id=worker_id,
            job_id=b"",
            namespace="",
            node_id=b"",
            listen_address=self.address,
            reactor=self.reactor,
            token=token,
            extra_handler=self.on_node_message,
        )
        self.store = self.client.store
        info = self.client.info
        self.client.node_id = info["node_id"]
        self.store.shm_dir, self.store.spill_dir = info["shm_dir"], info["spill_dir"]
        self.client.on_node_lost = lambda: os._exit(0)
        self.client.on_block = self._blocked
        self.client.on_unblock = self._unblocked
        state.set_current(self.client)
        _install_output(self)
        signal.signal(signal.SIGINT, _on_sigint)
        _TITLE.on_busy = lambda: self.reactor.call_later(_RETITLE_SECONDS, self._retitle)

    def size_blas(self, resources: dict[str, float] | None) -> None:
        """Size the thread pools of BLAS and OpenMP libraries (numpy's matrix products) to the
        CPUs the task holds, at least one, as Ray does (unless the user set them): by default
        each would start a thread per core of the machine, in every worker at once. OpenBLAS
        and MKL read OMP_NUM_THREADS when they load (unless their own variable is set), so it
        counts for the first task that imports them in this process; the node, which workers
        are forked from, never does."""
        cpus = resources.get("CPU", 1) if resources else 1
        if self.set_omp and cpus != self.omp_cpus:  # (written once per change: it is slow)
            self.omp_cpus = cpus
            os.environ["OMP_NUM_THREADS"] = str(max(1, int(cpus)))

    def _retitle(self) -> None:
        """Reactor thread, while a task's name is shown: named ``ember::worker`` again once
        no task runs (then the tick stops until the next task)."""
        if not self.actor_id and not _TITLE.idle():
            self.reactor.call_later(_RETITLE_SECONDS, self._retitle)

    # ------------------------------------------------------------------ dispatch

    def dispatch(self, conn: Connection, msg: m.PushTask) -> None:
        """Reactor thread: route a pushed task to where it runs."""
        ctx = TaskContext(
            msg.task_id,
            msg.name,
            msg.job_id,
            msg.namespace,
            msg.lease_id,
            msg.actor_id,
            list(msg.gpu_ids) or self.actor_gpu_ids,
            msg.resources or self.actor_resources,
            capture_child_tasks=msg.capture_child_tasks or self.actor_captures,
        )
        if self.loop is not None:
            self.by_task[msg.task_id] = (None, ctx)
            loop = self.group_loops.get(msg.concurrency_group, self.loop)
            loop.call_soon_threadsafe(self._start_async, loop, conn, msg, ctx)
            return
        if self.actor_pool is not None:
            self.by_task[msg.task_id] = (None, ctx)
            if self.admission is None:
                self.actor_pool.submit(self.run, conn, msg, ctx, None)
                return
            with self.slots_lock:
                start = self.admission.arrive((conn, msg, ctx), msg.concurrency_group)
            if start is not None:
                self.actor_pool.submit(self._run_in_group, start)
            return
        if msg.actor_id:
            slot = self.main_slot
            self.by_task[msg.task_id] = (slot, ctx)
            slot.queue.put(lambda: self.run(conn, msg, ctx, slot))
            return
        # Tasks of one lease run one after another, in the order pushed (a caller may push
        # the next before the last is done); a slot drains the lease's queue.
        self.by_task[msg.task_id] = (None, ctx)
        with self.slots_lock:
            run = self.lease_runs.get(msg.lease_id)
            if run is None:
                run = self.lease_runs[msg.lease_id] = _LeaseRun()
            run.queue.append((conn, msg, ctx))
            lends_all = set(ctx.resources or {}) <= {"CPU"}
            if run.drainers > (run.blocked if lends_all else 0):
                return  # a drainer of this lease that is not blocked will get to it
            slot = self._take_slot(run)
            self._sync_lent(msg.lease_id, run)
        slot.queue.put(lambda: self._drain(slot, msg.lease_id, run))

    def _run_in_group(self, item: tuple[Connection, m.PushTask, TaskContext]) -> None:
        """A pool thread: run an admitted call, then the calls of its group that wait."""
        group = item[1].concurrency_group
        next_item: tuple[Connection, m.PushTask, TaskContext] | None = item
        while next_item is not None:
            self.run(*next_item, None)
            with self.slots_lock:
                assert self.admission is not None
                next_item = self.admission.done(group)

    def _take_slot(self, run: _LeaseRun) -> _Slot:
        """Under slots_lock: an executor for one more drainer of ``run``."""
        run.drainers += 1
        return self.idle.pop() if self.idle else _Slot(self, main=False)

    def _drain(self, slot: _Slot, lease_id: int, run: _LeaseRun) -> None:
        item = None
        while True:
            with self.slots_lock:
                if item is None and run.queue and not self.retiring:
                    item = run.queue.popleft()
                if item is None:
                    self._drainer_done(slot, lease_id, run)
                    return
            conn, msg, ctx = item
            self.by_task[msg.task_id] = (slot, ctx)
            done = self.execute(conn, msg, ctx, slot)
            with self.slots_lock:
                item = run.queue.popleft() if run.queue and not self.retiring else None
                if item is None:  # before answering, so the next push finds the slot free
                    self._drainer_done(slot, lease_id, run)
                last = self.retiring and not any(r.drainers for r in self.lease_runs.values())
            assert done is not None  # (a task of a lease, not an actor call)
            _send_through_cancels(conn, done)
            if last:  # (the last task running here has been answered)
                self.reactor.call_soon(self._exit_when_sent)
            if item is None:
                return

    def _drainer_done(self, slot: _Slot, lease_id: int, run: _LeaseRun) -> None:
        run.drainers -= 1
        self._sync_lent(lease_id, run)
        if run.drainers == 0 and self.lease_runs.get(lease_id) is run:
            del self.lease_runs[lease_id]
        if slot not in self.idle:
            self.idle.append(slot)

    def take_back(self, lease_id: int, task_ids: list[bytes]) -> list[bytes]:
        """Reactor thread: drop those of ``task_ids`` that wait, not started, in the lease's
        queue; their caller runs them elsewhere. Returns the ids dropped."""
        wanted = set(task_ids)
        with self.slots_lock:
            run = self.lease_runs.get(lease_id)
            if run is None:
                return []
            back = [item for item in run.queue if item[1].task_id in wanted]
            for item in back:
                run.queue.remove(item)
        for _, msg, _ in back:
            self.by_task.pop(msg.task_id, None)
        return [msg.task_id for _, msg, _ in back]

    def _exit_when_sent(self) -> None:
        """Reactor thread, in a retired worker: end the process once its answers are out."""
        if not all(conn.sent() for conn in self.reactor.connections()):
            self.reactor.call_later(0.01, self._exit_when_sent)
            return
        _flush_output()
        os._exit(0)

    def caller_message(self, conn: Connection[None], msg: m.Message) -> None:
        """From a process that pushes tasks here, or a node that placed its actor here."""
        if isinstance(msg, m.PushTask):
            self.dispatch(conn, msg)
        elif isinstance(msg, m.StartActor):  # from a node that placed its actor here
            self.main_slot.queue.put(lambda: self.start_actor(msg, conn))
        elif isinstance(msg, m.TakeBackTasks):
            conn.send(m.Reply(rid=msg.rid, value=self.take_back(msg.lease_id, msg.task_ids)))
        elif isinstance(msg, m.GeneratorConsumed):
            flow = self.outflows.get(msg.task_id)
            if flow is not None:
                flow.taken(msg.consumed)
        elif isinstance(msg, m.CancelTask):
            if msg.recursive:
                self.client.cancel_children(msg.task_id, msg.force)
            self.cancel(msg.task_id, msg.force)
        else:
            refuse(conn, msg, "a worker")

    def caller_closed(self, conn: Connection[None]) -> None:
        """Nothing here is kept per caller (its node stops the workers that ran for a caller
        that is gone), but a generator task paused for it goes on."""
        for flow in list(self.outflows.values()):
            if flow.conn is conn:
                flow.taken(-1)

    def on_node_message(self, conn: Connection[None], msg: m.Message) -> None:
        """What the core client does not take from its node is for the worker."""
        if isinstance(msg, m.StartActor):
            self.main_slot.queue.put(lambda: self.start_actor(msg, self.client.node))
        elif isinstance(msg, m.FlushOutput):  # (after every line already sent, on this conn)
            self.client.node.send(m.Reply(rid=msg.rid))
        else:
            refuse(conn, msg, "a worker")

    # ------------------------------------------------------------------ running

    def run(self, conn: Connection, msg: m.PushTask, ctx: TaskContext, slot: _Slot | None) -> None:
        """Run a sync actor's call and answer it, unless the actor is exiting: then a call
        does not start, and its caller learns why when the process has ended. A plain
        actor's calls run one at a time, on the main slot: only a threaded actor's are
        counted (under the lock) to know which ends last."""
        main = slot is not None
        if self.exiting if main else not self._call_started():
            self.by_task.pop(msg.task_id, None)
            return
        try:
            done = self.execute(conn, msg, ctx, slot)
            if done is not None:
                _send_through_cancels(conn, done)
        finally:
            if not main:
                self._call_ended()
            elif self.exiting:
                self.end_actor(self.exiting)

    def execute(
        self, conn: Connection, msg: m.PushTask, ctx: TaskContext, slot: _Slot | None
    ) -> m.TaskDone | None:
        """Run a task or actor call; None: the call asked its actor to exit (no answer)."""
        token = task_context.current.set(ctx)
        results: list[ReturnValue] | None = None
        if slot is not None:
            slot.running = ctx
        if not msg.actor_id:
            _TITLE.enter(msg.name)
        try:
            if ctx.cancelled:
                raise exc.TaskCancelledError(ctx.task_id.hex())
            if not msg.actor_id:  # (an actor's process was set up for it once)
                if msg.gpu_ids:
                    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, msg.gpu_ids))
                self.size_blas(msg.resources)
            fn, args, kwargs = self.prepare(msg)
            ctx.function = fn
            value = fn(*args, **kwargs)
            if msg.num_returns < 0:
                self.stream(conn, msg, ctx, value)
                value = None  # (its return value only says it is over)
            elif ctx.cancelled and msg.actor_id:  # it ran on (see cancel): its caller is told
                raise exc.TaskCancelledError(ctx.task_id.hex())
            results = self.pack(msg, ctx, value)
        except task_context.ActorExit:
            self._exit_requested(EXITED.format(msg.name))
        except SystemExit as e:
            self._system_exit(msg, e)
        except BaseException as e:  # every failure goes back to the caller
            results = self.failure(msg, ctx, e)
        finally:
            if slot is not None:
                slot.running = None
            if not msg.actor_id:
                _TITLE.leave()
                if self.calls.limits and self.calls.ran(msg.fn_id):
                    with self.slots_lock:
                        self.retiring = True
            task_context.current.reset(token)
            self.by_task.pop(msg.task_id, None)
            _flush_output()
        if results is None:
            return None
        return _TaskDone(task_id=msg.task_id, results=results, retiring=self.retiring)

    def _start_async(
        self, loop: asyncio.AbstractEventLoop, conn: Connection, msg: m.PushTask, ctx: TaskContext
    ) -> None:
        _ASYNC_TASKS[msg.task_id] = loop.create_task(self._run_async(conn, msg, ctx))

    async def _run_async(self, conn: Connection, msg: m.PushTask, ctx: TaskContext) -> None:
        """Run an async actor's call once its group (or the actor's limit) admits it and
        answer it, unless the actor is exiting (see ``run``)."""
        task_context.current.set(ctx)
        started = False
        results: list[ReturnValue] | None = None
        try:
            if self.admission is None:
                assert self.async_sem is not None
                async with self.async_sem:
                    started = self._call_started()
                    if started:
                        results = await self._call_async(conn, msg, ctx)
            else:
                await self._admitted(msg.concurrency_group)
                try:
                    started = self._call_started()
                    if started:
                        results = await self._call_async(conn, msg, ctx)
                finally:
                    self._leave_group(msg.concurrency_group)
        except (task_context.ActorExit, exc.AsyncioActorExit):
            self._exit_requested(EXITED.format(msg.name))
        except _cancelled_error() as e:
            cancel = exc.TaskCancelledError(ctx.task_id.hex()).with_traceback(e.__traceback__)
            results = self.failure(msg, ctx, cancel)
        except SystemExit as e:
            self._system_exit(msg, e)
        except BaseException as e:
            results = self.failure(msg, ctx, e)
        finally:
            self.by_task.pop(msg.task_id, None)
            _ASYNC_TASKS.pop(msg.task_id, None)
            _flush_output()
        if results is not None:
            conn.send(_TaskDone(task_id=msg.task_id, results=results))
        if started:
            self._call_ended()

    async def _call_async(
        self, conn: Connection, msg: m.PushTask, ctx: TaskContext
    ) -> list[ReturnValue]:
        if ctx.cancelled:  # cancelled while it waited for the loop
            raise exc.TaskCancelledError(ctx.task_id.hex())
        fn, args, kwargs = self.prepare(msg)
        ctx.function = fn
        value = fn(*args, **kwargs)
        if msg.num_returns < 0:
            await self.stream_async(conn, msg, ctx, value)
            value = None
        elif inspect.isawaitable(value):
            value = await value
            if ctx.cancelled:  # it caught its CancelledError and returned: cancelled all the same
                raise exc.TaskCancelledError(ctx.task_id.hex())
        return self.pack(msg, ctx, value)

    async def _admitted(self, group: str) -> None:
        """The group's loop: wait until the call's concurrency group admits it."""
        import asyncio

        assert self.admission is not None
        turn = asyncio.get_running_loop().create_future()
        if self.admission.arrive(turn, group) is None:
            try:
                await turn
            except BaseException:  # cancelled: if admitted meanwhile, give the place on
                if turn.done() and not turn.cancelled():
                    self._leave_group(group)
                raise

    def _leave_group(self, group: str) -> None:
        """The group's loop: a call ended; its place goes to the next waiting call of its group that
        was not cancelled meanwhile."""
        assert self.admission is not None
        turn = self.admission.done(group)
        while turn is not None and turn.done():
            turn = self.admission.done(group)
        if turn is not None:
            turn.set_result(None)

    def function(self, fn_id: bytes) -> Any:
        fn = self.functions.get(fn_id)
        if fn is None:
            data = self.client.fetch_function(fn_id)
            with self.fn_lock:
                fn = cloudpickle.loads(data)
                if isinstance(fn, CallLimited):
                    self.calls.limit(fn_id, fn.max_calls)
                    fn = fn.function
                self.functions[fn_id] = fn
        return fn

    def prepare(self, msg: m.PushTask) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        if self.setup_error:
            raise exc.RuntimeEnvSetupError(self.setup_error)
        if msg.actor_id:
            name = msg.fn_id.decode()
            if name in _SPECIAL_METHODS:
                fn = self._special(name)
            else:
                fn = _method_of(self.actor, name)
        else:
            fn = self.function(msg.fn_id)
            fn = getattr(fn, "_function", fn)
        args, kwargs = self.load_args(msg.blob, msg.args_ref, msg.deps, msg.owner_id)
        return fn, args, kwargs

    def load_args(
        self, blob: bytes, args_ref: bytes, deps: list[list[Any]], owner: bytes
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if args_ref:
            args, kwargs = self.client.read_stored(args_ref, owner)
        else:
            args, kwargs = serialization.loads(blob)
        if deps:
            values = [self.load_dep(kind, data, owner) for kind, data in deps]
            args = tuple(values[a.index] if isinstance(a, _Placeholder) else a for a in args)
            kwargs = {
                k: values[v.index] if isinstance(v, _Placeholder) else v for k, v in kwargs.items()
            }
        return args, kwargs

    def load_dep(self, kind: int, data: Any, owner: bytes) -> Any:
        if kind == INLINE:
            return serialization.loads(data)
        return self.client.read_stored(data, owner)

    def stream(self, conn: Connection, msg: m.PushTask, ctx: TaskContext, gen: Any) -> None:
        """Run a generator task's generator, sending each item to the caller as it comes,
        paused by backpressure; its return value only says that it is over."""
        flow = self.outflows[msg.task_id] = _Outflow(conn, msg.backpressure)
        try:
            for item in gen:
                self.emit(flow, msg, item)
                flow.pause(ctx)
        finally:
            self.outflows.pop(msg.task_id, None)

    async def stream_async(
        self, conn: Connection, msg: m.PushTask, ctx: TaskContext, gen: Any
    ) -> None:
        """``stream`` on an async actor's loop, for an async or a sync generator (which runs on
        the loop too, as in Ray): a pause under backpressure awaits the caller's word, so the
        loop's other calls go on meanwhile (no thread waits: any number may be paused)."""
        import asyncio

        loop = asyncio.get_running_loop()
        woken = asyncio.Event()
        flow = _Outflow(conn, msg.backpressure, lambda: loop.call_soon_threadsafe(woken.set))
        self.outflows[msg.task_id] = flow
        try:
            if inspect.isasyncgen(gen):
                async for item in gen:
                    self.emit(flow, msg, item)
                    await self._pause_async(flow, ctx, woken)
            else:
                for item in gen:
                    self.emit(flow, msg, item)
                    await self._pause_async(flow, ctx, woken)
        finally:
            self.outflows.pop(msg.task_id, None)

    @staticmethod
    async def _pause_async(flow: _Outflow, ctx: TaskContext, woken: asyncio.Event) -> None:
        """``_Outflow.pause`` on the loop: the flow sets ``woken`` (on the loop, so after the
        clear below) whenever the caller takes items or the task is cancelled."""
        while must_pause(flow.produced, flow.consumed, flow.threshold):
            if ctx.cancelled:
                raise exc.TaskCancelledError(ctx.task_id.hex())
            woken.clear()
            await woken.wait()

    def emit(self, flow: _Outflow, msg: m.PushTask, item: Any) -> None:
        """Store one item as the task's next return object and tell the caller."""
        index = flow.produced
        value = self.return_value(msg, index + 2, serialization.serialize(item))
        flow.conn.send(m.GeneratorItem(task_id=msg.task_id, index=index, value=value))
        flow.produced = index + 1

    def pack(self, msg: m.PushTask, ctx: TaskContext, value: Any) -> list[ReturnValue]:
        n = msg.num_returns
        if n > 0 and inspect.isgenerator(value):
            return self.pack_yielded(msg, ctx, value)
        if n == 1 or n < 0:
            values = [value]
        elif n == 0:
            values = []
        else:
            try:
                values = list(value)
            except TypeError:
                values = []  # (n > 1: refused below)
            if len(values) != n:
                raise ValueError(
                    f"{msg.name!r} was declared with num_returns={n} but returned "
                    f"{type(value).__name__} {value!r:.80}; return a sequence of {n} values."
                )
        # Serialize every value before writing any: a value that fails to pickle must not
        # leave the ones before it in the store with nobody to free them.
        sers = [serialization.serialize(v) for v in values]
        return [self.return_value(msg, i + 1, ser) for i, ser in enumerate(sers)]

    def pack_yielded(self, msg: m.PushTask, ctx: TaskContext, gen: Any) -> list[ReturnValue]:
        """A generator's ``num_returns`` values, each stored as it is yielded (so the worker
        holds one at a time); if it raises, or yields fewer, the refs left hold the error. As in
        Ray, one value too many ends it: its first values stand and the error is only printed."""
        n = msg.num_returns
        results: list[ReturnValue] = []
        try:
            for item in gen:
                if len(results) == n:
                    raise ValueError(
                        f"{msg.name!r} was declared with num_returns={n} but yielded more values"
                    )
                ser = serialization.serialize(item)
                results.append(self.return_value(msg, len(results) + 1, ser))
            if len(results) < n:
                raise ValueError(
                    f"{msg.name!r} was declared with num_returns={n} but yielded "
                    f"{len(results)} values"
                )
        except (Exception, KeyboardInterrupt) as e:  # (a cancel too keeps the values made)
            if len(results) == n:
                print(f"Error in task {msg.name!r}: {e}", file=sys.stderr)
            return results + self.failure(msg, ctx, e)[len(results) :]
        return results

    def return_value(
        self, msg: m.PushTask, index: int, ser: serialization.Serialized
    ) -> ReturnValue:
        """The task's index-th return object (1-based), inline if small, else written to the
        store (and the node told) on behalf of the caller, who owns it."""
        if ser.nbytes <= serialization.INLINE_MAX:
            return ReturnValue(INLINE, ser.inline(), ser.refs)
        oid = ids.return_object_id(msg.task_id, index)
        size = self.store.write(oid, ser.meta, ser.buffers)
        self.client.node.send(
            m.ObjectCreated(object_id=oid, size=size, owner_id=msg.owner_id, contained=ser.refs)
        )
        return ReturnValue(STORED, size, ser.refs, self.client.node_id)

    def failure(self, msg: m.PushTask, ctx: TaskContext, error: BaseException) -> list[ReturnValue]:
        if isinstance(error, exc.TaskCancelledError) or (
            ctx.cancelled and isinstance(error, KeyboardInterrupt)
        ):
            err: BaseException = exc.TaskCancelledError(ctx.task_id.hex())
            if ctx.function is not None and not ctx.forced and (not msg.actor_id or self.loop):
                # Interrupted in its own code (a sync actor's call never is; a forced cancel
                # kills its process): as in Ray, the caller gets the cancel as the task's
                # error, RayTaskError(TaskCancelledError).
                err = exc.RayTaskError.from_exception(
                    err.with_traceback(error.__traceback__),
                    msg.name,
                    actor_repr=self.actor_name or None,
                )
        elif isinstance(error, exc.RayTaskError | exc.RuntimeEnvSetupError):
            err = error  # raised by a get() inside this task, or not its code: pass it on
        else:
            err = exc.RayTaskError.from_exception(
                error, msg.name, actor_repr=self.actor_name or None
            )
        return [ReturnValue(ERROR, _error_bytes(err, msg.name))] * max(1, msg.num_returns)

    def _special(self, name: str) -> Any:
        if name == "__ray_ready__":
            return lambda: True
        if name == "__ray_call__":  # fn(actor instance, *args): Ray's way to run code there
            return lambda fn, *args, **kwargs: fn(self.actor, *args, **kwargs)

        return lambda: self.end_actor("exited by __ray_terminate__")

    def _call_started(self) -> bool:
        """An actor call is about to run: False if the actor is exiting (then it does not)."""
        with self.slots_lock:
            if self.exiting:
                return False
            self.running_calls += 1
            return True

    def _call_ended(self) -> None:
        """An actor call ended and was answered: the actor ends now if it is exiting and
        this was the last."""
        with self.slots_lock:
            self.running_calls -= 1
            last = bool(self.exiting) and self.running_calls == 0
        if last:
            self.end_actor(self.exiting)

    def _system_exit(self, msg: m.PushTask, e: SystemExit) -> None:
        """``sys.exit()`` in a call, as in Ray: with status 0 in an actor, an intended exit
        (as ``exit_actor()``: no restart); otherwise the worker process ends as if it had
        crashed, so that the task is retried and the actor restarted as their options say,
        instead of the caller receiving a SystemExit that would end it in turn."""
        if msg.actor_id and not e.code:
            self._exit_requested(SYS_EXITED.format(msg.name))
            return
        _exit_process(e)

    def _exit_requested(self, reason: str) -> None:
        """``exit_actor()`` was called: no other call starts, and the actor ends once those
        running have (as in Ray: their callers get their results, the others its death)."""
        with self.slots_lock:
            self.exiting = self.exiting or reason

    def end_actor(self, reason: str) -> None:
        """End the actor on purpose: the node marks it dead for good (no restart) with
        ``reason``, which the calls to it, the one that asked included, fail with; atexit
        handlers run, as with Python's own exit."""
        self.client.node.send(m.ActorDone(actor_id=self.actor_id, reason=reason))
        _flush_output()
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        _flush_output()
        os._exit(0)

    # ------------------------------------------------------------------ actors

    def start_actor(self, msg: m.StartActor, reply_to: Connection) -> None:
        spec = msg.spec
        ctx = TaskContext(
            ids.new_task_id(),
            spec.class_name,
            spec.job_id,
            spec.namespace,
            0,
            msg.actor_id,
            list(msg.gpu_ids),
            msg.resources,
            capture_child_tasks=msg.capture_child_tasks,
        )
        task_context.current.set(ctx)
        self.actor_id = msg.actor_id
        self.actor_name = spec.class_name
        proctitle.show(_Title.of(self.actor_name))
        _OUTPUT_NAME[0] = _short(spec.class_name)
        self.actor_gpu_ids = list(msg.gpu_ids)
        self.actor_resources = msg.resources
        self.actor_captures = msg.capture_child_tasks
        if msg.gpu_ids:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, msg.gpu_ids))
        self.size_blas(msg.resources)
        meta = serialization.loads(spec.handle_meta) if spec.handle_meta else {}
        try:
            if self.setup_error:
                raise exc.RuntimeEnvSetupError(self.setup_error)
            cls = self.function(spec.fn_id)
            cls = getattr(cls, "_cls", cls)
            args, kwargs = self.load_args(spec.blob, spec.args_ref, spec.deps, spec.owner_id)
            is_async = any(
                inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f)
                for _, f in inspect.getmembers(cls, inspect.isfunction)
            )
            task_context.actor = task_context.HostedActor(
                msg.actor_id,
                spec.class_name,
                meta.get("name", ""),
                spec.handle_meta,
                spec.owner_id,
                msg.incarnation,
                is_async,
            )
            if is_async:
                import asyncio

                self.loop = asyncio.new_event_loop()
            ctx.function = cls.__init__
            self.actor = self._construct(cls, args, kwargs)
        except BaseException as e:  # reported as the actor's death cause
            err: exc.RayError = exc.RayTaskError.from_exception(e, f"{spec.class_name}.__init__")
            if isinstance(e, exc.RuntimeEnvSetupError):
                err = e  # (raised to its callers as itself, as in Ray)
            data = _error_bytes(err, f"{spec.class_name}.__init__")
            _flush_output()
            reply_to.send(m.error_reply(msg.rid, m.ErrorKind.ACTOR_INIT_FAILED, str(err), data))
            return
        if any("__repr__" in vars(k) for k in type(self.actor).__mro__[:-1]):  # as in Ray
            with contextlib.suppress(Exception):
                _OUTPUT_NAME[0] = repr(self.actor)
        concurrency = spec.max_concurrency
        groups = meta.get("concurrency_groups")
        if groups:
            self.admission = GroupAdmission(groups, concurrency or (1000 if is_async else 1))
        if is_async:
            import asyncio

            if self.admission is None:
                self.async_sem = asyncio.Semaphore(concurrency or 1000)
            for group in groups or ():
                loop = self.group_loops[group] = asyncio.new_event_loop()
                name = f"ember-group-{group}"
                threading.Thread(target=_run_loop, args=(loop,), daemon=True, name=name).start()
            default_loop = self.loop
            assert default_loop is not None
            self.main_slot.queue.put(lambda: _run_loop(default_loop))
        elif self.admission is not None or (concurrency and concurrency > 1):
            from concurrent.futures import ThreadPoolExecutor

            threads = self.admission.total_limit() if self.admission else concurrency
            self.actor_pool = ThreadPoolExecutor(threads, thread_name_prefix="ember-actor")
        _flush_output()
        reply_to.send(m.ActorStarted(rid=msg.rid, addr=self.address))

    def _construct(self, cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """An instance of the actor's class; an ``async def __init__`` (an async actor's, as
        Ray allows) runs to its end on the actor's event loop first."""
        if not inspect.iscoroutinefunction(cls.__init__):
            return cls(*args, **kwargs)
        assert self.loop is not None
        instance = cls.__new__(cls)
        self.loop.run_until_complete(instance.__init__(*args, **kwargs))
        return instance

    # ------------------------------------------------------------------ blocking and cancel

    def _blocked(self) -> None:
        """A task waits in get(). If the tasks of its lease are all blocked, the lease's CPU
        is lent back to the node; if the lease is CPU-only and has tasks queued behind, the
        next of those starts on another executor instead, using that CPU."""
        ctx = task_context.current.get()
        if ctx is None or not ctx.lease_id:
            return
        slot = None
        with self.slots_lock:
            run = self.lease_runs.get(ctx.lease_id)
            if run is None:
                return
            if self.blocked >= self.max_blocked:
                raise exc.BlockedTasksLimitExceeded(
                    f"{self.blocked} tasks are already blocked in get() or wait() in this "
                    f"worker process (pid {os.getpid()}), the most that "
                    f"EMBER_MAX_BLOCKED_TASKS={self.max_blocked} allows: each holds a thread "
                    "while it waits. Set EMBER_MAX_BLOCKED_TASKS higher in the environment of "
                    "ember.init() or `ember start`, or have fewer tasks wait at once for the "
                    "tasks they submit (e.g. return their ObjectRefs instead of getting them)."
                )
            self.blocked += 1
            run.blocked += 1
            if set(ctx.resources or {}) <= {"CPU"} and run.queue and run.drainers == run.blocked:
                slot = self._take_slot(run)
            self._sync_lent(ctx.lease_id, run)
        if slot is not None:
            slot.queue.put(lambda: self._drain(slot, ctx.lease_id, run))

    def _unblocked(self) -> None:
        ctx = task_context.current.get()
        if ctx is None or not ctx.lease_id:
            return
        with self.slots_lock:
            run = self.lease_runs.get(ctx.lease_id)
            if run is not None:
                self.blocked -= 1
                run.blocked -= 1
                self._sync_lent(ctx.lease_id, run)

    def _sync_lent(self, lease_id: int, run: _LeaseRun) -> None:
        """Under slots_lock: tell the node when the lease starts or stops lending its CPU,
        which it does while every task running on it is blocked."""
        lent = run.drainers > 0 and run.blocked == run.drainers
        if lent != run.lent:
            run.lent = lent
            self.client.node.send(
                m.TaskBlocked(lease_id=lease_id) if lent else m.TaskUnblocked(lease_id=lease_id)
            )

    def cancel(self, task_id: bytes, force: bool = False) -> None:
        entry = self.by_task.get(task_id)
        if entry is None:
            return
        slot, ctx = entry
        ctx.cancelled = True
        ctx.forced = ctx.forced or force
        flow = self.outflows.get(task_id)
        if flow is not None:  # (paused by backpressure: it raises when woken)
            flow.wake()
        if self.loop is not None:
            task = _ASYNC_TASKS.get(task_id)
            if task is not None:
                task.get_loop().call_soon_threadsafe(task.cancel)
            return
        if slot is None or slot.running is not ctx or slot.thread is None:
            return  # queued: it is skipped when its turn comes
        if ctx.actor_id:
            # A sync actor's running call is not interrupted (its state could be left half
            # changed), as in Ray: it may see is_canceled(), and its caller gets
            # TaskCancelledError however it ends.
            return
        if slot is self.main_slot:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]
        elif not self.client.interrupt_wait(task_id):
            # Not blocked in get/wait (which sleeps without waking to look): raise it there.
            import ctypes

            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(slot.thread.ident),  # type: ignore[arg-type]
                ctypes.py_object(exc.TaskCancelledError),
            )


def _max_blocked_tasks() -> int:
    text = os.environ.get("EMBER_MAX_BLOCKED_TASKS", "")
    try:
        limit = int(text) if text else MAX_BLOCKED_TASKS
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(
            f"EMBER_MAX_BLOCKED_TASKS must be a positive whole number of tasks, got {text!r}"
        )
    return limit


def _error_bytes(err: BaseException, name: str) -> bytes:
    """Serialize an error so that the caller can surely read it back: an exception whose
    class cannot be pickled or rebuilt (a custom ``__init__``) travels as its text."""
    try:
        data = serialization.dumps(err)
        serialization.loads(data)
        return data
    except Exception:
        tb = getattr(err, "traceback_str", "") or repr(err)
        return serialization.dumps(exc.RayTaskError(name, tb, None, os.getpid()))


_ASYNC_TASKS: dict[bytes, asyncio.Task[Any]] = {}


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    import asyncio

    asyncio.set_event_loop(loop)
    loop.run_forever()


_DESCRIPTORS: dict[str, tuple[type, Any]] = {}  # method name: (actor class, its attribute)


def _method_of(actor: Any, name: str) -> Any:
    """The actor's method ``name``, looked up on its class as in Ray: an instance attribute
    of the same name does not hide it."""
    cls = type(actor)
    found = _DESCRIPTORS.get(name)
    if found is None or found[0] is not cls:
        found = _DESCRIPTORS[name] = (cls, inspect.getattr_static(cls, name))
    return found[1].__get__(actor, cls)


def _cancelled_error() -> type[BaseException]:
    import asyncio

    return asyncio.CancelledError


def _on_sigint(signum: int, frame: Any) -> None:
    ctx = task_context.current.get()
    if ctx is not None and ctx.cancelled:
        raise exc.TaskCancelledError(ctx.task_id.hex())


# ---------------------------------------------------------------------- output to the driver

_OUTPUT_NAME = [""]


def _short(name: str) -> str:
    """``f`` for a function or class named ``test_x.<locals>.f``, as Ray shows it."""
    return name.rpartition("<locals>.")[2]


_OUTPUTS: list[_Forwarder] = []


class _Forwarder(io.TextIOBase):
    """Replaces sys.stdout/stderr: whole lines go to the driver, prefixed like Ray's."""

    def __init__(self, worker: Worker, original: Any, err: bool) -> None:
        self.worker = worker
        self.err = err
        self.original = original
        self.lock = threading.Lock()
        self.partial = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        with self.lock:
            text = self.partial + s
            *lines, self.partial = text.split("\n")
        if lines:
            self._emit(lines)
        return len(s)

    def flush(self) -> None:
        with self.lock:
            rest, self.partial = self.partial, ""
        if rest:
            self._emit([rest])

    def _emit(self, lines: list[str]) -> None:
        ctx = task_context.current.get()
        name = _OUTPUT_NAME[0] or (_short(ctx.name) if ctx else "worker")
        prefix = f"({name} pid={os.getpid()}) "
        out = [prefix + line for line in lines]
        with contextlib.suppress(Exception):
            self.original.write("".join(x + "\n" for x in out))
            self.original.flush()
        if not self.worker.client.closed:
            self.worker.client.node.send(m.LogLines(lines=out, err=self.err))


def _install_output(worker: Worker) -> None:
    sys.stdout = _Forwarder(worker, sys.stdout, False)
    sys.stderr = _Forwarder(worker, sys.stderr, True)
    _OUTPUTS[:] = [sys.stdout, sys.stderr]


def _exit_process(request: SystemExit) -> None:
    """End the worker process with the status ``sys.exit()`` asked for (``atexit`` handlers
    run): the node sees a worker die, as after a crash."""
    code = request.code
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    _flush_output()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    _flush_output()
    os._exit(code)


def _flush_output() -> None:
    for out in _OUTPUTS:
        out.flush()


def main(
    argv: list[str], token: str | None = None, runtime_env: str = "", setup_error: str = ""
) -> None:
    """Run a worker; the node manager forks and calls this, handing over the cluster's
    ``token`` in memory (the environment would pass it on to the tasks' subprocesses).
    ``runtime_env``: the env it serves, set up here unless ``setup_error`` says it failed."""
    proctitle.show(_TITLE.IDLE)
    # A crash in native code (a segfault) leaves the Python traceback in the worker's log, which
    # the caller's WorkerCrashedError names (stderr is that log here, not yet the forwarder).
    faulthandler.enable(all_threads=True)
    node_addr, control_addr, session_dir, worker_hex, listen = argv[:5]
    worker = Worker(node_addr, control_addr, session_dir, bytes.fromhex(worker_hex), listen, token)
    if runtime_env:  # (tasks pushed meanwhile wait for the main slot's loop)
        from ember._runtime.worker import runtime_env as env_setup

        worker.client.runtime_env = runtime_env
        if not setup_error:
            setup_error = env_setup.apply(runtime_env, worker.client.fetch_function, session_dir)
        worker.setup_error = setup_error
        worker.set_omp = "OMP_NUM_THREADS" not in os.environ
    worker.main_slot.loop()


def main_in_venv() -> None:
    """A worker started from a runtime env's virtual environment (``python -c``, so that
    this module is not loaded twice, as ``__main__`` and by name): the node's arguments and
    the env's text on the command line, the token in the environment."""
    from ember._runtime.worker.runtime_env import TOKEN_VARIABLE

    main(sys.argv[1:6], os.environ.pop(TOKEN_VARIABLE, None), *sys.argv[6:7])
