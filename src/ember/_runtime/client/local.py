"""``init(local_mode=True)``: every task and actor call runs in the driver, at once, in order.

It keeps the API's semantics (values are copied through serialization, errors surface at
``get`` as RayTaskError, refs resolve in arguments) so a program behaves as it would on a node,
but a debugger's breakpoints in remote code work and tracebacks are local.
"""

from __future__ import annotations

import collections
import inspect
import os
from concurrent.futures import Future
from typing import Any

from ember import exceptions as exc
from ember._protocol import ids
from ember._protocol.messages import DYNAMIC
from ember._runtime import serialization, task_context
from ember._runtime.object_ref import ObjectRef, check_wait_args
from ember._runtime.object_ref_generator import DynamicObjectRefGenerator
from ember._runtime.task_context import TaskContext


class LocalRuntime:
    def __init__(self, resources: dict[str, float], namespace: str) -> None:
        self.resources = resources
        self.namespace = namespace
        self.client_id = ids.random_id()
        self.job_id = ids.random_id(4)
        self.node_id = ids.random_id(16)
        self.runtime_env = ""  # (local mode runs everything in this process, as it is)
        self._values: dict[bytes, tuple[bool, bytes]] = {}  # id -> (is_error, data)
        self._functions: dict[bytes, Any] = {}
        self._actors: dict[bytes, Any] = {}
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

    def _run(
        self, fn: Any, name: str, args: Any, kwargs: Any, num_returns: int, actor_id: bytes = b""
    ) -> list[ObjectRef[Any]]:
        task_id = ids.new_task_id()
        returns = num_returns if num_returns >= 0 else 1  # (a generator task's: when it ends)
        oids = [ids.return_object_id(task_id, i + 1) for i in range(returns)]
        token = task_context.current.set(
            TaskContext(task_id, name, self.job_id, self.namespace, 0, actor_id)
        )
        try:
            args, kwargs = self._resolve(args, kwargs)
            value = fn(*args, **kwargs)
            if num_returns < 0:
                return [self._generate(task_id, name, value, num_returns)]
            value = self._await(value)
            one = num_returns == 1 and not inspect.isgenerator(value)
            values = [value] if one else list(value) if num_returns else []
            if len(values) != num_returns:
                raise ValueError(f"{name!r} declared num_returns={num_returns}")
        except Exception as e:  # stored, raised at get()
            refs = [self._store(oid, _task_error(e, name), error=True) for oid in oids]
            if num_returns < 0:
                self._streams[task_id] = collections.deque(refs)
            return refs
        finally:
            task_context.current.reset(token)
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
        self, fn_id: bytes, args: Any, kwargs: Any, *, num_returns: int, name: str, **_: Any
    ) -> list[ObjectRef[Any]]:
        return self._run(self._functions[fn_id], name, args, kwargs, num_returns)

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
        **_: Any,
    ) -> tuple[bytes, bool]:
        name = options.get("name")
        namespace = options.get("namespace") or self.namespace
        if name is not None and (namespace, name) in self._names:
            if options.get("get_if_exists"):
                return self._names[(namespace, name)][0], False
            raise exc.ActorAlreadyExistsError(
                f"The name {name!r} (namespace={namespace!r}) is already taken."
            )
        actor_id = ids.new_actor_id()
        args, kwargs = self._resolve(args, kwargs)
        try:
            self._actors[actor_id] = self._functions[fn_id](*args, **kwargs)
        except Exception as e:  # reported on every call, as on a node
            err = exc.RayTaskError.from_exception(e, f"{class_name}.__init__")
            self._dead[actor_id] = str(err)
        if name is not None:
            self._names[(namespace, name)] = (actor_id, handle_meta)
        return actor_id, True

    def submit_actor_task(
        self,
        actor_id: bytes,
        class_name: str,
        method: str,
        args: Any,
        kwargs: Any,
        *,
        num_returns: int,
        **_: Any,
    ) -> list[ObjectRef[Any]]:
        instance = self._actors.get(actor_id)
        if instance is None:
            err = exc.ActorDiedError(
                self._dead.get(actor_id, "it was killed"),
                actor_id=actor_id.hex(),
                class_name=class_name,
            )
            task_id = ids.new_task_id()
            return [
                self._store(ids.return_object_id(task_id, i + 1), err, error=True)
                for i in range(max(1, num_returns))
            ]
        if method == "__ray_ready__":
            fn: Any = lambda: True
        elif method == "__ray_terminate__":
            fn = lambda: self.kill_actor(actor_id, True)
        elif method == "__ray_call__":
            fn = lambda call, *a, **kw: call(instance, *a, **kw)
        else:
            fn = getattr(instance, method)
        return self._run(fn, method, args, kwargs, num_returns, actor_id)

    def kill_actor(self, actor_id: bytes, no_restart: bool, class_name: str = "") -> None:
        if self._actors.pop(actor_id, None) is not None:
            self._dead[actor_id] = "it was killed by ember.kill()"
        for key, (aid, _) in list(self._names.items()):
            if aid == actor_id:
                del self._names[key]

    def actor_handle_meta(self, name: str, namespace: str | None) -> tuple[bytes, bytes, bytes]:
        found = self._names.get((namespace or self.namespace, name))
        if found is None:
            raise ValueError(f"Failed to look up actor with name {name!r}")
        return found[0], found[1], b""

    def named_actors(self, all_namespaces: bool) -> list[dict[str, str]]:
        return [
            {"name": name, "namespace": ns}
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


def _task_error(e: Exception, name: str) -> exc.RayTaskError:
    if isinstance(e, exc.RayTaskError):
        return e
    return exc.RayTaskError.from_exception(e, name, pid=os.getpid())


async def _collect(gen: Any) -> list[Any]:
    return [item async for item in gen]
