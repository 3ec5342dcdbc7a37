"""The smaller ``ember.util`` helpers with real processes, as Ray's ``ray.util`` has them:
``as_completed``, ``map_unordered``, ``list_named_actors``, ``get_node_ip_address``,
``inspect_serializability``, ``register_serializer``/``deregister_serializer`` and the
``accelerators`` names. Reached as ``ray.util.X`` so that they also run on Ray."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest

from tests._helpers import wait_until


class Locked:
    """Holds a lock, so it cannot be pickled as it is."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.lock = threading.Lock()


def locked_state(obj: Locked) -> int:
    return obj.value


def rebuild_locked(value: int) -> Locked:
    return Locked(value)


def test_util_is_an_attribute_of_the_package(ray: Any) -> None:
    assert callable(ray.util.as_completed) and callable(ray.util.list_named_actors)
    assert ray.util.accelerators.NVIDIA_TESLA_V100 == "V100"
    assert ray.util.accelerators.NVIDIA_A100 == "A100"


def test_as_completed_yields_in_the_order_tasks_finish(ray: Any, signal_cls: Any) -> None:
    signal = signal_cls.remote()

    @ray.remote
    def held(signal: Any) -> str:
        ray.get(signal.wait.remote())
        return "held"

    @ray.remote
    def quick() -> str:
        return "quick"

    results = ray.util.as_completed([held.remote(signal), quick.remote()], chunk_size=1)
    assert next(results) == "quick"
    ray.get(signal.send.remote())
    assert list(results) == ["held"]


def test_as_completed_can_yield_refs_and_checks_its_arguments(ray: Any) -> None:
    @ray.remote
    def double(x: int) -> int:
        return 2 * x

    refs = [double.remote(i) for i in range(5)]
    got = list(ray.util.as_completed(refs, yield_obj_refs=True))
    assert sorted(got, key=refs.index) == refs
    assert sorted(ray.util.as_completed(refs, chunk_size=2, timeout=30)) == [0, 2, 4, 6, 8]
    with pytest.raises(ValueError, match="chunk_size"):
        list(ray.util.as_completed(refs, chunk_size=0))
    with pytest.raises(ValueError, match="num_returns"):
        list(ray.util.as_completed(refs, num_returns=2))


def test_map_unordered_reads_items_only_as_backpressure_allows(ray: Any) -> None:
    @ray.remote
    def square(x: int) -> int:
        return x * x

    taken: list[int] = []

    def items() -> Any:
        for i in range(6):
            taken.append(i)
            yield i

    results = ray.util.map_unordered(square, items(), backpressure_size=2, chunk_size=1)
    first = next(results)
    assert first in (0, 1) and len(taken) == 2  # two in flight, then one taken
    assert sorted([first, *results]) == [0, 1, 4, 9, 16, 25]
    refs = list(ray.util.map_unordered(square, range(3), yield_obj_refs=True))
    assert sorted(ray.get(refs)) == [0, 1, 4]
    with pytest.raises(ValueError, match="backpressure_size"):
        list(ray.util.map_unordered(square, range(3), backpressure_size=0))


def test_list_named_actors_by_namespace(ray: Any) -> None:
    @ray.remote(num_cpus=0)
    class Named:
        def ping(self) -> int:
            return 1

    here = Named.options(name="util-here").remote()
    there = Named.options(name="util-there", namespace="util-elsewhere").remote()
    ray.get([here.ping.remote(), there.ping.remote()])
    assert ray.util.list_named_actors() == ["util-here"]
    everywhere = ray.util.list_named_actors(all_namespaces=True)
    assert {"name": "util-there", "namespace": "util-elsewhere"} in everywhere
    assert {"name": "util-here", "namespace": ray.get_runtime_context().namespace} in everywhere
    ray.kill(here)
    wait_until(lambda: ray.util.list_named_actors() == [], 30, "the killed actor's name to go")


def test_get_node_ip_address_is_the_nodes_address(ray: Any) -> None:
    @ray.remote
    def where() -> str:
        return ray.util.get_node_ip_address()

    [node] = ray.nodes()
    assert ray.util.get_node_ip_address() == node["NodeManagerAddress"]
    assert ray.get(where.remote()) == node["NodeManagerAddress"]


def test_inspect_serializability_names_the_member_that_fails(ray: Any) -> None:
    out = io.StringIO()
    ok, failures = ray.util.inspect_serializability(Locked(1), name="locked", print_file=out)
    assert not ok
    [failure] = failures
    assert isinstance(failure.obj, type(threading.Lock()))
    assert failure.path[-1] == "lock"
    assert "lock" in out.getvalue()

    lock = threading.Lock()

    def uses_lock() -> bool:
        return lock.locked()

    ok, failures = ray.util.inspect_serializability(uses_lock, print_file=io.StringIO())
    assert not ok and [f.obj for f in failures] == [lock]
    assert ray.util.inspect_serializability([1, "two"], print_file=io.StringIO()) == (True, set())


def test_registered_serializer_applies_to_arguments_puts_and_returns(ray: Any) -> None:
    @ray.remote
    def value_of(obj: Locked) -> int:
        return obj.value

    @ray.remote
    def make(value: int) -> Locked:
        # A worker registers for what it sends itself; the driver needs nothing to read it.
        ray.util.register_serializer(Locked, serializer=locked_state, deserializer=rebuild_locked)
        return Locked(value)

    ray.util.register_serializer(Locked, serializer=locked_state, deserializer=rebuild_locked)
    try:
        assert ray.get(value_of.remote(Locked(21))) == 21
        assert ray.get(ray.put(Locked(5))).value == 5
    finally:
        ray.util.deregister_serializer(Locked)
    returned = ray.get(make.remote(7))
    assert isinstance(returned, Locked) and returned.value == 7
    with pytest.raises(TypeError):
        ray.put(Locked(1))
    ray.util.deregister_serializer(Locked)  # again: no error


@pytest.mark.ember_only
def test_register_serializer_checks_its_arguments(ray: Any) -> None:
    with pytest.raises(TypeError, match="needs a class"):
        ray.util.register_serializer(Locked(1), serializer=locked_state, deserializer=str)
    with pytest.raises(TypeError, match="deserializer must be callable"):
        ray.util.register_serializer(Locked, serializer=locked_state, deserializer=None)
