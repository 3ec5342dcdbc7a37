"""Lazy task graphs: ``.bind()`` builds nodes, ``node.execute(...)`` submits them (``ember.dag``).

A node records what to call and with which arguments; arguments may be other nodes, at the top
level or inside lists, tuples and dicts. ``execute`` walks the graph from the node it is called
on, children first, and submits each node once per call (a node shared by two branches runs
once): a ``FunctionNode`` becomes a task, a ``ClassNode`` a new actor, a ``ClassMethodNode`` an
actor call. A node given as an argument becomes the ObjectRef of its result, so the task sees
the value at the top level and the ref inside a container, as with ``.remote()``. Each
``execute`` of a graph holding a ``ClassNode`` creates a new actor, as in Ray.

The ``InputNode`` stands for what ``execute`` is given: the one argument itself, or a
``DAGInputData`` of all of them that ``inp[0]``, ``inp["key"]`` and ``inp.key`` select from.
``experimental_compile()`` turns a graph of actor calls into a ``CompiledDAG``
(``_api/compiled_dag.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ember._api.actor import ActorClass, ActorHandle
    from ember._api.compiled_dag import CompiledDAG
    from ember._api.remote_function import RemoteFunction

_Cache = dict["DAGNode", Any]


def map_nodes(value: Any, fn: Callable[[DAGNode], Any]) -> Any:
    """``value`` with every node in it (nested in lists, tuples and dicts) replaced by
    ``fn(node)``; containers without nodes are returned as they are."""
    if isinstance(value, DAGNode):
        return fn(value)
    if isinstance(value, (list, tuple)):
        items = [map_nodes(v, fn) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items if isinstance(value, list) else type(value)(items)
    if isinstance(value, dict):
        new = {k: map_nodes(v, fn) for k, v in value.items()}
        if all(new[k] is value[k] for k in value):
            return value
        return new
    return value


def find_nodes(value: Any) -> list[DAGNode]:
    """The nodes in ``value`` (nested in lists, tuples and dicts), in order, each once."""
    found: dict[DAGNode, None] = {}

    def note(node: DAGNode) -> DAGNode:
        found[node] = None
        return node

    map_nodes(value, note)
    return list(found)


def graph_order(root: DAGNode) -> list[DAGNode]:
    """The nodes under ``root``, each after the nodes it takes, in the order they are bound
    (root last); without recursion, since graphs may be deep."""
    order: list[DAGNode] = []
    done: set[DAGNode] = set()
    stack: list[tuple[DAGNode, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if node in done:
            continue
        if ready:
            done.add(node)
            order.append(node)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(node._children()) if c not in done)
    return order


class DAGNode:
    """A node of a lazy task graph: what to call, its bound arguments and its options."""

    def __init__(
        self,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        other_args_to_resolve: dict[str, Any] | None = None,
    ) -> None:
        self._bound_args: tuple[Any, ...] = tuple(args)
        self._bound_kwargs = dict(kwargs)
        self._bound_options = dict(options)
        self._bound_other_args_to_resolve = dict(other_args_to_resolve or {})
        self._stable_uuid = uuid.uuid4().hex
        self._compiled = False

    def get_args(self) -> tuple[Any, ...]:
        return self._bound_args

    def get_kwargs(self) -> dict[str, Any]:
        return dict(self._bound_kwargs)

    def get_options(self) -> dict[str, Any]:
        return dict(self._bound_options)

    def get_other_args_to_resolve(self) -> dict[str, Any]:
        return dict(self._bound_other_args_to_resolve)

    def get_stable_uuid(self) -> str:
        return self._stable_uuid

    def _children(self) -> list[DAGNode]:
        """The nodes this one needs first, in the order they are submitted."""
        return find_nodes([self._bound_args, self._bound_kwargs, self._bound_other_args_to_resolve])

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Submit the graph under this node; returns its ObjectRef (a list of them for a
        ``MultiOutputNode``, an actor handle for a ``ClassNode``). ``args`` and ``kwargs``
        are what the graph's ``InputNode`` stands for."""
        cache: _Cache = {}
        nodes = graph_order(self)
        if len([n for n in nodes if isinstance(n, InputNode)]) > 1:
            raise ValueError(
                "this graph has two InputNodes; a graph may have only one: bind every input to "
                "the same `with InputNode() as inp:`"
            )
        for node in nodes:
            cache[node] = node._execute_impl(cache, args, kwargs)
        return cache[self]

    def _resolved(self, cache: _Cache, value: Any) -> Any:
        return map_nodes(value, cache.__getitem__)

    def _execute_impl(self, cache: _Cache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def experimental_compile(
        self,
        _submit_timeout: float | None = None,
        _buffer_size_bytes: int | None = None,
        enable_asyncio: bool = False,
        _max_inflight_executions: int | None = None,
        _max_buffered_results: int | None = None,
        _overlap_gpu_communication: bool | None = None,
        _default_communicator: Any = "create",
    ) -> CompiledDAG:
        """Compile this graph of actor calls to shared-memory channels between the driver
        and the actors; its ``execute`` then costs a channel round trip, not a task's. The
        GPU options are accepted only at values that ask for nothing (Ember moves no tensors
        between GPUs)."""
        from ember._api.compiled_dag import compile_dag

        if _overlap_gpu_communication or _default_communicator not in ("create", None):
            raise ValueError(
                "experimental_compile(): GPU communicators and overlapping GPU communication "
                "are not supported by Ember; leave _overlap_gpu_communication and "
                "_default_communicator unset"
            )
        if enable_asyncio:
            raise ValueError("experimental_compile(enable_asyncio=True) is not supported by Ember")
        if self._compiled:
            raise ValueError(
                "experimental_compile() was already called on this graph; reuse the compiled "
                "graph it returned, or build the graph again"
            )
        compiled = compile_dag(
            self,
            submit_timeout=_submit_timeout,
            buffer_size_bytes=_buffer_size_bytes,
            max_inflight_executions=_max_inflight_executions,
            max_buffered_results=_max_buffered_results,
        )
        self._compiled = True
        return compiled

    def __getattr__(self, name: str) -> Any:
        if name == "bind":
            raise AttributeError(f".bind() cannot be used again on {type(self).__name__}")
        if name == "remote":
            raise AttributeError(
                f".remote() cannot be used on {type(self).__name__}; to run the graph under "
                "this node, call .execute()"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __str__(self) -> str:
        return f"({type(self).__name__}, {self._stable_uuid})"

    __repr__ = __str__


class FunctionNode(DAGNode):
    """A task: ``f.bind(...)``."""

    def __init__(
        self,
        body: RemoteFunction[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> None:
        self._body = body
        super().__init__(args, kwargs, options)

    def _execute_impl(self, cache: _Cache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._body._remote(
            self._resolved(cache, self._bound_args),
            self._resolved(cache, self._bound_kwargs),
            self._bound_options,
        )

    def __str__(self) -> str:
        return f"(FunctionNode {self._body._name}, {self._stable_uuid})"


class ClassNode(DAGNode):
    """An actor to create: ``Actor.bind(...)``; ``node.method.bind(...)`` calls it."""

    def __init__(
        self,
        body: ActorClass[Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> None:
        self._body = body
        self._last_call: ClassMethodNode | None = None
        super().__init__(args, kwargs, options)
        if any(isinstance(n, (InputNode, InputAttributeNode)) for n in graph_order(self)):
            raise ValueError(
                "an InputNode cannot be an argument of an actor's constructor: the input is "
                "only known when the graph runs; pass it to a method instead"
            )

    def _execute_impl(self, cache: _Cache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._body._remote(
            self._resolved(cache, self._bound_args),
            self._resolved(cache, self._bound_kwargs),
            self._bound_options,
        )

    def __getattr__(self, name: str) -> Any:
        body = self.__dict__.get("_body")
        if body is None or name.startswith("__"):
            return super().__getattr__(name)
        if name not in body._methods:
            raise AttributeError(f"actor class {body._name!r} has no method {name!r}")
        return _UnboundClassMethodNode(self, name, {})

    def __str__(self) -> str:
        return f"(ClassNode {self._body._name}, {self._stable_uuid})"


class _UnboundClassMethodNode:
    """``class_node.method``: waits for ``.bind(...)`` (or ``.options(...)`` first)."""

    def __init__(self, actor: ClassNode, name: str, options: dict[str, Any]) -> None:
        self._actor = actor
        self._name = name
        self._options = options

    def options(self, **options: Any) -> _UnboundClassMethodNode:
        from ember._api import options as opts_mod

        checked = opts_mod.validate_method_options(options, in_options=True)
        return _UnboundClassMethodNode(self._actor, self._name, {**self._options, **checked})

    def bind(self, *args: Any, **kwargs: Any) -> ClassMethodNode:
        # Calls bound on one ClassNode run in the order they were bound, whichever is executed.
        node = ClassMethodNode(
            self._actor, self._name, args, kwargs, self._options, previous=self._actor._last_call
        )
        self._actor._last_call = node
        return node

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        raise AttributeError(
            ".remote() cannot be used on the methods of a ClassNode; use .bind() to add the "
            "call to the graph"
        )


class ClassMethodNode(DAGNode):
    """An actor call: ``handle.method.bind(...)`` or ``class_node.method.bind(...)``.

    With ``output_idx`` set it is not a call but one of the values of a call that returns
    several (``num_returns > 1``): ``args[0]`` is the call."""

    def __init__(
        self,
        parent: ClassNode | ActorHandle[Any],
        method_name: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        *,
        previous: ClassMethodNode | None = None,
        output_idx: int | None = None,
    ) -> None:
        self._parent_class_node = parent
        self._method_name = method_name
        self._output_idx = output_idx
        other: dict[str, Any] = {}
        if isinstance(parent, ClassNode):
            other = {"parent_class_node": parent, "prev_class_method_call": previous}
        super().__init__(args, kwargs, options, other)

    def get_method_name(self) -> str:
        return self._method_name

    @property
    def is_class_method_output(self) -> bool:
        return self._output_idx is not None

    @property
    def output_idx(self) -> int | None:
        return self._output_idx

    @property
    def num_returns(self) -> int:
        if self._output_idx is not None:
            return 1
        n = self._bound_options.get("num_returns")
        if n is None and not isinstance(self._parent_class_node, ClassNode):
            n = self._parent_class_node._meta["methods"][self._method_name].get("num_returns")
        return 1 if n is None else int(n)

    def _execute_impl(self, cache: _Cache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._output_idx is not None:
            return cache[self._bound_args[0]][self._output_idx]
        parent = self._parent_class_node
        handle = cache[parent] if isinstance(parent, ClassNode) else parent
        method = getattr(handle, self._method_name)
        return method._remote(
            self._resolved(cache, self._bound_args),
            self._resolved(cache, self._bound_kwargs),
            {**method._opts, **self._bound_options},
        )

    def __str__(self) -> str:
        return f"(ClassMethodNode {self._method_name}(), {self._stable_uuid})"

    __repr__ = __str__


def bind_actor_method(
    handle: ActorHandle[Any], name: str, options: dict[str, Any], args: Any, kwargs: Any
) -> ClassMethodNode | tuple[ClassMethodNode, ...]:
    """``handle.method.bind(...)``: one node, or a node per value when the method returns
    several (``num_returns > 1``), as in Ray."""
    node = ClassMethodNode(handle, name, args, kwargs, options)
    if node.num_returns <= 1:
        return node
    return tuple(
        ClassMethodNode(handle, f"return_idx_{i}", (node,), {}, {}, output_idx=i)
        for i in range(node.num_returns)
    )


class InputNode(DAGNode):
    """What ``execute(...)`` is given: use as ``with InputNode() as inp:`` and bind ``inp``
    (the one argument), or ``inp[0]``, ``inp["key"]``, ``inp.key`` to pick one of several."""

    def __init__(self, *args: Any, input_type: Any = None, **kwargs: Any) -> None:
        if args or kwargs:
            raise ValueError("InputNode() takes no arguments: the input is given to execute(...)")
        self.input_type = input_type
        self.input_attribute_nodes: dict[tuple[str, int | str], InputAttributeNode] = {}
        super().__init__((), {}, {})

    def __enter__(self) -> InputNode:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _attribute(self, key: int | str, accessor: str) -> InputAttributeNode:
        node = self.input_attribute_nodes.get((accessor, key))
        if node is None:
            node = self.input_attribute_nodes[(accessor, key)] = InputAttributeNode(
                self, key, accessor
            )
        return node

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("input_type", "input_attribute_nodes"):
            return super().__getattr__(name)
        return self._attribute(name, "__getattr__")

    def __getitem__(self, key: int | str) -> InputAttributeNode:
        if not isinstance(key, (int, str)) or isinstance(key, bool):
            raise TypeError(
                f"an InputNode is indexed by an int (a positional argument of execute) or a "
                f"str (a keyword argument), not by {type(key).__name__}"
            )
        return self._attribute(key, "__getitem__")

    def _execute_impl(self, cache: _Cache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if len(args) == 1 and not kwargs:
            return args[0]
        return DAGInputData(*args, **kwargs)


class InputAttributeNode(DAGNode):
    """One part of the input: ``inp[0]``, ``inp["key"]`` or ``inp.key``."""

    def __init__(self, input_node: InputNode, key: int | str, accessor: str) -> None:
        self._dag_input_node = input_node
        self._key = key
        self._accessor_method = accessor
        super().__init__((), {}, {}, {"dag_input_node": input_node})

    @property
    def key(self) -> int | str:
        return self._key

    def _execute_impl(self, cache: _Cache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return select_input(cache[self._dag_input_node], self._key, self._accessor_method)

    def __str__(self) -> str:
        return f"(InputAttributeNode [{self._key!r}], {self._stable_uuid})"


def select_input(value: Any, key: int | str, accessor: str) -> Any:
    """The part of the input ``inp[key]`` or ``inp.key`` stands for."""
    if isinstance(value, DAGInputData) or accessor == "__getitem__" or isinstance(key, int):
        return value[key]
    return getattr(value, key)


class DAGInputData:
    """The input of a graph given several arguments: ``[i]`` selects a positional one,
    ``["key"]`` (or ``.key`` on the InputNode) a keyword one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = list(args)
        self._kwargs = kwargs

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, int):
            return self._args[key]
        return self._kwargs[key]


class MultiOutputNode(DAGNode):
    """The end of a graph with several results: ``execute`` returns a list of them."""

    def __init__(self, args: Sequence[DAGNode], other_args_to_resolve: Any = None) -> None:
        if not isinstance(args, (list, tuple)):
            raise ValueError(f"MultiOutputNode takes a list of nodes, got {type(args).__name__}")
        super().__init__(list(args), {}, {})

    def _execute_impl(self, cache: _Cache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return list(self._resolved(cache, self._bound_args))
