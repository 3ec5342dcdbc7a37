"""``ember.dag``: lazy graphs built with ``.bind()`` and run with ``execute``, and compiled
graphs of actor calls (``experimental_compile``), as Ray's ``ray.dag``.

The module is looked up under the framework's own name (``ray.dag`` when the shim runs these
tests on Ray), so that Ray's classes are the ones its compiler checks for.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
import warnings
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from tests._helpers import wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's execute() warns


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def dag(ray: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(f"{ray.__name__}.dag")


@pytest.fixture
def fns(ray: Any) -> Any:
    @ray.remote
    def add(a: Any, b: Any) -> Any:
        return a + b

    @ray.remote
    def ident(x: Any) -> Any:
        return x

    @ray.remote
    class Counter:
        def __init__(self, start: int = 0) -> None:
            self.n = start

        def inc(self, by: int = 1) -> int:
            self.n += by
            return self.n

        def value(self) -> int:
            return self.n

        def echo(self, x: Any) -> Any:
            return x

        def scale(self, x: int) -> int:
            return self.n * x

        def pair(self, x: int) -> tuple[int, int]:
            return x, -x

        def nap(self, seconds: float) -> float:
            time.sleep(seconds)
            return seconds

        def fail(self, x: Any) -> Any:
            if x < 0:
                raise ValueError(f"negative: {x}")
            return x

    class Fns:
        pass

    out = Fns()
    out.add, out.ident, out.Counter = add, ident, Counter  # type: ignore[attr-defined]
    return out


# ----------------------------------------------------------------------------- execute


def test_functions_and_inputs(ray: Any, dag: Any, fns: Any) -> None:
    with dag.InputNode() as inp:
        graph = fns.add.bind(inp[0], fns.add.bind(inp[1], 10))
    ref = graph.execute(1, 2)
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref) == 13

    with dag.InputNode() as inp:
        single = fns.add.bind(inp, inp)
        by_key = fns.add.bind(inp.x, inp["y"])
    assert ray.get(single.execute(4)) == 8
    assert ray.get(by_key.execute(x=1, y=2)) == 3
    with dag.InputNode() as inp:
        from_dict = fns.add.bind(inp["x"], inp["y"])
    assert ray.get(from_dict.execute({"x": 5, "y": 6})) == 11  # one dict, indexed

    class Point:
        def __init__(self, x: int, y: int) -> None:
            self.x, self.y = x, y

    with dag.InputNode() as inp:
        attr = fns.add.bind(inp.x, inp.y)
    assert ray.get(attr.execute(Point(2, 3))) == 5
    with dag.InputNode() as inp:
        indexed = fns.add.bind(inp[0], inp[1])
    assert ray.get(indexed.execute([7, 8])) == 15  # one list, indexed
    assert ray.get(fns.add.bind(1, 2).execute()) == 3  # no InputNode at all


def test_multi_output_and_a_shared_node_runs_once(ray: Any, dag: Any, fns: Any) -> None:
    counter = fns.Counter.remote()
    with dag.InputNode() as inp:
        step = counter.inc.bind(inp)
        graph = dag.MultiOutputNode([step, fns.add.bind(step, 100), step])
    refs = graph.execute(5)
    assert isinstance(refs, list) and len(refs) == 3
    assert ray.get(refs) == [5, 105, 5]
    assert ray.get(counter.value.remote()) == 5  # inc ran once for the three uses


def test_nodes_inside_containers_become_refs(ray: Any, dag: Any, fns: Any) -> None:
    with dag.InputNode() as inp:
        graph = fns.ident.bind([fns.add.bind(inp, 1), {"k": fns.add.bind(inp, 2)}])
    value = ray.get(graph.execute(1))
    inner, mapping = value
    assert isinstance(inner, ray.ObjectRef) and isinstance(mapping["k"], ray.ObjectRef)
    assert ray.get([inner, mapping["k"]]) == [2, 3]


def test_class_node_makes_a_new_actor_per_execute(ray: Any, dag: Any, fns: Any) -> None:
    with dag.InputNode() as inp:
        counter = fns.Counter.bind(100)
        graph = counter.inc.bind(inp)
    assert ray.get(graph.execute(1)) == 101
    assert ray.get(graph.execute(1)) == 101  # a fresh actor, not the first one's state
    handle = fns.Counter.bind(7).execute()
    assert ray.get(handle.value.remote()) == 7


def test_calls_bound_on_a_class_node_run_in_bind_order(ray: Any, dag: Any, fns: Any) -> None:
    with dag.InputNode() as inp:
        counter = fns.Counter.bind()
        counter.inc.bind(inp)
        last = counter.value.bind()
    assert ray.get(last.execute(9)) == 9  # executing value() ran the inc bound before it


def test_options_bind(ray: Any, dag: Any, fns: Any) -> None:
    handle = fns.Counter.options(name="dag_named_counter").bind(3).execute()
    assert ray.get(ray.get_actor("dag_named_counter").value.remote()) == 3
    with dag.InputNode() as inp:
        plus, minus = handle.pair.options(num_returns=2).bind(inp)
        graph = dag.MultiOutputNode([plus, minus])
    assert ray.get(graph.execute(4)) == [4, -4]
    with dag.InputNode() as inp:
        graph = fns.add.options(num_cpus=0.5).bind(inp, 1)
    assert ray.get(graph.execute(1)) == 2


def test_public_names(dag: Any) -> None:
    for name in ("DAGNode", "FunctionNode", "ClassNode", "ClassMethodNode", "InputNode"):
        assert isinstance(getattr(dag, name), type)
    assert issubclass(dag.MultiOutputNode, dag.DAGNode)
    assert issubclass(dag.InputNode, dag.DAGNode)


def test_nodes_at_the_module_paths_of_rays_docs(ray: Any, dag: Any) -> None:
    input_node = importlib.import_module(f"{ray.__name__}.dag.input_node")
    output_node = importlib.import_module(f"{ray.__name__}.dag.output_node")
    assert input_node.InputNode is dag.InputNode
    assert output_node.MultiOutputNode is dag.MultiOutputNode


def test_node_types(ray: Any, dag: Any, fns: Any) -> None:
    handle = fns.Counter.remote()
    class_node = fns.Counter.bind()
    assert isinstance(fns.add.bind(1, 2), dag.FunctionNode)
    assert isinstance(class_node, dag.ClassNode)
    assert isinstance(class_node.inc.bind(1), dag.ClassMethodNode)
    assert isinstance(handle.inc.bind(1), dag.ClassMethodNode)


def test_misuse_is_refused(ray: Any, dag: Any, fns: Any) -> None:
    node = fns.add.bind(1, 2)
    with pytest.raises(AttributeError, match="execute"):
        node.remote()
    with pytest.raises(ValueError):
        dag.InputNode(1)
    with dag.InputNode() as inp, pytest.raises(ValueError, match="InputNode"):
        fns.Counter.bind(inp)


# ----------------------------------------------------------------------------- compiled


def test_compiled_graph_runs_many_times(ray: Any, dag: Any, fns: Any) -> None:
    actor = fns.Counter.remote(2)
    with dag.InputNode() as inp:
        graph = actor.echo.bind(actor.scale.bind(inp))
    compiled = graph.experimental_compile()
    try:
        for i in range(50):
            assert ray.get(compiled.execute(i)) == 2 * i
        assert compiled.execute(21).get() == 42
        refs = [compiled.execute(i) for i in range(5)]  # several in flight
        assert [ray.get(r) for r in refs] == [0, 2, 4, 6, 8]
        assert ray.get(actor.value.remote()) == 2  # ordinary calls still run
    finally:
        compiled.teardown()


def test_compiled_graph_across_actors_with_several_outputs(ray: Any, dag: Any, fns: Any) -> None:
    first, second = fns.Counter.remote(10), fns.Counter.remote(100)
    with dag.InputNode() as inp:
        a = first.scale.bind(inp[0])
        b = second.scale.bind(inp[1])
        graph = dag.MultiOutputNode([a, second.echo.bind(a), b])
    compiled = graph.experimental_compile()
    try:
        for i in range(10):
            refs = compiled.execute(i, 1)
            assert isinstance(refs, list) and len(refs) == 3
            assert ray.get(refs) == [10 * i, 10 * i, 100]
    finally:
        compiled.teardown()


def test_compiled_graph_error_surfaces_at_get_and_the_graph_goes_on(
    ray: Any, dag: Any, fns: Any
) -> None:
    actor = fns.Counter.remote()
    with dag.InputNode() as inp:
        graph = actor.echo.bind(actor.fail.bind(inp))
    compiled = graph.experimental_compile()
    try:
        with pytest.raises(ValueError, match="negative: -1"):
            ray.get(compiled.execute(-1))
        assert ray.get(compiled.execute(3)) == 3
        ref = compiled.execute(4)
        assert ray.get(ref) == 4
        with pytest.raises(ValueError, match="once"):
            ray.get(ref)
    finally:
        compiled.teardown()


@contextlib.contextmanager
def compiled_call(dag: Any, method: Any, **options: Any) -> Iterator[Any]:
    """A compiled graph of one actor method given the input, torn down afterwards."""
    with dag.InputNode() as inp:
        graph = method.bind(inp)
    compiled = graph.experimental_compile(**options)
    try:
        yield compiled
    finally:
        compiled.teardown()


def test_in_flight_executions_are_limited(ray: Any, dag: Any, fns: Any) -> None:
    actor = fns.Counter.remote()
    with compiled_call(dag, actor.echo, _max_inflight_executions=2) as compiled:
        first, second = compiled.execute(1), compiled.execute(2)
        with pytest.raises(ray.exceptions.RayCgraphCapacityExceeded):
            compiled.execute(3)
        assert ray.get(first) == 1
        third = compiled.execute(3)
        assert ray.get([second, third]) == [2, 3]


def test_a_get_that_times_out_leaves_the_graph_usable(ray: Any, dag: Any, fns: Any) -> None:
    with compiled_call(dag, fns.Counter.remote().nap) as compiled:
        slow = compiled.execute(0.5)
        with pytest.raises(TimeoutError):
            ray.get(slow, timeout=0.01)
        assert ray.get(compiled.execute(0)) == 0


def test_dag_context_sets_the_defaults_of_later_compiles(ray: Any, dag: Any, fns: Any) -> None:
    context = dag.DAGContext.get_current()
    assert context is dag.DAGContext.get_current()
    assert (context.submit_timeout, context.get_timeout) == (10, 10)
    assert context.buffer_size_bytes == 1_000_000 and context.max_inflight_executions == 10
    context.max_inflight_executions = 1
    try:
        with compiled_call(dag, fns.Counter.remote().echo) as compiled:
            context.max_inflight_executions = 10  # read at compile time only
            first = compiled.execute(1)
            with pytest.raises(ray.exceptions.RayCgraphCapacityExceeded):
                compiled.execute(2)
            assert ray.get(first) == 1
    finally:
        context.max_inflight_executions = 10


def test_compiled_graph_carries_large_values(ray: Any, dag: Any, fns: Any) -> None:
    with compiled_call(dag, fns.Counter.remote().echo) as compiled:
        big = b"x" * (3 << 20)  # more than the 1 MB a channel starts with
        assert ray.get(compiled.execute(big)) == big
        assert ray.get(compiled.execute(b"small")) == b"small"


def test_teardown_frees_the_actor_for_calls_and_another_graph(ray: Any, dag: Any, fns: Any) -> None:
    actor = fns.Counter.remote(1)
    with dag.InputNode() as inp:
        graph = actor.scale.bind(inp)
    compiled = graph.experimental_compile()
    assert ray.get(compiled.execute(5)) == 5
    compiled.teardown()
    assert ray.get(actor.inc.remote()) == 2
    with dag.InputNode() as inp:
        again = actor.scale.bind(inp)
    compiled = again.experimental_compile()
    try:
        assert ray.get(compiled.execute(5)) == 10
    finally:
        compiled.teardown()


def test_what_cannot_be_compiled_is_refused(ray: Any, dag: Any, fns: Any) -> None:
    with dag.InputNode() as inp:
        graph = fns.add.bind(inp, 1)
    with pytest.raises(NotImplementedError, match="actor method"):
        graph.experimental_compile()
    with dag.InputNode() as inp:
        graph = fns.Counter.bind().echo.bind(inp)
    with pytest.raises(ValueError, match="Actor.remote"):
        graph.experimental_compile()


@pytest.mark.ember_only
def test_a_dead_actor_fails_get_instead_of_hanging(ray: Any, dag: Any, fns: Any) -> None:
    actor = fns.Counter.remote()
    with dag.InputNode() as inp:
        graph = actor.echo.bind(inp)
    compiled = graph.experimental_compile()
    assert ray.get(compiled.execute(1)) == 1
    pid = ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))
    ray.kill(actor)
    wait_until(lambda: not _running(pid), 30, "the killed actor's process to end")
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(compiled.execute(2), timeout=30)
    compiled.teardown()


@pytest.mark.ember_only
def test_actors_on_another_node_are_refused(make_cluster: Any) -> None:
    import ember
    from ember.dag import InputNode

    make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"other": 1}})

    @ember.remote(resources={"other": 1})
    class Far:
        def echo(self, x: Any) -> Any:
            return x

    far = Far.remote()
    with InputNode() as inp:
        graph = far.echo.bind(inp)
    with pytest.raises(ValueError, match="driver's node"):
        graph.experimental_compile()


@pytest.mark.ember_only
def test_one_compiled_graph_per_actor_until_teardown_and_shutdown_ends_it(
    ray: Any, dag: Any, fns: Any
) -> None:
    actor = fns.Counter.remote(3)
    with dag.InputNode() as inp:
        first = actor.scale.bind(inp)
    compiled = first.experimental_compile()
    assert ray.get(compiled.execute(2)) == 6
    with dag.InputNode() as inp:
        second = actor.echo.bind(inp)
    with pytest.raises(ValueError, match="already runs another compiled graph"):
        second.experimental_compile()
    with pytest.raises(ValueError, match="already called"):
        first.experimental_compile()
    assert ray.get(compiled.execute(3)) == 9  # still running; shutdown() tears it down
