"""``ember.util.ActorPool`` with real actors: order, queueing beyond the pool's size, results
as they finish, timeouts, and adding or taking actors; as Ray's ``ray.util.ActorPool``."""

from __future__ import annotations

from typing import Any

import pytest

from ember.util import ActorPool

pytestmark = pytest.mark.ember_only


@pytest.fixture
def worker_cls(ray: Any) -> Any:
    @ray.remote(num_cpus=0)
    class Worker:
        def double(self, value: int) -> int:
            return 2 * value

        def after(self, signal: Any, value: int) -> int:
            """``value``, once ``signal`` is sent."""
            ray.get(signal.wait.remote())
            return value

        def fail(self, value: int) -> int:
            raise ValueError(f"bad {value}")

    return Worker


def test_map_keeps_the_order_and_queues_calls_beyond_the_pool(worker_cls: Any) -> None:
    pool = ActorPool([worker_cls.remote(), worker_cls.remote()])
    assert list(pool.map(lambda a, v: a.double.remote(v), range(7))) == [0, 2, 4, 6, 8, 10, 12]
    assert not pool.has_next() and pool.has_free()


def test_map_unordered_gives_each_result_as_it_is_ready(
    ray: Any, worker_cls: Any, signal_cls: Any
) -> None:
    signal = signal_cls.remote()
    pool = ActorPool([worker_cls.remote(), worker_cls.remote()])
    pool.submit(lambda a, v: a.after.remote(signal, v), "held")
    pool.submit(lambda a, v: a.double.remote(v), 21)
    assert pool.get_next_unordered(timeout=30) == 42  # the second call, done first
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=0.1)
    ray.get(signal.send.remote())
    assert pool.get_next_unordered() == "held"
    with pytest.raises(StopIteration, match="No more results"):
        pool.get_next_unordered()


def test_get_next_times_out_or_skips_the_call(ray: Any, worker_cls: Any, signal_cls: Any) -> None:
    signal = signal_cls.remote()
    pool = ActorPool([worker_cls.remote()])
    pool.submit(lambda a, v: a.after.remote(signal, v), 1)
    pool.submit(lambda a, v: a.double.remote(v), 5)  # waits for the only actor
    assert not pool.has_free()
    with pytest.raises(TimeoutError, match="Timed out"):
        pool.get_next(timeout=0.1)
    assert pool.has_next()  # still the first call's result to come
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next(timeout=0.1, ignore_if_timedout=True)
    ray.get(signal.send.remote())
    assert pool.get_next() == 10  # the queued call ran on the actor handed back


def test_a_failed_call_raises_and_gives_its_actor_back(worker_cls: Any) -> None:
    pool = ActorPool([worker_cls.remote()])
    pool.submit(lambda a, v: a.fail.remote(v), 3)
    with pytest.raises(ValueError, match="bad 3"):
        pool.get_next()
    assert pool.has_free()
    assert list(pool.map(lambda a, v: a.double.remote(v), [1])) == [2]


def test_push_and_pop_idle(worker_cls: Any) -> None:
    first, second = worker_cls.remote(), worker_cls.remote()
    pool = ActorPool([first])
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(first)
    pool.push(second)
    taken = pool.pop_idle()
    assert taken in (first, second)
    assert pool.pop_idle() is not None and pool.pop_idle() is None
    pool.submit(lambda a, v: a.double.remote(v), 4)  # no actor: it waits
    assert pool.has_next() is False
    pool.push(taken)  # starts the waiting call
    assert pool.get_next() == 8


def test_get_next_after_an_unordered_result_out_of_turn_is_refused(
    ray: Any, worker_cls: Any, signal_cls: Any
) -> None:
    signal = signal_cls.remote()
    pool = ActorPool([worker_cls.remote(), worker_cls.remote()])
    pool.submit(lambda a, v: a.after.remote(signal, v), "held")
    pool.submit(lambda a, v: a.double.remote(v), 2)
    assert pool.get_next_unordered(timeout=30) == 4  # the second call's, out of turn
    with pytest.raises(ValueError, match="get_next\\(\\) after get_next_unordered"):
        pool.get_next()
    ray.get(signal.send.remote())
    assert pool.get_next_unordered() == "held"


def test_ember_util_has_it_as_ray_util_does(ray: Any) -> None:
    assert ray.util.ActorPool is ActorPool
