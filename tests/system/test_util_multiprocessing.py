"""``ember.util.multiprocessing.Pool`` with real actors: the standard library's ``Pool`` API
(map, starmap, imap, imap_unordered, apply, the async variants and their callbacks,
close/join/terminate, the context manager, initializer, maxtasksperchild), as Ray's
``ray.util.multiprocessing.Pool``; and a pool spread over a cluster."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import threading
from typing import Any

import pytest


@pytest.fixture
def pool_cls(ray: Any) -> Any:
    return importlib.import_module(f"{ray.__name__}.util.multiprocessing").Pool


def square(x: int) -> int:
    return x * x


def test_map_starmap_apply_and_imap_give_the_standard_librarys_results(pool_cls: Any) -> None:
    def add(a: int, b: int, c: int = 0) -> int:
        return a + b + c

    with pool_cls(2) as pool:
        assert pool.map(square, range(10)) == [x * x for x in range(10)]
        assert pool.map(square, range(5), chunksize=3) == [0, 1, 4, 9, 16]
        assert pool.map(square, []) == []
        assert pool.starmap(add, [(1, 2), (3, 4)]) == [3, 7]
        assert pool.apply(add, (1, 2), {"c": 3}) == 6
        assert pool.apply_async(add, (5, 6)).get(timeout=30) == 11
        assert pool.starmap_async(add, [(1, 1)]).get(timeout=30) == [2]
        assert list(pool.imap(square, range(7), chunksize=2)) == [x * x for x in range(7)]
        unordered = pool.imap_unordered(square, iter(range(7)))
        assert sorted(unordered) == [x * x for x in range(7)]


def test_work_runs_in_the_pools_processes(pool_cls: Any) -> None:
    def pid(_: Any) -> int:
        return os.getpid()

    with pool_cls(2) as pool:
        pids = set(pool.map(pid, range(8), chunksize=1))
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad")
    return x


def test_errors_reach_get(pool_cls: Any) -> None:
    with pool_cls(2) as pool:
        with pytest.raises(ValueError, match="three is bad"):
            pool.map(fails_on_three, range(6))
        result = pool.apply_async(fails_on_three, (3,), error_callback=lambda e: None)
        result.wait(30)
        assert result.ready() and not result.successful()
        with pytest.raises(ValueError, match="three is bad"):
            result.get()


@pytest.mark.ember_only
def test_callbacks_get_what_the_standard_librarys_do(pool_cls: Any) -> None:
    """The error itself, with the actor's traceback as its cause, and the values in order
    (Ray's pool gives its wrapper of the error, and the values in the order chunks finish)."""
    with pool_cls(2) as pool:
        errors: list[BaseException] = []
        done = threading.Event()
        pool.apply_async(
            fails_on_three, (3,), error_callback=lambda e: (errors.append(e), done.set())
        )
        assert done.wait(30) and isinstance(errors[0], ValueError)
        assert "in fails_on_three" in str(errors[0].__cause__)  # the actor's traceback
        values: list[Any] = []
        pool.map_async(square, range(8), chunksize=1, callback=values.append).wait(30)
        assert values == [[x * x for x in range(8)]]


def test_callbacks_get_the_result_and_may_submit_more(pool_cls: Any) -> None:
    with pool_cls(2) as pool:
        got: list[Any] = []
        done = threading.Event()

        def then_more(values: list[int]) -> None:
            got.append(sorted(values))
            pool.apply_async(square, (4,), callback=lambda v: (got.append(v), done.set()))

        first = pool.map_async(square, range(4), callback=then_more)
        assert first.get(timeout=30) == [0, 1, 4, 9]
        assert done.wait(30)
        assert got == [[0, 1, 4, 9], 16]


def test_get_and_next_time_out_with_the_standard_librarys_error(
    ray: Any, pool_cls: Any, signal_cls: Any
) -> None:
    signal = signal_cls.remote()

    def held(_: Any) -> str:
        ray.get(signal.wait.remote())
        return "released"

    with pool_cls(2) as pool:
        result = pool.apply_async(held, (0,))
        with pytest.raises(multiprocessing.TimeoutError):
            result.get(timeout=0.1)
        assert not result.ready()
        results = pool.imap(held, [0])
        with pytest.raises(multiprocessing.TimeoutError):
            results.next(timeout=0.1)
        ray.get(signal.send.remote())
        assert result.get(timeout=30) == "released"
        assert results.next(timeout=30) == "released"


def test_initializer_runs_in_every_process(pool_cls: Any) -> None:
    def set_env(value: str) -> None:
        os.environ["EMBER_POOL_TEST"] = value

    def read_env(_: Any) -> str | None:
        return os.environ.get("EMBER_POOL_TEST")

    with pool_cls(2, initializer=set_env, initargs=("ready",)) as pool:
        assert pool.map(read_env, range(6), chunksize=1) == ["ready"] * 6


def test_maxtasksperchild_replaces_a_process_after_its_tasks(pool_cls: Any) -> None:
    def pid(_: Any) -> int:
        return os.getpid()

    with pool_cls(1, maxtasksperchild=1) as pool:
        assert len(set(pool.map(pid, range(3), chunksize=1))) == 3


def test_close_join_and_terminate(ray: Any, pool_cls: Any, signal_cls: Any) -> None:
    pool = pool_cls(2)
    with pytest.raises(ValueError):
        pool.join()  # still running
    pending = pool.map_async(square, range(6))
    pool.close()
    with pytest.raises(ValueError):
        pool.map(square, range(2))
    pool.join()  # waits for what was submitted
    assert pending.ready() and pending.get() == [x * x for x in range(6)]

    signal = signal_cls.remote()

    def held(_: Any) -> None:
        ray.get(signal.wait.remote())

    pool = pool_cls(2)
    stuck = pool.apply_async(held, (0,))
    pool.terminate()
    with pytest.raises(ray.exceptions.RayActorError):
        stuck.get(timeout=30)
    pool.join()


def test_bad_arguments_are_refused(pool_cls: Any) -> None:
    with pytest.raises(ValueError):
        pool_cls(0)
    with pytest.raises(ValueError):
        pool_cls(3)  # more processes than the 2 CPUs


@pytest.mark.ember_only
def test_bad_arguments_are_refused_with_the_standard_librarys_errors(pool_cls: Any) -> None:
    with pytest.raises(TypeError, match="initializer must be a callable"):
        pool_cls(1, initializer=5)
    with pytest.raises(ValueError, match="maxtasksperchild"):
        pool_cls(1, maxtasksperchild=0)
    with pool_cls(1) as pool, pytest.raises(ValueError, match="chunksize"):
        pool.map(square, range(3), chunksize=0)


G_VALUE = None


@pytest.mark.ember_only  # Ray's pool gives each pickled function its own globals
def test_initializer_may_set_globals_for_the_work(pool_cls: Any) -> None:
    def set_global(value: int) -> None:
        global G_VALUE
        G_VALUE = value

    def read_global(_: Any) -> int | None:
        return G_VALUE

    with pool_cls(2, initializer=set_global, initargs=(7,)) as pool:
        assert pool.map(read_global, range(4), chunksize=1) == [7, 7, 7, 7]


@pytest.mark.ember_only  # Ray's imap hands back a wrapper object for a failed item
def test_imap_raises_a_failed_item_where_it_comes_and_goes_on(pool_cls: Any) -> None:
    def fails_on_two(x: int) -> int:
        if x == 2:
            raise KeyError(x)
        return x

    with pool_cls(2) as pool:
        results = pool.imap(fails_on_two, range(4))
        assert [next(results), next(results)] == [0, 1]
        with pytest.raises(KeyError):
            next(results)
        assert list(results) == [3]


@pytest.mark.ember_only
def test_a_pool_on_a_cluster_uses_every_node(make_cluster: Any) -> None:
    import ember
    from ember.util.multiprocessing import Pool

    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    ember.shutdown()  # the pool joins the cluster itself, by its address

    def node(_: Any) -> str:
        return ember.get_runtime_context().get_node_id()

    with Pool(2, ray_address=cluster.address) as pool:
        nodes = set(pool.map(node, range(8), chunksize=1))
    assert nodes == {n["NodeID"] for n in ember.nodes()}
