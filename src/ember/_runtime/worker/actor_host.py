"""The actor a worker process hosts: its construction, how its calls run and its exit.

A plain actor's calls run one at a time in arrival order on the worker's main slot, a
threaded one's (``max_concurrency`` > 1) on a thread pool and an async one's (any ``async
def`` method) on an asyncio event loop. With concurrency groups, each call starts when
``_core.concurrency_groups`` admits it, on the pool or on its group's loop. ``exit_actor()``
(or ``sys.exit()``) lets no other call start and ends the actor once those running have.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import threading
from time import time
from typing import TYPE_CHECKING, Any

from ember import exceptions as exc
from ember._core.concurrency_groups import GroupAdmission
from ember._protocol import ids
from ember._protocol import messages as m
from ember._protocol.messages import ReturnValue
from ember._runtime import proctitle, serialization, task_context
from ember._runtime.task_context import TaskContext
from ember._runtime.worker.answers import TaskDone, error_bytes, send_through_cancels
from ember._runtime.worker.output import (
    OUTPUT_NAME,
    exit_as_asked,
    exit_process,
    flush_output,
    short,
)
from ember._runtime.worker.title import Title
from ember._transport.reactor import Connection

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from ember._runtime.worker.worker import Slot, Worker

SPECIAL_METHODS = {"__ray_ready__", "__ray_terminate__", "__ray_call__"}
EXITED = "it exited intentionally: exit_actor() was called in {}"  # the node's reason
SYS_EXITED = "it exited intentionally: sys.exit() was called in {}"


class ActorHost:
    """The hosted actor's state; calls run through the worker's ``execute`` (sync) or on
    the actor's loop (async), and are answered from here."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.instance: Any = None
        self.actor_id = b""
        self.name = ""
        self.gpu_ids: list[int] = []
        self.resources: dict[str, float] | None = None
        self.captures = False  # its placement group takes the tasks it starts
        self.pool: ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # An async actor's concurrency groups other than the default one: a loop each, on a
        # thread of its own, as in Ray (so a method that blocks its loop holds up only its group).
        self.group_loops: dict[str, asyncio.AbstractEventLoop] = {}
        self.async_sem: asyncio.Semaphore | None = None
        self.async_tasks: dict[bytes, asyncio.Task[Any]] = {}  # an async actor's calls
        self.lock = threading.Lock()
        # With concurrency groups: which calls may start (under lock, or on the loop).
        self.admission: GroupAdmission[Any] | None = None
        self.running_calls = 0  # actor calls running, under lock
        self.exiting = ""  # why the actor ends once its running calls have (exit_actor)

    # ------------------------------------------------------------------ calls

    def dispatch(self, conn: Connection, msg: m.PushTask) -> None:
        """Reactor thread: route a call to where it runs."""
        ctx = task_context.of_push(msg, self.gpu_ids, self.resources, self.captures)
        by_task = self.worker.by_task
        if self.loop is not None:
            by_task[msg.task_id] = (None, ctx)
            loop = self.group_loops.get(msg.concurrency_group, self.loop)
            loop.call_soon_threadsafe(self._start_async, loop, conn, msg, ctx)
            return
        if self.pool is not None:
            by_task[msg.task_id] = (None, ctx)
            if self.admission is None:
                self.pool.submit(self.run, conn, msg, ctx, None)
                return
            with self.lock:
                start = self.admission.arrive((conn, msg, ctx), msg.concurrency_group)
            if start is not None:
                self.pool.submit(self._run_in_group, start)
            return
        slot = self.worker.main_slot
        by_task[msg.task_id] = (slot, ctx)
        slot.queue.put(lambda: self.run(conn, msg, ctx, slot))

    def run(self, conn: Connection, msg: m.PushTask, ctx: TaskContext, slot: Slot | None) -> None:
        """Run a sync actor's call and answer it, unless the actor is exiting: then a call
        does not start, and its caller learns why when the process has ended. A plain
        actor's calls run one at a time, on the main slot: only a threaded actor's are
        counted (under the lock) to know which ends last."""
        main = slot is not None
        if self.exiting if main else not self._call_started():
            self.worker.by_task.pop(msg.task_id, None)
            return
        try:
            done = self.worker.execute(conn, msg, ctx, slot)
            if done is not None:
                send_through_cancels(conn, done)
        finally:
            if not main:
                self._call_ended()
            elif self.exiting:
                self.end(self.exiting)

    def _run_in_group(self, item: tuple[Connection, m.PushTask, TaskContext]) -> None:
        """A pool thread: run an admitted call, then the calls of its group that wait."""
        group = item[1].concurrency_group
        next_item: tuple[Connection, m.PushTask, TaskContext] | None = item
        while next_item is not None:
            self.run(*next_item, None)
            with self.lock:
                assert self.admission is not None
                next_item = self.admission.done(group)

    def _start_async(
        self, loop: asyncio.AbstractEventLoop, conn: Connection, msg: m.PushTask, ctx: TaskContext
    ) -> None:
        self.async_tasks[msg.task_id] = loop.create_task(self._run_async(conn, msg, ctx))

    async def _run_async(self, conn: Connection, msg: m.PushTask, ctx: TaskContext) -> None:
        """Run an async actor's call once its group (or the actor's limit) admits it and
        answer it, unless the actor is exiting (see ``run``)."""
        task_context.current.set(ctx)
        started = False
        began = 0.0  # (when it was admitted, for the caller's task events)
        results: list[ReturnValue] | None = None
        try:
            if self.admission is None:
                assert self.async_sem is not None
                async with self.async_sem:
                    started = self._call_started()
                    if started:
                        began = time()
                        results = await self._call_async(conn, msg, ctx)
            else:
                await self._admitted(msg.concurrency_group)
                try:
                    started = self._call_started()
                    if started:
                        began = time()
                        results = await self._call_async(conn, msg, ctx)
                finally:
                    self._leave_group(msg.concurrency_group)
        except (task_context.ActorExit, exc.AsyncioActorExit):
            self.exit_requested(EXITED.format(msg.name))
        except _cancelled_error() as e:
            cancel = exc.TaskCancelledError(ctx.task_id.hex()).with_traceback(e.__traceback__)
            results = self.worker.failure(msg, ctx, cancel)
        except SystemExit as e:
            self.system_exit(msg, e)
        except BaseException as e:
            results = self.worker.failure(msg, ctx, e)
        finally:
            self.worker.by_task.pop(msg.task_id, None)
            self.async_tasks.pop(msg.task_id, None)
            flush_output()
        if results is not None:
            worker = self.worker
            ran = (began or time(), time(), worker.pid, worker.worker_id)
            conn.send(TaskDone(task_id=msg.task_id, results=results, ran=ran))
        if started:
            self._call_ended()

    async def _call_async(
        self, conn: Connection, msg: m.PushTask, ctx: TaskContext
    ) -> list[ReturnValue]:
        if ctx.cancelled:  # cancelled while it waited for the loop
            raise exc.TaskCancelledError(ctx.task_id.hex())
        worker = self.worker
        fn, args, kwargs = worker.prepare(msg)
        ctx.function = fn
        value = fn(*args, **kwargs)
        if msg.num_returns < 0:
            await worker.streams.stream_async(conn, msg, ctx, value)
            value = None
        elif inspect.isawaitable(value):
            value = await value
            if ctx.cancelled:  # it caught its CancelledError and returned: cancelled all the same
                raise exc.TaskCancelledError(ctx.task_id.hex())
        return worker.pack(msg, ctx, value)

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

    def cancel_async(self, task_id: bytes) -> None:
        """Reactor thread: cancel an async actor's call on its loop (if it has not ended)."""
        task = self.async_tasks.get(task_id)
        if task is not None:
            task.get_loop().call_soon_threadsafe(task.cancel)

    def special(self, name: str) -> Any:
        """The function behind one of ``SPECIAL_METHODS``."""
        if name == "__ray_ready__":
            return lambda: True
        if name == "__ray_call__":  # fn(actor instance, *args): Ray's way to run code there
            return lambda fn, *args, **kwargs: fn(self.instance, *args, **kwargs)

        return lambda: self.end("exited by __ray_terminate__")

    # ------------------------------------------------------------------ exit

    def _call_started(self) -> bool:
        """An actor call is about to run: False if the actor is exiting (then it does not)."""
        with self.lock:
            if self.exiting:
                return False
            self.running_calls += 1
            return True

    def _call_ended(self) -> None:
        """An actor call ended and was answered: the actor ends now if it is exiting and
        this was the last."""
        with self.lock:
            self.running_calls -= 1
            last = bool(self.exiting) and self.running_calls == 0
        if last:
            self.end(self.exiting)

    def system_exit(self, msg: m.PushTask, e: SystemExit) -> None:
        """``sys.exit()`` in a task or call, as in Ray: with status 0 in an actor, an intended
        exit (as ``exit_actor()``: no restart); otherwise the worker process ends as if it had
        crashed, so that the task is retried and the actor restarted as their options say,
        instead of the caller receiving a SystemExit that would end it in turn."""
        if msg.actor_id and not e.code:
            self.exit_requested(SYS_EXITED.format(msg.name))
            return
        exit_as_asked(e)

    def exit_requested(self, reason: str) -> None:
        """``exit_actor()`` was called: no other call starts, and the actor ends once those
        running have (as in Ray: their callers get their results, the others its death)."""
        with self.lock:
            self.exiting = self.exiting or reason

    def end(self, reason: str) -> None:
        """End the actor on purpose: the node marks it dead for good (no restart) with
        ``reason``, which the calls to it, the one that asked included, fail with; atexit
        handlers run, as with Python's own exit."""
        self.worker.client.node.send(m.ActorDone(actor_id=self.actor_id, reason=reason))
        exit_process(0)

    # ------------------------------------------------------------------ start

    def start(self, msg: m.StartActor, reply_to: Connection) -> None:
        """The main slot: construct the actor and tell the node (``reply_to``) how it went."""
        worker = self.worker
        spec = msg.spec
        began = time()
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
        self.name = spec.class_name
        proctitle.show(Title.of(self.name))
        OUTPUT_NAME[0] = short(spec.class_name)
        self.gpu_ids = list(msg.gpu_ids)
        self.resources = msg.resources
        self.captures = msg.capture_child_tasks
        if msg.gpu_ids:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, msg.gpu_ids))
        worker.size_blas(msg.resources)
        meta = serialization.loads(spec.handle_meta) if spec.handle_meta else {}
        try:
            if worker.setup_error:
                raise exc.RuntimeEnvSetupError(worker.setup_error)
            cls = worker.function(spec.fn_id)
            cls = getattr(cls, "_cls", cls)
            args, kwargs = worker.load_args(spec.blob, spec.args_ref, spec.deps, spec.owner_id)
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
            self.instance = self._construct(cls, args, kwargs)
        except BaseException as e:  # reported as the actor's death cause
            err: exc.RayError = exc.RayTaskError.from_exception(e, f"{spec.class_name}.__init__")
            if isinstance(e, exc.RuntimeEnvSetupError):
                err = e  # (raised to its callers as itself, as in Ray)
            data = error_bytes(err, f"{spec.class_name}.__init__")
            flush_output()
            reply_to.send(m.error_reply(msg.rid, m.ErrorKind.ACTOR_INIT_FAILED, str(err), data))
            return
        if any("__repr__" in vars(k) for k in type(self.instance).__mro__[:-1]):  # as in Ray
            with contextlib.suppress(Exception):
                OUTPUT_NAME[0] = repr(self.instance)
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
            worker.main_slot.queue.put(lambda: _run_loop(default_loop))
        elif self.admission is not None or (concurrency and concurrency > 1):
            from concurrent.futures import ThreadPoolExecutor

            threads = self.admission.total_limit() if self.admission else concurrency
            self.pool = ThreadPoolExecutor(threads, thread_name_prefix="ember-actor")
        flush_output()
        ran = [began, time()]
        reply_to.send(m.ActorStarted(rid=msg.rid, addr=worker.address, pid=os.getpid(), ran=ran))

    def _construct(self, cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """An instance of the actor's class; an ``async def __init__`` (an async actor's, as
        Ray allows) runs to its end on the actor's event loop first."""
        if not inspect.iscoroutinefunction(cls.__init__):
            return cls(*args, **kwargs)
        assert self.loop is not None
        instance = cls.__new__(cls)
        self.loop.run_until_complete(instance.__init__(*args, **kwargs))
        return instance


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    import asyncio

    asyncio.set_event_loop(loop)
    loop.run_forever()


_DESCRIPTORS: dict[str, tuple[type, Any]] = {}  # method name: (actor class, its attribute)


def method_of(actor: Any, name: str) -> Any:
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
