"""``init(local_mode=True)``: every task and actor call runs in the driver, at once, in order.

It keeps the API's semantics (values are copied through serialization, errors surface at
``get`` as RayTaskError, refs resolve in arguments) so a program behaves as it would on a node,
but a debugger's breakpoints in remote code work and tracebacks are local. An option that needs
other processes (``max_calls``, a runtime_env beyond ``env_vars``, label selectors, placement
groups) is refused by name rather than ignored.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import inspect
import os
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any, NoReturn

from ember import exceptions as exc
from ember._core import runtime_env as renv
from ember._core.retry import should_retry_error
from ember._protocol import ids
from ember._protocol.messages import DYNAMIC, NamedActorEntry
from ember._runtime import serialization, task_context
from ember._runtime.object_ref import ObjectRef, check_wait_args
from ember._runtime.object_ref_generator import DynamicObjectRefGenerator
from ember._runtime.task_context import HostedActor, TaskContext


class LocalRuntime:
    def __init__(
        self, resources: dict[str, float], namespace: str, job_env: dict[str, Any] | None = None
    ) -> None:
        """``job_env``: ``init(runtime_env=...)``, checked; its ``env_vars`` apply to every
        call, as the job's env does to every worker."""
        self.runtime_env = renv.canonical(job_env or {})  # the running call's (see _calling)
        _check_env(self.runtime_env, "the job")
        self.resources = resources
        self.namespace = namespace
        self.client_id = ids.random_id()
        self.job_id = ids.random_id(4)
        self.node_id = ids.random_id(16)
        self._values: dict[bytes, tuple[bool, bytes]] = {}  # id -> (is_error, data)
        self._functions: dict[bytes, Any] = {}
        self._actors: dict[bytes, Any] = {}
        # Each live actor's context for its calls, and the runtime_env it was created with.
        self._hosted: dict[bytes, tuple[HostedActor, str]] = {}
        self._running: collections.Counter[bytes] = collections.Counter()  # calls in flight
        self._dead: dict[bytes, str] = {}
        self._names: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        self._loop: Any = None  # an asyncio loop, made for the first async method
        # Generator tasks' items not handed out yet, by task id (each task ran to its end).
        self._streams: dict[bytes, collections.deque[ObjectRef[Any]]] = {}

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()

    # references are plain Python objects here: nothing to count
    def add_local_ref(self, object_id: bytes, owner_id: bytes) -> None:
        pass

    def remove_local_ref(self, object_id: bytes) -> None:
        pass

    def ref_serialized(self, object_id: bytes, owner_id: bytes) -> None:
        pass

    add_actor_ref = add_local_ref

    def actor_ref_serialized(self, actor_id: bytes) -> None:
        pass

    def export_function(self, fn_id: bytes, data: Any, obj: Any = None) -> None:
        if getattr(obj, "max_calls", 0):  # (a CallLimited: see remote_function)
            _refuse(
                f"max_calls={obj.max_calls} (of {obj.function.__qualname__}; a function with "
                "num_gpus gets max_calls=1 unless it sets max_calls=0), which retires a worker "
                "process"
            )
        self._functions[fn_id] = obj

    # ------------------------------------------------------------------ objects

    def _store(self, oid: bytes, value: Any, error: bool = False) -> ObjectRef[Any]:
        self._values[oid] = (error, serialization.dumps(value))
        return ObjectRef(oid, self.client_id, self)

    def put(self, value: Any) -> ObjectRef[Any]:
        return self._store(ids.put_object_id(), value)

    def _value(self, ref: ObjectRef[Any]) -> Any:
        error, data = self._values[ref._id]
        value = serialization.loads(data)
        if error:
            raise value.as_instanceof_cause() if isinstance(value, exc.RayTaskError) else value
        return value

    def get(self, refs: list[ObjectRef[Any]], timeout: float | None = None) -> list[Any]:
        for ref in refs:
            if ref._id not in self._values:
                raise exc.GetTimeoutError(f"{ref!r} will never be ready in local mode")
        return [self._value(ref) for ref in refs]

    def wait(
        self, refs: list[ObjectRef[Any]], num_returns: int, timeout: float | None, fetch_local: bool
    ) -> tuple[list[ObjectRef[Any]], list[ObjectRef[Any]]]:
        check_wait_args(refs, num_returns, False)
        ready = [r for r in refs if r._id in self._values][:num_returns]
        return ready, [r for r in refs if r not in ready]

    def future_of(self, ref: ObjectRef[Any]) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(self._value(ref))
        except BaseException as e:  # delivered through the future
            fut.set_exception(e)
        return fut

    def cancel(self, ref: ObjectRef[Any], force: bool, recursive: bool = True) -> None:
        pass  # every task has already finished

    # ------------------------------------------------------------------ tasks

    def _resolve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        def one(v: Any) -> Any:
            return self._value(v) if isinstance(v, ObjectRef) else v

        return tuple(one(a) for a in args), {k: one(v) for k, v in kwargs.items()}

    @contextlib.contextmanager
    def _calling(
        self, task_id: bytes, name: str, env: str, actor: HostedActor | None = None
    ) -> Iterator[None]:
        """The context a call runs in: its task context, its actor (for exit_actor and
        get_runtime_context()), its runtime_env's env_vars in os.environ (and as the env its
        own tasks inherit); all put back afterwards, since the driver goes on."""
        actor_id = actor.actor_id if actor is not None else b""
        token = task_context.current.set(
            TaskContext(task_id, name, self.job_id, self.namespace, 0, actor_id)
        )
        outer_actor, task_context.actor = task_context.actor, actor
        outer_env, self.runtime_env = self.runtime_env, env
        env_vars = renv.parse(env).get("env_vars") or {}
        saved = {k: os.environ.get(k) for k in env_vars}
        os.environ.update(env_vars)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            self.runtime_env = outer_env
            task_context.actor = outer_actor
            task_context.current.reset(token)

    def _run(
        self,
        fn: Any,
        name: str,
        args: Any,
        kwargs: Any,
        num_returns: int,
        env: str,
        actor: HostedActor | None = None,
        retries: int = 0,
        retry_exceptions: Any = False,
    ) -> list[ObjectRef[Any]]:
        """Run one call; an error its ``retry_exceptions`` match runs it again while
        ``retries`` (-1 for ever) allow (a generator's error is one of its items, not retried)."""
        task_id = ids.new_task_id()
        returns = num_returns if num_returns >= 0 else 1  # (a generator task's: when it ends)
        oids = [ids.return_object_id(task_id, i + 1) for i in range(returns)]
        with self._calling(task_id, name, env, actor):
            try:
                args, kwargs = self._resolve(args, kwargs)
                while True:
                    try:
                        value = fn(*args, **kwargs)
                        if num_returns < 0:
                            return [self._generate(task_id, name, value, num_returns)]
                        value = self._await(value)
                        break
                    except Exception as e:
                        retry = should_retry_error(retry_exceptions, functools.partial(_same, e))
                        if not retry or retries == 0 or isinstance(e, exc.AsyncioActorExit):
                            raise
                        retries -= 1
                one = num_returns == 1 and not inspect.isgenerator(value)
                values = [value] if one else list(value) if num_returns else []
                if len(values) != num_returns:
                    raise ValueError(f"{name!r} declared num_returns={num_returns}")
            except (task_context.ActorExit, exc.AsyncioActorExit):
                if actor is None:
                    raise
                self._end_actor(actor.actor_id, "it called exit_actor()")
                dead = self._actor_died(actor.actor_id, actor.class_name)
                return [self._store(oid, dead, error=True) for oid in oids]
            except Exception as e:  # stored, raised at get()
                refs = [self._store(oid, _task_error(e, name), error=True) for oid in oids]
                if num_returns < 0:
                    self._streams[task_id] = collections.deque(refs)
                return refs
        return [self._store(oid, v) for oid, v in zip(oids, values, strict=True)]

    def _await(self, value: Any) -> Any:
        if inspect.isawaitable(value):
            if self._loop is None:
                import asyncio

                self._loop = asyncio.new_event_loop()
            value = self._loop.run_until_complete(value)
        return value

    def _generate(self, task_id: bytes, name: str, gen: Any, num_returns: int) -> ObjectRef[Any]:
        """Run a generator task to its end; its items are return objects 2, 3..."""
        items: list[ObjectRef[Any]] = []
        try:
            if inspect.isasyncgen(gen):
                gen = self._await(_collect(gen))
            for value in gen:
                items.append(self._store(ids.return_object_id(task_id, len(items) + 2), value))
        except Exception as e:  # the task's error is its last item
            oid = ids.return_object_id(task_id, len(items) + 2)
            items.append(self._store(oid, _task_error(e, name), error=True))
        done = ids.return_object_id(task_id, 1)
        if num_returns == DYNAMIC:
            return self._store(done, DynamicObjectRefGenerator(items))
        self._streams[task_id] = collections.deque(items)
        return self._store(done, None)

    def stream_next(self, ref: ObjectRef[Any], timeout: float | None) -> ObjectRef[Any] | None:
        items = self._streams.get(ids.task_of(ref._id))
        return items.popleft() if items else None

    def stream_peek(self, ref: ObjectRef[Any]) -> ObjectRef[Any] | None:
        items = self._streams.get(ids.task_of(ref._id))
        return items[0] if items else None

    def stream_drop(self, ref: ObjectRef[Any]) -> None:
        self._streams.pop(ids.task_of(ref._id), None)

    def submit_task(
        self,
        fn_id: bytes,
        args: Any,
        kwargs: Any,
        *,
        num_returns: int,
        name: str,
        max_retries: int = 0,
        retry_exceptions: Any = False,
        strategy: Any = None,
        runtime_env: str = "",
        **_: Any,  # (resources: one call at a time, nothing competes; task events, backpressure)
    ) -> list[ObjectRef[Any]]:
        _check_placement(strategy, f"task {name}")
        _check_env(runtime_env, f"task {name}")
        fn = self._functions[fn_id]
        return self._run(
            fn, name, args, kwargs, num_returns, runtime_env, None, max_retries, retry_exceptions
        )

    # ------------------------------------------------------------------ actors

    def create_actor(
        self,
        fn_id: bytes,
        args: Any,
        kwargs: Any,
        *,
        class_name: str,
        options: dict[str, Any],
        handle_meta: bytes,
        runtime_env: str = "",
        **_: Any,  # (its resources: nothing is reserved here)
    ) -> tuple[bytes, bool]:
        what = f"actor {class_name}"
        _check_placement(options.get("scheduling_strategy"), what)
        if options.get("label_selector"):
            _refuse(f"label_selector (of {what}), which chooses among nodes,")
        _check_env(runtime_env, what)
        name = options.get("name")
        namespace = options.get("namespace") or self.namespace
        if name is not None and (namespace, name) in self._names:
            if options.get("get_if_exists"):
                return self._names[(namespace, name)][0], False
            raise exc.ActorAlreadyExistsError(
                f"The name {name!r} (namespace={namespace!r}) is already taken."
            )
        actor_id = ids.new_actor_id()
        meta = serialization.loads(handle_meta)
        is_async = any(m["is_async"] for m in meta["methods"].values())
        hosted = HostedActor(
            actor_id, class_name, name or "", handle_meta, self.client_id, 0, is_async
        )
        if name is not None:
            self._names[(namespace, name)] = (actor_id, handle_meta)
        self._hosted[actor_id] = (hosted, runtime_env)
        cls = self._functions[fn_id]
        with self._calling(ids.new_task_id(), f"{class_name}.__init__", runtime_env, hosted):
            try:
                args, kwargs = self._resolve(args, kwargs)
                if inspect.iscoroutinefunction(cls.__init__):  # (allowed, as in Ray)
                    instance = cls.__new__(cls)
                    self._await(instance.__init__(*args, **kwargs))
                else:
                    instance = cls(*args, **kwargs)
                self._actors[actor_id] = instance
            except (task_context.ActorExit, exc.AsyncioActorExit):
                self._end_actor(actor_id, "it called exit_actor() in __init__")
            except Exception as e:  # reported on every call, as on a node
                err = exc.RayTaskError.from_exception(e, f"{class_name}.__init__")
                self._end_actor(actor_id, str(err), forget_name=False)
        return actor_id, True

    def _actor_died(self, actor_id: bytes, class_name: str) -> exc.ActorDiedError:
        return exc.ActorDiedError(
            self._dead.get(actor_id, "it was killed"),
            actor_id=actor_id.hex(),
            class_name=class_name,
        )

    def submit_actor_task(
        self,
        actor_id: bytes,
        class_name: str,
        method: str,
        args: Any,
        kwargs: Any,
        *,
        num_returns: int,
        max_task_retries: int = 0,
        retry_exceptions: Any = False,
        max_pending_calls: int = -1,
        **_: Any,  # (task events, backpressure; concurrency groups: calls run one at a time)
    ) -> list[ObjectRef[Any]]:
        instance = self._actors.get(actor_id)
        if instance is None:
            err = self._actor_died(actor_id, class_name)
            task_id = ids.new_task_id()
            return [
                self._store(ids.return_object_id(task_id, i + 1), err, error=True)
                for i in range(max(1, num_returns))
            ]
        if 0 <= max_pending_calls <= self._running[actor_id]:
            raise exc.PendingCallsLimitExceeded(
                f"{class_name}.{method} could not be submitted to actor {actor_id.hex()}: "
                f"{max_pending_calls} calls to it are running already (its max_pending_calls; "
                "in local mode a call is pending only while it runs, as when a method calls "
                "its own actor). Raise max_pending_calls in the actor's options."
            )
        if method == "__ray_ready__":
            fn: Any = lambda: True
        elif method == "__ray_terminate__":
            fn = lambda: self.kill_actor(actor_id, True)
        elif method == "__ray_call__":
            fn = lambda call, *a, **kw: call(instance, *a, **kw)
        else:
            fn = getattr(instance, method)
        hosted, env = self._hosted[actor_id]
        self._running[actor_id] += 1
        try:
            return self._run(
                fn,
                method,
                args,
                kwargs,
                num_returns,
                env,
                hosted,
                max_task_retries,
                retry_exceptions,
            )
        finally:
            self._running[actor_id] -= 1

    def kill_actor(self, actor_id: bytes, no_restart: bool, class_name: str = "") -> None:
        if actor_id in self._actors:
            self._end_actor(actor_id, "it was killed by ember.kill()")

    def _end_actor(self, actor_id: bytes, why: str, forget_name: bool = True) -> None:
        """The actor is dead from now on: each later call fails with ActorDiedError."""
        self._actors.pop(actor_id, None)
        self._hosted.pop(actor_id, None)
        self._dead[actor_id] = why
        if forget_name:
            for key, (aid, _) in list(self._names.items()):
                if aid == actor_id:
                    del self._names[key]

    def actor_handle_meta(self, name: str, namespace: str | None) -> tuple[bytes, bytes, bytes]:
        found = self._names.get((namespace or self.namespace, name))
        if found is None:
            raise ValueError(f"Failed to look up actor with name {name!r}")
        return found[0], found[1], b""

    def named_actors(self, all_namespaces: bool) -> list[NamedActorEntry]:
        return [
            NamedActorEntry(name, ns)
            for ns, name in self._names
            if all_namespaces or ns == self.namespace
        ]

    def cluster_info(self) -> dict[str, Any]:
        node = {
            "node_id": self.node_id,
            "host": "127.0.0.1",
            "address": "",
            "total": dict(self.resources),
            "available": dict(self.resources),
            "alive": True,
        }
        return {**node, "nodes": [node]}

    def this_node(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "host": "127.0.0.1", "local_address": "", "labels": {}}


def _refuse(what: str) -> NoReturn:
    raise ValueError(
        f"{what} is not supported in local mode, which runs every call in the driver's "
        "process, one at a time: run without local_mode=True to use it."
    )


def _check_placement(strategy: Any, what: str) -> None:
    """Local mode's one "node" is the driver: placement groups and label selectors (which
    choose among nodes) cannot be honoured there; SPREAD and node affinity hold trivially."""
    if isinstance(strategy, list) and strategy[0] == "labels":
        _refuse(f"label_selector (of {what}), which chooses among nodes,")
    if hasattr(strategy, "placement_group"):
        _refuse(f"A placement group (scheduling_strategy of {what})")


def _check_env(env: str, what: str) -> None:
    """Of a runtime_env, only ``env_vars`` can be had in the driver's own process."""
    others = sorted(set(renv.parse(env)) - {"env_vars"})
    if others:
        _refuse(
            f"runtime_env field(s) {', '.join(others)} (of {what}), which need a worker process,"
        )


def _same(e: BaseException) -> BaseException:
    return e


def _task_error(e: Exception, name: str) -> exc.RayTaskError:
    if isinstance(e, exc.RayTaskError):
        return e
    return exc.RayTaskError.from_exception(e, name, pid=os.getpid())


async def _collect(gen: Any) -> list[Any]:
    return [item async for item in gen]
