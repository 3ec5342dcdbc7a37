"""Compiled graphs: a graph of actor calls run over shared-memory channels (``ray.dag``'s
``experimental_compile``).

Compiling plans the graph once. Each actor gets the list of its calls in an order consistent
with the graph, and a channel (``_transport/channel.py``) is made for every value that crosses
processes: the input, from the driver to each actor that reads it; a call's result, to each
other actor that takes it and to the driver when it is an output. A value passed between two
calls of one actor stays in that process. Each actor then runs a loop on a thread of its own
(started through ``__ray_call__``, so its ordinary method calls still run): per execution it
takes each channel's message when a call first needs it, runs its calls in order and writes
each result to its channels. An ``execute`` is thus one message to each reading actor, and a
``get`` one read per output: no task is submitted and no process but the graph's takes part.

A method that raises sends its error on instead of a result; calls that take it skip their
method and pass it on, and ``get`` raises it, while the loops go on to the next execution.
``execute`` blocks while the input slot is full, reading finished results into a buffer
meanwhile (so the driver never waits on itself); ``get`` reads executions in order and keeps
the ones not asked for yet. ``teardown`` (also at ``shutdown`` and when the compiled graph is
collected) closes every channel: each loop ends at its next wait.

Only what Ray's compiled graphs also require is supported: one ``InputNode``, calls of actors
that already exist (on this node), nodes as top-level positional arguments.
"""

from __future__ import annotations

import contextvars
import os
import shutil
import tempfile
import threading
import traceback
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ember import exceptions as exc
from ember._api import dag as dag_mod
from ember._api import session
from ember._api.runtime_context import get_runtime_context
from ember._core import dag_plan
from ember._runtime import serialization, state
from ember._runtime.client.local import LocalRuntime
from ember._transport.channel import Channel, ChannelSpec, wait
from ember._transport.process import process_alive

if TYPE_CHECKING:
    from ember._api.actor import ActorHandle


@dataclass(slots=True)
class DAGContext:
    """Settings of the compiled graphs compiled from now on, with Ray's defaults:
    ``DAGContext.get_current().get_timeout = 60``. A timeout of -1 waits without a limit."""

    submit_timeout: float = 10.0  # seconds execute() may wait for an input slot
    get_timeout: float = 10.0  # seconds get() waits when it is given no timeout
    teardown_timeout: float = 30.0  # seconds teardown() waits for each actor's loop to end
    buffer_size_bytes: int = 1_000_000  # a channel's first size (it grows for larger values)
    max_inflight_executions: int = 10
    max_buffered_results: int = 1000

    @staticmethod
    def get_current() -> DAGContext:
        return _context


_context = DAGContext()


@dataclass
class _Failed:
    """A call's error travelling in place of its result."""

    error: BaseException


# ----------------------------------------------------------------------------- the plan


@dataclass
class _Step:
    """One call on an actor, or (``index`` set) one value of a call that returns several."""

    node: int
    method: str
    args: list[tuple[Any, ...]]  # ("const", v) | ("input", accessor, key) | ("node", id)
    kwargs: dict[str, Any]
    index: int | None = None
    sends: list[int] = field(default_factory=list)  # the channels its result is written to


@dataclass
class _ActorPlan:
    """What one actor does per execution; channels are numbered in the graph's list."""

    steps: list[_Step] = field(default_factory=list)
    reads: dict[int, int] = field(default_factory=dict)  # source (or INPUT) -> channel


def compile_dag(
    root: dag_mod.DAGNode,
    *,
    submit_timeout: float | None,
    buffer_size_bytes: int | None,
    max_inflight_executions: int | None,
    max_buffered_results: int | None,
) -> CompiledDAG:
    for name, value in (
        ("_buffer_size_bytes", buffer_size_bytes),
        ("_max_inflight_executions", max_inflight_executions),
        ("_max_buffered_results", max_buffered_results),
    ):
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(session.runtime(), LocalRuntime):
        raise ValueError(
            "compiled graphs run over shared memory between actor processes, which local_mode "
            "does not have: execute() the graph without compiling it"
        )
    compiled = CompiledDAG(
        submit_timeout=_context.submit_timeout if submit_timeout is None else submit_timeout,
        buffer_size=buffer_size_bytes or _context.buffer_size_bytes,
        max_inflight=max_inflight_executions or _context.max_inflight_executions,
        max_buffered=max_buffered_results or _context.max_buffered_results,
    )
    compiled._build(root)
    return compiled


def _check_node(node: dag_mod.DAGNode, root: dag_mod.DAGNode) -> None:
    if isinstance(node, dag_mod.FunctionNode):
        raise NotImplementedError(
            "Compiled DAGs currently only support actor method nodes: run the function as a "
            "method of an actor, or execute() the graph without compiling it"
        )
    if isinstance(node, dag_mod.ClassNode):
        raise ValueError(
            "Compiled DAGs can only bind methods to an actor that is already created with "
            "Actor.remote(); create the actor first and bind its handle's methods"
        )
    if isinstance(node, dag_mod.MultiOutputNode) and node is not root:
        raise ValueError("a MultiOutputNode can only be the end of a compiled graph")
    if not isinstance(node, dag_mod.ClassMethodNode):
        return
    for arg in node.get_args():
        if not isinstance(arg, dag_mod.DAGNode) and dag_mod.find_nodes(arg):
            raise ValueError(
                f"{node} has a DAGNode inside a container argument ({type(arg).__name__}); a "
                "compiled graph takes nodes only as top-level positional arguments"
            )
    if dag_mod.find_nodes(node.get_kwargs()):
        raise ValueError(
            "Compiled DAG currently does not support binding to other DAG nodes as kwargs; "
            "pass them as positional arguments"
        )
    if node.output_idx is None:
        if not any(isinstance(a, dag_mod.DAGNode) for a in node.get_args()):
            raise ValueError(
                f"Compiled DAGs require each task to take a ray.dag.InputNode or at least one "
                f"other DAGNode as an input; {node} takes neither"
            )
        handle = node._parent_class_node
        assert not isinstance(handle, dag_mod.ClassNode)
        if handle._meta["methods"][node.get_method_name()].get("is_async"):
            raise ValueError(
                f"{node.get_method_name()} is an async method: Ember's compiled graphs run "
                "only plain (synchronous) methods"
            )


def _step(node: dag_mod.ClassMethodNode, ids: dict[dag_mod.DAGNode, int]) -> _Step:
    """What the actor does for ``node``: the method and where each argument comes from."""
    args: list[tuple[Any, ...]] = []
    for arg in node.get_args():
        if isinstance(arg, dag_mod.InputNode):
            args.append(("input", None, None))
        elif isinstance(arg, dag_mod.InputAttributeNode):
            args.append(("input", arg._accessor_method, arg.key))
        elif isinstance(arg, dag_mod.DAGNode):
            args.append(("node", ids[arg]))
        else:
            args.append(("const", arg))
    return _Step(ids[node], node.get_method_name(), args, node.get_kwargs(), node.output_idx)


def _sources(step: _Step) -> tuple[int, ...]:
    return tuple(dag_plan.INPUT if a[0] == "input" else a[1] for a in step.args if a[0] != "const")


def _actor_of(node: dag_mod.ClassMethodNode) -> ActorHandle[Any]:
    while node.output_idx is not None:
        node = node.get_args()[0]
    parent = node._parent_class_node
    assert not isinstance(parent, dag_mod.ClassNode)
    return parent


class CompiledDAG:
    """A graph of actor calls compiled to shared-memory channels; ``execute`` runs it once."""

    def __init__(
        self, *, submit_timeout: float, buffer_size: int, max_inflight: int, max_buffered: int
    ) -> None:
        self._id = uuid.uuid4().hex[:16]
        self._submit_timeout = submit_timeout
        self._buffer_size = buffer_size
        self._max_inflight = max_inflight
        self._max_buffered = max_buffered
        self._get_timeout = _context.get_timeout
        self._teardown_timeout = _context.teardown_timeout
        self._returns_list = False
        self._actors: dict[bytes, ActorHandle[Any]] = {}
        self._pids: dict[bytes, int] = {}
        self._inputs: list[Channel] = []
        self._outputs: list[Channel] = []  # one per distinct output call
        self._output_of: list[int] = []  # output position -> index in _outputs
        self._positional = -1  # highest inp[i] used, so execute() can check its arguments
        self._submitted = 0
        self._read = 0  # executions read off the output channels
        self._results: dict[int, list[Any]] = {}
        self._partial: list[Any] = []  # the next execution's outputs read so far
        self._fetched: dict[int, set[int]] = {}
        self._torn_down = False
        self._lock = threading.RLock()
        _live.add(self)

    # ------------------------------------------------------------------ compiling

    def _build(self, root: dag_mod.DAGNode) -> None:
        nodes = dag_mod.graph_order(root)
        for node in nodes:
            _check_node(node, root)
        inputs = [n for n in nodes if isinstance(n, dag_mod.InputNode)]
        if len(inputs) != 1:
            raise NotImplementedError("Compiled DAGs currently require exactly one InputNode")
        outputs = list(root.get_args()) if isinstance(root, dag_mod.MultiOutputNode) else [root]
        self._returns_list = isinstance(root, dag_mod.MultiOutputNode)
        for out in outputs:
            if not isinstance(out, dag_mod.ClassMethodNode):
                raise ValueError(
                    f"the outputs of a compiled graph must be actor method calls, got {out}"
                )
        attrs = [n for n in nodes if isinstance(n, dag_mod.InputAttributeNode)]
        direct = any(
            inputs[0] in n.get_args() for n in nodes if isinstance(n, dag_mod.ClassMethodNode)
        )
        if attrs and direct:
            raise ValueError(
                "All tasks must either use InputNode() directly, or they must index to "
                "specific args or kwargs."
            )
        self._positional = max((a.key for a in attrs if isinstance(a.key, int)), default=-1)
        calls = [n for n in nodes if isinstance(n, dag_mod.ClassMethodNode)]
        for node in calls:
            self._actors.setdefault(_actor_of(node)._actor_id, _actor_of(node))
        self._check_actors()
        ids: dict[dag_mod.DAGNode, int] = {node: i for i, node in enumerate(calls)}
        steps = [_step(node, ids) for node in calls]
        planned = dag_plan.plan(
            [
                dag_plan.Call(_actor_of(node)._actor_id, _sources(step))
                for node, step in zip(calls, steps, strict=True)
            ],
            [ids[out] for out in outputs],
        )
        self._output_of = planned.output_of
        folder = tempfile.mkdtemp(
            prefix=f"ember-dag-{self._id}-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
        )
        try:
            specs = [
                ChannelSpec.create(folder, str(i), self._buffer_size)
                for i in range(planned.channels)
            ]
            self._inputs = [Channel(specs[i], writer=True) for i in planned.inputs]
            self._outputs = [Channel(specs[i], writer=False) for i in planned.outputs]
            parts = {
                actor_id: _ActorPlan(
                    [replace(steps[i], sends=planned.sends[i]) for i in part.calls], part.reads
                )
                for actor_id, part in planned.actors.items()
            }
            session_get(
                [
                    handle.__ray_call__.remote(_start_loop, self._id, parts[actor_id], specs)
                    for actor_id, handle in self._actors.items()
                ]
            )
        except BaseException:
            self.teardown()
            raise
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _check_actors(self) -> None:
        here = get_runtime_context().get_node_id()
        handles = list(self._actors.values())
        places = session_get([h.__ray_call__.remote(_where) for h in handles])
        for handle, (node_id, pid) in zip(handles, places, strict=True):
            if node_id != here:
                raise ValueError(
                    f"actor {handle!r} runs on node {node_id}, not on this driver's node "
                    f"{here}: Ember's compiled graphs use shared memory, so all of their "
                    "actors must run on the driver's node"
                )
            self._pids[handle._actor_id] = pid

    # ------------------------------------------------------------------ running

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Run the graph once on these inputs; returns a ``CompiledDAGRef`` (a list of them
        when the graph ends in a ``MultiOutputNode``)."""
        with self._lock:
            if self._torn_down:
                raise exc.RayChannelError("Channel closed: this compiled graph was torn down.")
            if self._positional >= len(args):
                raise ValueError(
                    f"dag.execute() must be called with at least {self._positional + 1} "
                    f"positional args, got {len(args)}"
                )
            if self._submitted - self._read >= self._max_inflight:
                raise exc.RayCgraphCapacityExceeded(
                    f"The compiled graph can't have more than {self._max_inflight} in-flight "
                    f"executions, and you currently have {self._submitted - self._read}. get() "
                    "a result before submitting more, or compile with a larger "
                    "_max_inflight_executions"
                )
            data = serialization.dumps((args, kwargs))
            timeout = None if self._submit_timeout < 0 else self._submit_timeout
            for ch in self._inputs:
                while not ch.can_write():
                    # The slot is full: read finished results meanwhile, so that no actor
                    # waits for the driver to take its output while the driver waits for it.
                    self._guard(wait, [ch, *self._outputs], self._can_progress, timeout)
                    if not ch.can_write() and self._read < self._submitted:
                        self._read_execution(timeout)
                self._guard(ch.write, data)
            index = self._submitted
            self._submitted += 1
        if self._returns_list:
            return [CompiledDAGRef(self, index, i) for i in range(len(self._output_of))]
        return CompiledDAGRef(self, index, 0)

    def _can_progress(self) -> bool:
        return all(ch.can_write() for ch in self._inputs) or any(
            ch.can_read() for ch in self._outputs
        )

    def _read_execution(self, timeout: float | None) -> None:
        """Read the next execution's outputs into the buffer."""
        if len(self._results) >= self._max_buffered:
            raise exc.RayCgraphCapacityExceeded(
                f"The compiled graph can't have more than {self._max_buffered} buffered "
                f"results; get() some results first, or compile with a larger "
                "_max_buffered_results"
            )
        values = self._partial  # what a read that timed out took already
        while len(values) < len(self._outputs):
            values.append(self._guard(self._outputs[len(values)].read, _decode, timeout))
        self._partial = []
        index, self._read = self._read, self._read + 1
        if len(self._fetched.get(index, ())) == len(self._output_of):
            self._fetched.pop(index)  # every ref of it was dropped unread
        else:
            self._results[index] = values

    def _get(self, index: int, position: int, timeout: float | None) -> Any:
        with self._lock:
            if self._torn_down and index not in self._results:
                raise exc.RayChannelError("Channel closed: this compiled graph was torn down.")
            if timeout is None:
                timeout = self._get_timeout
            wait_for = None if timeout < 0 else timeout
            while index not in self._results:
                self._read_execution(wait_for)
            value = self._results[index][self._output_of[position]]
            self._release(index, position)
        if isinstance(value, _Failed):
            err = value.error
            raise err.as_instanceof_cause() if isinstance(err, exc.RayTaskError) else err
        return value

    def _release(self, index: int, position: int) -> None:
        """The result at ``position`` of execution ``index`` is taken (or its ref dropped):
        the execution is forgotten once all of its results are."""
        with self._lock:
            fetched = self._fetched.setdefault(index, set())
            fetched.add(position)
            if len(fetched) == len(self._output_of):
                self._results.pop(index, None)
                self._fetched.pop(index, None)

    def _guard(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a channel operation; a channel whose actor died becomes ActorDiedError."""
        try:
            return fn(*args)
        except exc.RayChannelTimeoutError:
            raise
        except exc.RayChannelError as e:
            for actor_id, pid in self._pids.items():
                if not process_alive(pid):
                    handle = self._actors[actor_id]
                    raise exc.ActorDiedError(
                        "its process died while it ran a compiled graph",
                        actor_id=actor_id.hex(),
                        class_name=handle._meta["class_name"],
                    ) from e
            raise

    def teardown(self, kill_actors: bool = False) -> None:
        """End the actors' loops and free the channels; the actors live on (unless
        ``kill_actors``) and may join another compiled graph."""
        with self._lock:
            if self._torn_down:
                return
            self._close()
            rt = state.current()
            if rt is not None:
                refs = [
                    h.__ray_call__.remote(_stop_loop, self._id, self._teardown_timeout)
                    for h in self._actors.values()
                ]
                try:
                    session_get(
                        refs, None if self._teardown_timeout < 0 else self._teardown_timeout
                    )
                except exc.RayError:
                    pass  # a dead actor's loop is gone with it
                if kill_actors:
                    for handle in self._actors.values():
                        rt.kill_actor(handle._actor_id, True)

    def _close(self) -> None:
        """Close the channels, which ends the loops at their next wait, and let them go."""
        self._torn_down = True
        for ch in (*self._inputs, *self._outputs):
            ch.close()
            ch.detach()
        self._results.clear()
        _live.discard(self)

    def __del__(self) -> None:
        # Without waiting for the actors: this may run in any thread, the client's own included.
        if not getattr(self, "_torn_down", True):
            self._close()

    def __repr__(self) -> str:
        return f"CompiledDAG({self._id})"


class CompiledDAGRef:
    """The result of one ``execute`` of a compiled graph: ``ember.get(ref)`` or ``ref.get()``
    returns it, once. Unlike an ObjectRef it cannot be passed to tasks, copied or pickled."""

    def __init__(self, dag: CompiledDAG, execution_index: int, channel_index: int) -> None:
        self._dag = dag
        self._execution_index = execution_index
        self._channel_index = channel_index
        self._got = False

    def get(self, timeout: float | None = None) -> Any:
        if self._got:
            raise ValueError(
                "ray.get() can only be called once on a CompiledDAGRef, and it was already called."
            )
        self._got = True
        return self._dag._get(self._execution_index, self._channel_index, timeout)

    def __del__(self) -> None:
        if not getattr(self, "_got", True) and not self._dag._torn_down:
            self._dag._release(self._execution_index, self._channel_index)

    def __copy__(self) -> CompiledDAGRef:
        raise ValueError("CompiledDAGRef cannot be copied.")

    def __deepcopy__(self, memo: Any) -> CompiledDAGRef:
        raise ValueError("CompiledDAGRef cannot be deep copied.")

    def __reduce__(self) -> Any:
        raise ValueError("CompiledDAGRef cannot be pickled.")

    def __repr__(self) -> str:
        return (
            f"CompiledDAGRef({self._dag._id}, execution_index={self._execution_index}, "
            f"channel_index={self._channel_index})"
        )


_live: weakref.WeakSet[CompiledDAG] = weakref.WeakSet()


def _close_all() -> None:
    """At shutdown: close every graph's channels without waiting for its actors (a busy one
    would hold shutdown up); each loop ends at its next wait, or with its process."""
    for compiled in list(_live):
        with compiled._lock:
            if not compiled._torn_down:
                compiled._close()


session.before_shutdown.append(_close_all)


def session_get(refs: list[Any], timeout: float | None = None) -> list[Any]:
    return session.runtime().get(refs, timeout)


# ----------------------------------------------------------------------------- in the actor

_loops: dict[str, tuple[threading.Thread, list[Channel]]] = {}


def _where(instance: Any) -> tuple[str, int]:
    return get_runtime_context().get_node_id(), os.getpid()


def _start_loop(instance: Any, dag_id: str, plan: _ActorPlan, specs: list[ChannelSpec]) -> None:
    """Open this actor's channels and run its part of the graph on a thread of its own."""
    for old_id, (thread, channels) in list(_loops.items()):
        if not any(ch.closed for ch in channels):
            raise ValueError(
                "this actor already runs another compiled graph; call teardown() on it first"
            )
        thread.join(10)  # a graph dropped a moment ago: its loop is ending
        _stop_loop(instance, old_id)
    reads = {source: Channel(specs[ch], writer=False) for source, ch in plan.reads.items()}
    sends = {ch: Channel(specs[ch], writer=True) for step in plan.steps for ch in step.sends}
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run,
        args=(_run_loop, instance, plan, reads, sends),
        name=f"ember-compiled-dag-{dag_id}",
        daemon=True,
    )
    _loops[dag_id] = (thread, [*reads.values(), *sends.values()])
    thread.start()


def _stop_loop(instance: Any, dag_id: str, timeout: float = 10.0) -> None:
    entry = _loops.pop(dag_id, None)
    if entry is not None:
        thread, channels = entry
        for ch in channels:
            ch.close()
        thread.join(None if timeout < 0 else timeout)
        if not thread.is_alive():  # else a method still runs: it may yet use them
            for ch in channels:
                ch.detach()


def _run_loop(
    instance: Any, plan: _ActorPlan, reads: dict[int, Channel], sends: dict[int, Channel]
) -> None:
    try:
        while True:
            _run_once(instance, plan, reads, sends)
    except exc.RayChannelError:
        pass
    except BaseException:
        traceback.print_exc()  # to the actor's log: a failure of the loop itself
    finally:
        for ch in (*reads.values(), *sends.values()):
            ch.close()  # so that the driver and the actors this one talks to end too


def _run_once(
    instance: Any, plan: _ActorPlan, reads: dict[int, Channel], sends: dict[int, Channel]
) -> None:
    values: dict[int, Any] = {}

    def value_of(source: int) -> Any:
        if source not in values:
            values[source] = reads[source].read(_input if source == dag_plan.INPUT else _loads)
        return values[source]

    for step in plan.steps:
        args = []
        failed: _Failed | None = None
        for arg in step.args:
            if arg[0] == "const":
                args.append(arg[1])
                continue
            if arg[0] == "input":
                value = value_of(dag_plan.INPUT)
                if arg[1] is not None and not isinstance(value, _Failed):
                    value = _call(dag_mod.select_input, value, arg[2], arg[1])
            else:
                value = value_of(arg[1])
            if isinstance(value, _Failed):
                failed = failed or value
            args.append(value)
        if failed is not None:
            result: Any = failed
        elif step.index is not None:
            result = _call(_pick, args[0], step.index)
        else:
            result = _call(getattr(instance, step.method), *args, **step.kwargs, _name=step.method)
        values[step.node] = result
        if step.sends:
            data = _dumps(result, step.method)
            for ch in step.sends:
                sends[ch].write(data)


def _decode(data: memoryview) -> Any:
    """A value from a channel's slot, copied out of it (the slot is written again next)."""
    return serialization.loads(bytes(data) if data[:1].tobytes() == b"E" else data)


def _loads(data: memoryview) -> Any:
    try:
        return _decode(data)
    except Exception as e:
        return _Failed(exc.RayTaskError.from_exception(e, "reading a compiled graph's value"))


def _input(data: memoryview) -> Any:
    """The value the InputNode stands for: the one argument, or all of them."""
    given = _loads(data)
    if isinstance(given, _Failed):
        return given
    args, kwargs = given
    return args[0] if len(args) == 1 and not kwargs else dag_mod.DAGInputData(*args, **kwargs)


def _pick(value: Any, index: int) -> Any:
    return value[index]


def _call(fn: Callable[..., Any], *args: Any, _name: str = "", **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        tb = e.__traceback__
        e = e.with_traceback(tb.tb_next if tb is not None else None)  # from the method down
        return _Failed(exc.RayTaskError.from_exception(e, _name or getattr(fn, "__name__", "")))


def _dumps(value: Any, name: str) -> bytes:
    try:
        return serialization.dumps(value)
    except Exception as e:
        return serialization.dumps(_Failed(exc.RayTaskError.from_exception(e, name)))
