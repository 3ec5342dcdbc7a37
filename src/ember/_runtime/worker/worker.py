"""The worker process: runs the tasks callers push to it, or hosts one actor.

Theory of operation: the reactor thread receives ``PushTask`` messages from callers and hands
each to an executor slot. The main thread is the first slot, so ordinary tasks run on the main
thread as users expect. A slot whose task blocks in ``get`` lends its CPU back to the node,
which may then lease this same worker again; the new task then runs on a fresh slot thread, so
recursion does not need a process per waiting task.

As an actor, the process runs ``__init__`` when the node sends ``StartActor`` and routes each
method call to its ``ActorHost`` (``actor_host.py``), which runs it on the main thread, a thread
pool or an asyncio event loop. The ``Worker`` composes its parts: the actor host, the generator
streams (``streams.py``), the output forwarded to the driver (``output.py``) and the process
title (``title.py``). Running a task, storing its results and answering (``execute``) stay
here, one call deep, on the path every task takes.

Start: the node manager forks itself and calls ``main`` (see ``NodeManager.start_worker``).
"""

from __future__ import annotations

import collections
import faulthandler
import inspect
import os
import queue
import signal
import sys
import threading
from time import time
from typing import Any

import cloudpickle

from ember import exceptions as exc
from ember._core.call_limits import CallCounter, CallLimited
from ember._protocol import ids
from ember._protocol import messages as m
from ember._protocol.messages import ERROR, INLINE, STORED, ReturnValue
from ember._runtime import proctitle, serialization, state, task_context
from ember._runtime.client.core_client import CoreClient
from ember._runtime.client.records import _Placeholder
from ember._runtime.task_context import TaskContext
from ember._runtime.worker.actor_host import EXITED, SPECIAL_METHODS, ActorHost, method_of
from ember._runtime.worker.answers import TaskDone, error_bytes, send_through_cancels
from ember._runtime.worker.output import flush_output, install_output
from ember._runtime.worker.streams import Streams
from ember._runtime.worker.title import RETITLE_SECONDS, TITLE
from ember._transport.reactor import Connection, Reactor, local_address
from ember._transport.rpc import refuse

# Tasks that may wait in get/wait at once in one worker process, each on its own executor
# thread (EMBER_MAX_BLOCKED_TASKS). Past it a get raises instead of blocking: thousands of
# threads and leases in one process slow every nested call down (each submit costs in
# proportion to the leases its process holds) and near the system's limit of threads.
MAX_BLOCKED_TASKS = 4000


class Slot:
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
        self.pid = os.getpid()  # (for the task events' answers)
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
        self.main_slot = Slot(self, main=True)
        self.idle: list[Slot] = [self.main_slot]
        self.slots_lock = threading.Lock()
        self.by_task: dict[bytes, tuple[Slot | None, TaskContext]] = {}
        self.lease_runs: dict[int, _LeaseRun] = {}
        self.blocked = 0  # tasks of leases blocked in get/wait, under slots_lock
        self.max_blocked = _max_blocked_tasks()
        self.host = ActorHost(self)
        self.streams = Streams(self.return_value, self.failure)
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
        install_output(self.client)
        signal.signal(signal.SIGINT, _on_sigint)
        TITLE.on_busy = lambda: self.reactor.call_later(RETITLE_SECONDS, self._retitle)

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
        if not self.host.actor_id and not TITLE.idle():
            self.reactor.call_later(RETITLE_SECONDS, self._retitle)

    # ------------------------------------------------------------------ dispatch

    def dispatch(self, conn: Connection, msg: m.PushTask) -> None:
        """Reactor thread: route a pushed task (of a lease: not an actor call, which goes to
        ``host.dispatch``) to where it runs."""
        ctx = task_context.of_push(msg)
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

    def _take_slot(self, run: _LeaseRun) -> Slot:
        """Under slots_lock: an executor for one more drainer of ``run``."""
        run.drainers += 1
        return self.idle.pop() if self.idle else Slot(self, main=False)

    def _drain(self, slot: Slot, lease_id: int, run: _LeaseRun) -> None:
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
            send_through_cancels(conn, done)
            if last:  # (the last task running here has been answered)
                self.reactor.call_soon(self._exit_when_sent)
            if item is None:
                return

    def _drainer_done(self, slot: Slot, lease_id: int, run: _LeaseRun) -> None:
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
        """Reactor thread, in a retired worker: end the process once its answers (and its
        last metrics and task events) are out."""
        self.client.report_metrics()
        self.client.flush_events()
        if not all(conn.sent() for conn in self.reactor.connections()):
            self.reactor.call_later(0.01, self._exit_when_sent)
            return
        flush_output()
        os._exit(0)

    def caller_message(self, conn: Connection[None], msg: m.Message) -> None:
        """From a process that pushes tasks here, or a node that placed its actor here."""
        if isinstance(msg, m.PushTask):
            if msg.actor_id:
                self.host.dispatch(conn, msg)
            else:
                self.dispatch(conn, msg)
        elif isinstance(msg, m.StartActor):  # from a node that placed its actor here
            self.main_slot.queue.put(lambda: self.host.start(msg, conn))
        elif isinstance(msg, m.TakeBackTasks):
            conn.send(m.Reply(rid=msg.rid, value=self.take_back(msg.lease_id, msg.task_ids)))
        elif isinstance(msg, m.GeneratorConsumed):
            self.streams.taken(msg.task_id, msg.consumed)
        elif isinstance(msg, m.CancelTask):
            if msg.recursive:
                self.client.cancel_children(msg.task_id, msg.force)
            self.cancel(msg.task_id, msg.force)
        else:
            refuse(conn, msg, "a worker")

    def caller_closed(self, conn: Connection[None]) -> None:
        """Nothing here is kept per caller (its node stops the workers that ran for a caller
        that is gone), but a generator task paused for it goes on."""
        self.streams.caller_gone(conn)

    def on_node_message(self, conn: Connection[None], msg: m.Message) -> None:
        """What the core client does not take from its node is for the worker."""
        if isinstance(msg, m.StartActor):
            self.main_slot.queue.put(lambda: self.host.start(msg, self.client.node))
        elif isinstance(msg, m.FlushOutput):  # (after every line already sent, on this conn)
            self.client.node.send(m.Reply(rid=msg.rid))
        else:
            refuse(conn, msg, "a worker")

    def execute(
        self, conn: Connection, msg: m.PushTask, ctx: TaskContext, slot: Slot | None
    ) -> m.TaskDone | None:
        """Run a task or actor call; None: the call asked its actor to exit (no answer)."""
        started = time()
        token = task_context.current.set(ctx)
        results: list[ReturnValue] | None = None
        if slot is not None:
            slot.running = ctx
        if not msg.actor_id:
            TITLE.enter(msg.name)
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
                self.streams.stream(conn, msg, ctx, value)
                value = None  # (its return value only says it is over)
            elif ctx.cancelled and msg.actor_id:  # it ran on (see cancel): its caller is told
                raise exc.TaskCancelledError(ctx.task_id.hex())
            results = self.pack(msg, ctx, value)
        except task_context.ActorExit:
            self.host.exit_requested(EXITED.format(msg.name))
        except SystemExit as e:
            self.host.system_exit(msg, e)
        except BaseException as e:  # every failure goes back to the caller
            results = self.failure(msg, ctx, e)
        finally:
            if slot is not None:
                slot.running = None
            if not msg.actor_id:
                TITLE.leave()
                if self.calls.limits and self.calls.ran(msg.fn_id):
                    with self.slots_lock:
                        self.retiring = True
            task_context.current.reset(token)
            self.by_task.pop(msg.task_id, None)
            flush_output()
        if results is None:
            return None
        return TaskDone(
            task_id=msg.task_id,
            results=results,
            retiring=self.retiring,
            ran=(started, time(), self.pid, self.worker_id),
        )

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
            if name in SPECIAL_METHODS:
                fn = self.host.special(name)
            else:
                fn = method_of(self.host.instance, name)
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

    def pack(self, msg: m.PushTask, ctx: TaskContext, value: Any) -> list[ReturnValue]:
        n = msg.num_returns
        if n > 0 and inspect.isgenerator(value):
            return self.streams.pack_yielded(msg, ctx, value)
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
            if ctx.function is not None and not ctx.forced and (not msg.actor_id or self.host.loop):
                # Interrupted in its own code (a sync actor's call never is; a forced cancel
                # kills its process): as in Ray, the caller gets the cancel as the task's
                # error, RayTaskError(TaskCancelledError).
                err = exc.RayTaskError.from_exception(
                    err.with_traceback(error.__traceback__),
                    msg.name,
                    actor_repr=self.host.name or None,
                )
        elif isinstance(error, exc.RayTaskError | exc.RuntimeEnvSetupError):
            err = error  # raised by a get() inside this task, or not its code: pass it on
        else:
            err = exc.RayTaskError.from_exception(
                error, msg.name, actor_repr=self.host.name or None
            )
        return [ReturnValue(ERROR, error_bytes(err, msg.name))] * max(1, msg.num_returns)

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
        self.streams.wake(task_id)
        if self.host.loop is not None:
            self.host.cancel_async(task_id)
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


def _on_sigint(signum: int, frame: Any) -> None:
    ctx = task_context.current.get()
    if ctx is not None and ctx.cancelled:
        raise exc.TaskCancelledError(ctx.task_id.hex())


def main(
    argv: list[str], token: str | None = None, runtime_env: str = "", setup_error: str = ""
) -> None:
    """Run a worker; the node manager forks and calls this, handing over the cluster's
    ``token`` in memory (the environment would pass it on to the tasks' subprocesses).
    ``runtime_env``: the env it serves, set up here unless ``setup_error`` says it failed."""
    proctitle.show(TITLE.IDLE)
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
