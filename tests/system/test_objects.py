"""System tests: ObjectRef, put/get, wait, numpy arrays, asyncio integration.

Checked against real Ray 2.60. Things Ray does that may surprise an implementer:
- An ObjectRef survives pickle.dumps/pickle.loads inside the driver and still gets.
- get(1) raises ValueError; put(ref) raises TypeError; wait(ref) (not a list) raises TypeError;
  wait() with duplicate refs or num_returns > len(refs) raises ValueError.
- GetTimeoutError is also a TimeoutError; get(timeout=0) on an unfinished ref raises it.
- wait() keeps the input order within both returned lists, but when more refs are ready than
  num_returns, which of them are returned is not the first ones in input order (do not rely
  on it). Failed tasks count as ready.
- Large numpy arrays come back from get() as read-only views of shared memory.
"""

from __future__ import annotations

import asyncio
import pickle
import time

import numpy as np
import pytest

T = 30  # upper bound for every get: a bug fails the test instead of hanging it


def test_put_get_roundtrip(ray):
    for value in [None, 0, "text", b"bytes", [1, {"a": (2, 3)}], {1, 2}, 3.5]:
        ref = ray.put(value)
        assert isinstance(ref, ray.ObjectRef)
        assert ray.get(ref, timeout=T) == value


def test_get_list_preserves_order(ray):
    refs = [ray.put(i) for i in range(10)]
    assert ray.get(refs, timeout=T) == list(range(10))
    assert ray.get([], timeout=T) == []


def test_get_same_ref_twice(ray):
    ref = ray.put("x")
    assert ray.get([ref, ref], timeout=T) == ["x", "x"]
    assert ray.get(ref, timeout=T) == "x"


def test_object_ref_hashable_and_dict_key(ray):
    a = ray.put(1)
    b = ray.put(2)
    d = {a: "a", b: "b"}
    assert d[a] == "a" and d[b] == "b"
    assert len({a, b, a}) == 2
    assert a == a and a != b
    assert hash(a) == hash(a)


def test_object_ref_pickle_roundtrip_in_driver(ray):
    @ray.remote
    def f():
        return {"v": 42}

    ref = f.remote()
    copy = pickle.loads(pickle.dumps(ref))
    assert isinstance(copy, ray.ObjectRef)
    assert copy == ref
    assert hash(copy) == hash(ref)
    assert ray.get(copy, timeout=T) == {"v": 42}


def test_get_of_non_ref_raises(ray):
    with pytest.raises(ValueError):
        ray.get(1)


def test_put_of_object_ref_raises(ray):
    ref = ray.put(1)
    with pytest.raises(TypeError):
        ray.put(ref)
    # wrapping it is fine
    inner = ray.get(ray.put([ref]), timeout=T)[0]
    assert ray.get(inner, timeout=T) == 1


def test_get_timeout_raises_get_timeout_error(ray, blocked_task):
    ref = blocked_task.remote()
    t0 = time.monotonic()
    with pytest.raises(ray.exceptions.GetTimeoutError) as info:
        ray.get(ref, timeout=0.3)
    elapsed = time.monotonic() - t0
    assert isinstance(info.value, TimeoutError)
    assert 0.2 <= elapsed < 10
    with pytest.raises(TimeoutError):
        ray.get(ref, timeout=0)
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get([ray.put(1), ref], timeout=0.1)
    blocked_task.release()
    assert ray.get(ref, timeout=T) is True


def test_small_numpy_roundtrip(ray):
    arr = np.arange(10, dtype=np.int32)
    out = ray.get(ray.put(arr), timeout=T)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, arr)


def test_large_numpy_comes_back_read_only(ray):
    arr = np.random.default_rng(0).random((1000, 1000))  # 8 MB
    out = ray.get(ray.put(arr), timeout=T)
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable is False
    with pytest.raises(ValueError):
        out[0, 0] = 1.0
    # the caller's original is untouched and still writable
    assert arr.flags.writeable is True


def test_large_numpy_task_result_read_only(ray):
    @ray.remote
    def make(n):
        return np.ones(n, dtype=np.float64)

    out = ray.get(make.remote(1_000_000), timeout=T)
    assert out.shape == (1_000_000,)
    assert out.sum() == 1_000_000
    assert out.flags.writeable is False


def test_numpy_arg_to_task(ray):
    @ray.remote
    def stats(a):
        return float(a.sum()), a.shape, str(a.dtype)

    arr = np.arange(600_000, dtype=np.int64).reshape(600, 1000)
    assert ray.get(stats.remote(arr), timeout=T) == (float(arr.sum()), (600, 1000), "int64")
    assert ray.get(stats.remote(ray.put(arr)), timeout=T) == (
        float(arr.sum()),
        (600, 1000),
        "int64",
    )


def test_put_100mb_array(ray):
    arr = np.arange(100 * 1024 * 1024 // 8, dtype=np.int64)  # 100 MiB
    ref = ray.put(arr)
    out = ray.get(ref, timeout=60)
    assert out.nbytes == arr.nbytes
    assert out[0] == 0 and out[-1] == arr[-1]
    np.testing.assert_array_equal(out[::100_000], arr[::100_000])

    @ray.remote
    def last(a):
        return int(a[-1]), a.nbytes

    assert ray.get(last.remote(ref), timeout=60) == (int(arr[-1]), arr.nbytes)


def test_numpy_inside_containers(ray):
    data = {"a": np.zeros(3), "b": [np.ones((2, 2)), "x"]}
    out = ray.get(ray.put(data), timeout=T)
    np.testing.assert_array_equal(out["a"], np.zeros(3))
    np.testing.assert_array_equal(out["b"][0], np.ones((2, 2)))
    assert out["b"][1] == "x"


def _assert_split_keeps_order(refs, ready, not_ready):
    assert len(ready) + len(not_ready) == len(refs)
    assert set(ready) | set(not_ready) == set(refs)
    assert ready == [r for r in refs if r in set(ready)]
    assert not_ready == [r for r in refs if r in set(not_ready)]


def test_wait_num_returns_and_order(ray, blocked_task):
    @ray.remote
    def fast(i):
        return i

    blocked = blocked_task.remote()
    done = [fast.remote(i) for i in range(3)]
    ray.get(done, timeout=T)
    refs = [done[0], blocked, done[1], done[2]]

    # Which of several ready refs are returned is not specified; their order is.
    for n in (1, 2):
        ready, not_ready = ray.wait(refs, num_returns=n, timeout=T)
        assert len(ready) == n
        assert set(ready) <= set(done)
        _assert_split_keeps_order(refs, ready, not_ready)

    ready, not_ready = ray.wait(refs, num_returns=3, timeout=T)
    assert ready == [done[0], done[1], done[2]]
    assert not_ready == [blocked]

    ready, not_ready = ray.wait(refs)  # default num_returns=1
    assert len(ready) == 1 and ready[0] in done
    _assert_split_keeps_order(refs, ready, not_ready)

    ready, not_ready = ray.wait(refs, num_returns=4, timeout=0.2)  # timeout: partial
    assert ready == [done[0], done[1], done[2]]
    assert not_ready == [blocked]

    blocked_task.release()
    ready, not_ready = ray.wait(refs, num_returns=4, timeout=T)
    assert ready == refs and not_ready == []


def test_wait_timeout_returns_partial(ray, blocked_task):
    a, b = blocked_task.remote(), blocked_task.remote()
    done = ray.put("done")
    t0 = time.monotonic()
    ready, not_ready = ray.wait([a, done, b], num_returns=2, timeout=0.3)
    elapsed = time.monotonic() - t0
    assert ready == [done]
    assert not_ready == [a, b]
    assert 0.2 <= elapsed < 10
    blocked_task.release()
    assert ray.get([a, b], timeout=T) == [True, True]


def test_wait_timeout_zero(ray, blocked_task):
    pending = blocked_task.remote()
    t0 = time.monotonic()
    ready, not_ready = ray.wait([pending], timeout=0)
    assert time.monotonic() - t0 < 5
    assert ready == [] and not_ready == [pending]
    blocked_task.release()
    ray.get(pending, timeout=T)


def test_wait_returns_as_soon_as_enough_ready(ray, blocked_task):
    pending = blocked_task.remote()
    done = ray.put(1)
    t0 = time.monotonic()
    ready, not_ready = ray.wait([pending, done], num_returns=1, timeout=T)
    assert time.monotonic() - t0 < T / 2
    assert ready == [done] and not_ready == [pending]
    blocked_task.release()
    ray.get(pending, timeout=T)


def test_wait_fetch_local_false(ray):
    @ray.remote
    def f():
        return np.zeros(200_000)

    refs = [f.remote() for _ in range(3)]
    ready, not_ready = ray.wait(refs, num_returns=3, timeout=T, fetch_local=False)
    assert ready == refs and not_ready == []
    assert all(x.shape == (200_000,) for x in ray.get(refs, timeout=T))


def test_wait_argument_errors(ray):
    ref = ray.put(1)
    with pytest.raises(TypeError):
        ray.wait(ref)
    with pytest.raises(ValueError):
        ray.wait([ref, ref])
    with pytest.raises(ValueError):
        ray.wait([ref], num_returns=2)
    with pytest.raises(TypeError):  # the refs are checked before num_returns, as in Ray
        ray.wait([ref, 1], num_returns=3)
    assert ray.wait([], num_returns=0) == ([], [])


def test_wait_for_none_of_the_refs_is_refused(ray):
    """Ray refuses num_returns=0 for a list of refs; Ember used to return ([], refs)."""
    with pytest.raises(ValueError):
        ray.wait([ray.put(1)], num_returns=0)


def _wait_loop(ray, refs, until):
    """wait(num_returns=1) on what the last call left, until ``until`` refs are returned;
    checks each call's split against the input order. Returns (returned, left)."""
    rest, returned = list(refs), []
    while len(returned) < until:
        ready, after = ray.wait(rest, num_returns=1, timeout=T)
        assert len(ready) == 1 and ready[0] in rest
        _assert_split_keeps_order(rest, ready, after)
        returned += ready
        rest = after
    return returned, rest


def test_wait_loop_over_pending_tasks_returns_each_once(ray, blocked_task):
    @ray.remote
    def echo(i, *_):
        return i

    gate = blocked_task.remote()
    gated = {i for i in range(40) if i % 10 == 3}  # these wait for the gate (no CPU held)
    refs = [echo.remote(i, gate) if i in gated else echo.remote(i) for i in range(40)]
    returned, rest = _wait_loop(ray, refs, 40 - len(gated))
    assert sorted(ray.get(returned, timeout=T)) == [i for i in range(40) if i not in gated]
    assert rest == [refs[i] for i in sorted(gated)]
    assert ray.wait(rest, num_returns=1, timeout=0.2) == ([], rest)  # timed out: nothing
    blocked_task.release()
    returned, rest = _wait_loop(ray, rest, len(gated))
    assert rest == [] and sorted(ray.get(returned, timeout=T)) == sorted(gated)


def test_wait_loop_on_a_list_changed_between_calls(ray):
    refs = [ray.put(i) for i in range(30)]
    ready, rest = ray.wait(refs, num_returns=1, timeout=T)
    _assert_split_keeps_order(refs, ready, rest)
    rest.reverse()
    rest.remove(rest[5])
    rest.append(ray.put("extra"))
    for n, fetch_local in ((2, True), (1, False), (1, True)):
        ready, after = ray.wait(rest, num_returns=n, timeout=T, fetch_local=fetch_local)
        assert len(ready) == n
        _assert_split_keeps_order(rest, ready, after)
        rest = after
    assert len(rest) == 30 - 1 - 1 + 1 - 4


def test_wait_loops_in_two_threads_at_once(ray):
    import threading

    @ray.remote
    def slow(i):
        time.sleep(0.01)
        return i

    lists = [[slow.remote(i) for i in range(k, k + 30)] for k in (0, 100)]
    got = {}

    def loop(k):
        returned, _ = _wait_loop(ray, lists[k], 30)
        got[k] = sorted(ray.get(returned, timeout=T))

    threads = [threading.Thread(target=loop, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T)
    assert got == {0: list(range(30)), 1: list(range(100, 130))}


def test_wait_counts_failed_tasks_as_ready(ray):
    @ray.remote
    def boom():
        raise ValueError("boom")

    ref = boom.remote()
    ready, not_ready = ray.wait([ref], timeout=T)
    assert ready == [ref] and not_ready == []
    with pytest.raises(ValueError):
        ray.get(ref, timeout=T)


def test_await_object_ref(ray):
    @ray.remote
    def f(x):
        return x * 3

    async def main():
        one = await f.remote(2)
        many = await asyncio.gather(*[f.remote(i) for i in range(4)])
        return one, many

    assert asyncio.run(asyncio.wait_for(main(), T)) == (6, [0, 3, 6, 9])


def test_await_object_ref_raises_task_error(ray):
    @ray.remote
    def boom():
        raise KeyError("missing")

    async def main():
        await boom.remote()

    with pytest.raises(KeyError):
        asyncio.run(asyncio.wait_for(main(), T))


def test_object_ref_future(ray):
    @ray.remote
    def f():
        return "future-value"

    fut = f.remote().future()
    assert fut.result(timeout=T) == "future-value"


def test_object_ref_future_timeout(ray, blocked_task):
    import concurrent.futures

    ref = blocked_task.remote()
    fut = ref.future()
    with pytest.raises(concurrent.futures.TimeoutError):
        fut.result(timeout=0.2)
    blocked_task.release()
    assert fut.result(timeout=T) is True


def test_refs_inside_a_value_a_worker_put_live_as_long_as_the_value(start_ember, short_grace):
    """A worker puts objects (and makes an actor), puts a list of their refs and returns a
    ref to that list. The worker lets go of everything; the driver still holds the list, so
    what it refers to must live on (they were freed, and the actor ended)."""
    grace_args, past_grace = short_grace
    ray = start_ember(num_cpus=2, **grace_args)

    @ray.remote
    class Pinger:
        def ping(self):
            return "pong"

    @ray.remote
    def make():
        stored = ray.put(np.full(300_000, 8.0))
        small = ray.put("small")
        return [ray.put([stored, small, Pinger.remote()])]

    [box] = ray.get(make.remote(), timeout=T)
    # Past the grace after which unreferenced objects go; no event marks "not gone".
    time.sleep(past_grace)
    stored, small, pinger = ray.get(box, timeout=T)
    assert ray.get(stored, timeout=T)[0] == 8.0
    assert ray.get(small, timeout=T) == "small"
    assert ray.get(pinger.ping.remote(), timeout=T) == "pong"
