"""``@ember.remote`` on a function: a RemoteFunction whose ``.remote()`` submits a task.

For type checkers, ``RemoteFunction[P, Out]`` carries the function's parameters ``P`` and what
``.remote()`` returns, ``ObjectRef[T]`` for a function returning T (``Any`` when
``num_returns`` is set). ``.remote()`` has two signatures: the function's own, which editors
show, and one taking anything, because an argument may also be an ObjectRef of its type (the
task gets the value), which a ParamSpec cannot say.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload

import cloudpickle

from ember._api import options as opts_mod
from ember._api import runtime_env
from ember._api.placement_group import captures, effective_strategy, into_group
from ember._api.session import runtime
from ember._core.call_limits import CallLimited, max_calls_of
from ember._core.labels import parse_selector
from ember._core.placement import strategy_on_wire
from ember._core.resources import Shape, shape_of
from ember._core.signatures import checker, spec_of, unbuilt
from ember._protocol.messages import DYNAMIC, STREAMING
from ember._runtime.object_ref_generator import ObjectRefGenerator

if TYPE_CHECKING:
    from ember._api.dag import FunctionNode

_P = ParamSpec("_P")
_Out = TypeVar("_Out", covariant=True)


class RemoteFunction(Generic[_P, _Out]):
    """A function that runs as a task: call ``f.remote(...)`` to get an ObjectRef."""

    def __init__(self, function: Callable[_P, Any], options: dict[str, Any]) -> None:
        self._function = function
        self._options = {**opts_mod.task_defaults(), **options, "max_calls": max_calls_of(options)}
        self._name = getattr(function, "__qualname__", repr(function))
        self._is_generator = is_generator_function(function)
        # What is exported: the function with its ``max_calls``, if it has one, which the
        # worker that runs it honours (``_core/call_limits.py``) and local mode refuses.
        max_calls = self._options["max_calls"]
        self._exported: Any = CallLimited(function, max_calls) if max_calls else function
        opts_mod.check_generator_returns(options.get("num_returns"), self._is_generator, self._name)
        self._fn_id: bytes | None = None
        self._pickled: bytes | None = None
        self._shapes: dict[Any, Shape] = {}
        self._plan: tuple[Any, ...] | None = None
        self._check: Callable[..., None] | None = unbuilt
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Remote function {self._name!r} cannot be called directly. "
            f"Use {self._name}.remote(...) instead."
        )

    @overload
    def remote(self, *args: _P.args, **kwargs: _P.kwargs) -> _Out: ...
    @overload
    def remote(self, *args: Any, **kwargs: Any) -> _Out: ...
    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._remote(args, kwargs, self._options)

    @overload
    def options(
        self, *, num_returns: Literal[1] = ..., **options: Any
    ) -> _BoundFunction[_P, _Out]: ...
    @overload
    def options(self, *, num_returns: int | str, **options: Any) -> _BoundFunction[_P, Any]: ...
    def options(self, **options: Any) -> _BoundFunction[_P, Any]:
        """The same function with some options changed for the calls made through it."""
        checked = opts_mod.validate_task_options(options, in_options=True)
        opts_mod.check_generator_returns(checked.get("num_returns"), self._is_generator, self._name)
        return _BoundFunction(self, {**self._options, **checked})

    def bind(self, *args: Any, **kwargs: Any) -> FunctionNode:
        """A node of a lazy graph that calls this function (``ember.dag``)."""
        from ember._api.dag import FunctionNode  # (not imported until a graph is made)

        return FunctionNode(self, args, kwargs, self._options)

    def _fn_key(self) -> tuple[bytes, Callable[[], bytes]]:
        if self._fn_id is None:
            self._pickled = self._dumps()
            self._fn_id = hashlib.blake2b(self._pickled, digest_size=16).digest()
        return self._fn_id, self._data

    def _data(self) -> bytes:
        if self._pickled is None:
            self._pickled = self._dumps()
        return self._pickled

    def _dumps(self) -> bytes:
        data: bytes = cloudpickle.dumps(self._exported)
        return data

    def _remote(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        owner: RemoteFunction[Any, Any] | _BoundFunction[Any, Any] | None = None,
    ) -> Any:
        """``owner``: whose fixed ``_options`` these may be, which keeps their plan (this
        function's own by default)."""
        check = self._check
        if check is unbuilt:
            check = self._check = checker(spec_of(self._function), self._name)
        if check is not None:
            check(*args, **kwargs)  # a TypeError here, in the caller, as in Ray
        rt = runtime()
        fn_id, data = self._fn_key()
        rt.export_function(fn_id, data, self._exported)
        strategy = effective_strategy(options)
        if strategy is not options["scheduling_strategy"]:
            options = {**options, "scheduling_strategy": strategy}
        owner = self if owner is None else owner
        if options is owner._options and owner._plan is not None:
            plan = owner._plan  # (f.remote() or f.options(...).remote(): options never change)
        else:
            plan = self._make_plan(options)
            if options is owner._options:
                owner._plan = plan
        (
            num_returns,
            name,
            shape,
            max_retries,
            retry_exceptions,
            strategy,
            capture,
            events,
            backpressure,
            env,
        ) = plan
        refs = rt.submit_task(
            fn_id,
            args,
            kwargs,
            num_returns=num_returns,
            name=name,
            shape=shape,
            max_retries=max_retries,
            retry_exceptions=retry_exceptions,
            strategy=strategy,
            capture_child_tasks=capture,
            runtime_env=rt.runtime_env if env is None else env.text(rt),
            enable_task_events=events,
            backpressure=backpressure,
        )
        if num_returns == 1 or num_returns == DYNAMIC:
            return refs[0]
        if num_returns == STREAMING:
            return ObjectRefGenerator(refs[0], rt)
        return None if num_returns == 0 else refs

    def _make_plan(self, options: dict[str, Any]) -> tuple[Any, ...]:
        shape, strategy = self._shape(options), options.get("scheduling_strategy")
        if hasattr(strategy, "placement_group"):
            shape = into_group(strategy, shape, f"task {self._name}")
        backpressure = options.get("_generator_backpressure_num_objects")
        env = options.get("runtime_env")
        return (
            returns_code(options["num_returns"], self._is_generator),
            options.get("name") or self._name,
            shape,
            options["max_retries"],
            options["retry_exceptions"],
            strategy_on_wire(strategy, parse_selector(options.get("label_selector"))),
            captures(strategy),
            options["enable_task_events"],
            -1 if backpressure is None else backpressure,
            None if env is None else runtime_env.CallEnv(env),
        )

    def _shape(self, options: dict[str, Any]) -> Shape:
        key = (
            options.get("num_cpus"),
            options.get("num_gpus"),
            _freeze(options.get("resources")),
            options.get("memory"),
            options.get("accelerator_type"),
        )
        shape = self._shapes.get(key)
        if shape is None:
            shape = shape_of(opts_mod.resources_from_options(options, default_num_cpus=1))
            self._shapes[key] = shape
        return shape

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._function, self._options, self._fn_id))

    def __repr__(self) -> str:
        return f"<RemoteFunction {self._name}>"


class _BoundFunction(Generic[_P, _Out]):
    def __init__(self, fn: RemoteFunction[_P, Any], options: dict[str, Any]) -> None:
        self._fn = fn
        self._options = options
        self._plan: tuple[Any, ...] | None = None

    @overload
    def remote(self, *args: _P.args, **kwargs: _P.kwargs) -> _Out: ...
    @overload
    def remote(self, *args: Any, **kwargs: Any) -> _Out: ...
    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn._remote(args, kwargs, self._options, self)

    def bind(self, *args: Any, **kwargs: Any) -> FunctionNode:
        from ember._api.dag import FunctionNode

        return FunctionNode(self._fn, args, kwargs, self._options)


def _rebuild(
    function: Callable[..., Any], options: dict[str, Any], fn_id: bytes | None
) -> RemoteFunction[..., Any]:
    rf: RemoteFunction[..., Any] = RemoteFunction(function, options)
    rf._fn_id = fn_id
    return rf


def is_generator_function(function: Callable[..., Any]) -> bool:
    """A function that yields (sync or async): its call is a generator task."""
    return inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)


def returns_code(num_returns: int | str | None, is_generator: bool) -> int:
    """``num_returns`` as the runtime takes it: a count, or DYNAMIC or STREAMING for a
    generator (None: streaming for a function that yields, else 1, as in Ray)."""
    if num_returns is None:
        return STREAMING if is_generator else 1
    if num_returns == "streaming":
        return STREAMING
    if num_returns == "dynamic":
        return DYNAMIC
    assert isinstance(num_returns, int)
    return num_returns


def _freeze(value: Any) -> Any:
    return tuple(sorted(value.items())) if isinstance(value, dict) else value
