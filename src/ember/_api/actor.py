"""``@ember.remote`` on a class: ActorClass, ActorHandle and ActorMethod.

For type checkers, ``ActorClass[C]`` makes ``ActorHandle[C]``; method calls through a handle
(``handle.method.remote()``) are not typed further: they return ``Any``.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

import cloudpickle

from ember import exceptions as exc
from ember._api import options as opts_mod
from ember._api import runtime_env
from ember._api.placement_group import captures, effective_strategy, into_group
from ember._api.remote_function import is_generator_function, returns_code
from ember._api.session import runtime
from ember._core.resources import shape_of
from ember._core.signatures import checker, spec_of, unbuilt
from ember._protocol.messages import DYNAMIC, STREAMING
from ember._runtime import serialization, state, task_context
from ember._runtime.object_ref_generator import ObjectRefGenerator

if TYPE_CHECKING:
    from ember._api.dag import ClassMethodNode, ClassNode
    from ember._runtime.runtime import Runtime

_F = TypeVar("_F", bound=Callable[..., Any])
_C = TypeVar("_C")


def exit_actor() -> NoReturn:
    """End the current actor on purpose, from inside one of its methods: the call that
    asked, and every later one, fail with ``ActorDiedError``; it is not restarted."""
    actor = task_context.actor
    if actor is None:
        raise TypeError(
            "exit_actor() was called outside an actor: call it inside an actor's method to "
            "end that actor, or use ember.kill(handle) to end an actor from elsewhere."
        )
    if actor.is_async:
        raise exc.AsyncioActorExit()
    raise task_context.ActorExit(0)


def method(*args: Any, **options: Any) -> Callable[[_F], _F]:
    """Set options of one actor method: ``@ember.method(num_returns=2)``."""
    if args:
        raise TypeError("use @ember.method(num_returns=...) with keyword arguments only")
    checked = opts_mod.validate_method_options(options, in_options=False)

    def wrap(fn: _F) -> _F:
        opts_mod.check_generator_returns(
            checked.get("num_returns"), is_generator_function(fn), getattr(fn, "__qualname__", "")
        )
        fn.__ember_method_options__ = checked  # type: ignore[attr-defined]
        return fn

    return wrap


def _method_table(cls: type) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for name, fn in inspect.getmembers(cls, callable):
        if name.startswith("__") and name not in ("__call__",):
            continue
        opts = dict(getattr(fn, "__ember_method_options__", {}))
        opts["is_async"] = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        opts["is_generator"] = is_generator_function(fn)
        static = isinstance(inspect.getattr_static(cls, name, None), staticmethod)
        opts["signature"] = spec_of(fn, drop_first=not static and not inspect.ismethod(fn))
        table[name] = opts
    for special in ("__ray_ready__", "__ray_terminate__", "__ray_call__"):
        table[special] = {"is_async": False}
    return table


class ActorClass(Generic[_C]):
    """A class whose ``.remote(...)`` starts an actor process and returns its handle."""

    def __init__(self, cls: type[_C], options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = {**opts_mod.actor_defaults(), **options}
        self._name = cls.__qualname__
        self._methods = _method_table(cls)
        _check_method_groups(self._name, self._methods, self._options.get("concurrency_groups"))
        self._fn_id: bytes | None = None
        self._pickled: bytes | None = None
        self._init_check: Callable[..., None] | None = unbuilt
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__doc__ = cls.__doc__
        self.__module__ = cls.__module__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actor class {self._name!r} cannot be instantiated directly. "
            f"Use {self._name}.remote(...) instead."
        )

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle[_C]:
        return self._remote(args, kwargs, self._options)

    def bind(self, *args: Any, **kwargs: Any) -> ClassNode:
        """A node of a lazy graph that creates this actor (``ember.dag``)."""
        from ember._api.dag import ClassNode  # (not imported until a graph is made)

        return ClassNode(self, args, kwargs, self._options)

    def options(self, **options: Any) -> _BoundClass[_C]:
        checked = opts_mod.validate_actor_options(options, in_options=True)
        merged = {**self._options, **checked}
        opts_mod.validate_merged_actor_options(merged)
        return _BoundClass(self, merged)

    def _data(self) -> bytes:
        if self._pickled is None:
            self._pickled = cloudpickle.dumps(self._cls)
        return self._pickled

    def _remote(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> ActorHandle[_C]:
        if self._init_check is unbuilt:
            self._init_check = checker(spec_of(self._cls), f"{self._name}.__init__")
        if self._init_check is not None:
            self._init_check(*args, **kwargs)  # a TypeError here, in the caller, as in Ray
        rt = runtime()
        if self._fn_id is None:
            self._fn_id = hashlib.blake2b(self._data(), digest_size=16).digest()
        rt.export_function(self._fn_id, self._data, self._cls)
        is_async = any(m["is_async"] for m in self._methods.values())
        max_concurrency = options.get("max_concurrency") or (1000 if is_async else 1)
        options = {**options, "max_concurrency": max_concurrency}
        request = opts_mod.resources_from_options(options, default_num_cpus=0)
        shape = shape_of(request)
        strategy = effective_strategy(options)
        if strategy is not options.get("scheduling_strategy"):
            options = {**options, "scheduling_strategy": strategy}
        if hasattr(strategy, "placement_group"):
            placed = shape
            if options.get("num_cpus") is None:  # placed as needing 1 CPU, as in Ray
                placed = shape_of({**request, "CPU": 1})
            shape = into_group(strategy, shape, f"actor {self._name}", placed)
        meta = {
            "class_name": self._name,
            "methods": self._methods,
            "max_task_retries": options.get("max_task_retries") or 0,
            "max_pending_calls": options.get("max_pending_calls", -1),
            "enable_task_events": options.get("enable_task_events", True),
            # (read by the actor's own process: its runtime context and concurrency groups)
            "name": options.get("name") or "",
            "concurrency_groups": _group_limits(options.get("concurrency_groups")),
        }
        actor_id, created = rt.create_actor(
            self._fn_id,
            args,
            kwargs,
            class_name=self._name,
            shape=shape,
            options=options,
            handle_meta=serialization.dumps(meta),
            runtime_env=runtime_env.for_call(rt, options.get("runtime_env")),
            capture_child_tasks=captures(strategy),
        )
        # A handle to an actor that already existed (get_if_exists) is borrowed, not owned.
        return ActorHandle(actor_id, meta, rt.client_id if created else b"", rt)

    def __reduce__(self) -> tuple[Any, ...]:
        # The method table travels too: while cloudpickle rebuilds a class that refers to
        # itself, the class is still an empty skeleton when this is unpickled.
        return (_rebuild_class, (self._cls, self._options, self._methods, self._fn_id))

    def __repr__(self) -> str:
        return f"<ActorClass {self._name}>"


def _group_limits(groups: Any) -> dict[str, int]:
    """``concurrency_groups`` as a dict: a list of names gives each a limit of 1."""
    if not groups:
        return {}
    return dict(groups) if isinstance(groups, dict) else dict.fromkeys(groups, 1)


def _check_method_groups(class_name: str, methods: dict[str, Any], groups: Any) -> None:
    limits = _group_limits(groups)
    for name, opts in methods.items():
        group = opts.get("concurrency_group")
        if group is not None and group not in limits:
            raise ValueError(
                f"Method {class_name}.{name} is in concurrency group {group!r}, which the "
                f"class does not define; add it to @remote(concurrency_groups=...) "
                f"(defined: {sorted(limits) or 'none'})."
            )


def _rebuild_class(
    cls: type[_C], options: dict[str, Any], methods: dict[str, Any], fn_id: bytes | None
) -> ActorClass[_C]:
    actor_class: ActorClass[_C] = ActorClass.__new__(ActorClass)
    actor_class._cls = cls
    actor_class._options = options
    actor_class._name = methods.get("__qualname__", {}).get("name", "") or cls.__qualname__
    actor_class._methods = methods
    actor_class._fn_id = fn_id
    actor_class._pickled = None
    actor_class._init_check = unbuilt
    actor_class.__name__ = actor_class.__qualname__ = actor_class._name
    return actor_class


class _BoundClass(Generic[_C]):
    def __init__(self, cls: ActorClass[_C], options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = options

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle[_C]:
        return self._cls._remote(args, kwargs, self._options)

    def bind(self, *args: Any, **kwargs: Any) -> ClassNode:
        from ember._api.dag import ClassNode

        return ClassNode(self._cls, args, kwargs, self._options)


class ActorHandle(Generic[_C]):
    """A reference to a running actor; its methods are called with ``.method.remote(...)``."""

    def __init__(
        self, actor_id: bytes, meta: dict[str, Any], owner_id: bytes, rt: Runtime | None
    ) -> None:
        self._actor_id = actor_id
        self._meta = meta
        self._owner = owner_id
        self._rt = rt
        self._plans: dict[str, _CallPlan] = {}  # by method name (see ActorMethod.remote)
        if rt is not None:
            rt.add_actor_ref(actor_id, owner_id)

    def __del__(self) -> None:
        rt = self._rt
        if rt is not None:
            try:
                rt.remove_local_ref(self._actor_id)
            except Exception:  # interpreter teardown
                pass

    def __getattr__(self, name: str) -> ActorMethod:
        methods = self.__dict__.get("_meta", {}).get("methods", {})
        if name not in methods:
            raise AttributeError(
                f"Actor {self.__dict__.get('_meta', {}).get('class_name')!r} has no method {name!r}"
            )
        return ActorMethod(self, name, methods[name])

    def __reduce__(self) -> tuple[Any, ...]:
        # Counted like an ObjectRef inside the value: what holds the value holds the actor.
        serialization.note_ref(self._actor_id, self._owner)
        if self._rt is not None:
            self._rt.actor_ref_serialized(self._actor_id)
        return (_rebuild_handle, (self._actor_id, self._meta, self._owner))

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __repr__(self) -> str:
        return f"Actor({self._meta['class_name']}, {self._actor_id.hex()})"

    @property
    def _ray_actor_id(self) -> bytes:
        return self._actor_id


def _rebuild_handle(actor_id: bytes, meta: dict[str, Any], owner: bytes) -> ActorHandle[Any]:
    return ActorHandle(actor_id, meta, owner, state.current())


class ActorMethod:
    def __init__(self, handle: ActorHandle[Any], name: str, opts: dict[str, Any]) -> None:
        self._handle = handle
        self._name = name
        self._opts = opts

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actor methods cannot be called directly. Use {self._name}.remote(...) instead."
        )

    def bind(self, *args: Any, **kwargs: Any) -> ClassMethodNode | tuple[ClassMethodNode, ...]:
        """A node of a lazy graph that calls this method (``ember.dag``)."""
        from ember._api.dag import bind_actor_method

        return bind_actor_method(self._handle, self._name, {}, args, kwargs)

    def options(self, **options: Any) -> _BoundMethod:
        checked = opts_mod.validate_method_options(options, in_options=True)
        opts_mod.check_generator_returns(
            checked.get("num_returns"), bool(self._opts.get("is_generator")), self._name
        )
        return _BoundMethod(self, {**self._opts, **checked})

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        plans = self._handle._plans
        plan = plans.get(self._name)
        if plan is None:
            plan = plans[self._name] = _CallPlan(self._handle, self._name, self._opts)
        return plan.submit(self._handle, args, kwargs)

    def _remote(self, args: tuple[Any, ...], kwargs: dict[str, Any], opts: dict[str, Any]) -> Any:
        """A call with options other than the method's own (``options()``, ``ember.dag``)."""
        return _CallPlan(self._handle, self._name, opts).submit(self._handle, args, kwargs)


class _CallPlan:
    """What a call of one method through one handle submits, worked out (and checked) once
    from the method's options and the actor's: only its arguments change from call to call.
    It holds no reference to the handle, whose lifetime counts for the actor's."""

    __slots__ = ("name", "num_returns", "fields", "check")

    def __init__(self, handle: ActorHandle[Any], name: str, opts: dict[str, Any]) -> None:
        meta = handle._meta
        groups = meta.get("concurrency_groups", {})
        group = opts.get("concurrency_group") or ""
        if group and group not in groups:
            raise ValueError(
                f"Concurrency group {group!r} is not defined on actor "
                f"{meta['class_name']!r}; its groups are {sorted(groups) or 'none'}."
            )
        retries = opts.get("max_task_retries")
        backpressure = opts.get("_generator_backpressure_num_objects")
        self.name = name
        self.check = checker(opts.get("signature"), name)
        self.num_returns = returns_code(opts.get("num_returns"), bool(opts.get("is_generator")))
        self.fields: dict[str, Any] = {
            "num_returns": self.num_returns,
            "max_task_retries": meta["max_task_retries"] if retries is None else retries,
            "retry_exceptions": opts.get("retry_exceptions") or False,
            "max_pending_calls": meta.get("max_pending_calls", -1),
            "enable_task_events": _task_events(opts.get("enable_task_events"), meta),
            "backpressure": -1 if backpressure is None else backpressure,
            "concurrency_group": group,
        }

    def submit(
        self, handle: ActorHandle[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if self.check is not None:
            self.check(*args, **kwargs)  # a TypeError here, in the caller, as in Ray
        rt = handle._rt or runtime()
        refs = rt.submit_actor_task(
            handle._actor_id, handle._meta["class_name"], self.name, args, kwargs, **self.fields
        )
        num_returns = self.num_returns
        if num_returns == 1 or num_returns == DYNAMIC:
            return refs[0]
        if num_returns == STREAMING:
            return ObjectRefGenerator(refs[0], rt)
        return None if num_returns == 0 else refs


def _task_events(method: bool | None, meta: dict[str, Any]) -> bool:
    """A method's ``enable_task_events``: its own, else its actor's (as in Ray)."""
    return bool(meta.get("enable_task_events", True)) if method is None else method


class _BoundMethod:
    def __init__(self, method: ActorMethod, opts: dict[str, Any]) -> None:
        self._method = method
        self._opts = opts

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._method._remote(args, kwargs, self._opts)

    def bind(self, *args: Any, **kwargs: Any) -> ClassMethodNode | tuple[ClassMethodNode, ...]:
        from ember._api.dag import bind_actor_method

        return bind_actor_method(self._method._handle, self._method._name, self._opts, args, kwargs)
