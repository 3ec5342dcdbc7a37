"""System tests: init(local_mode=True) runs tasks and actors inside the driver process.

Ray 2.60 removed local_mode, so these tests are Ember-only and are skipped against Ray. They
follow what Ray's local mode did: the API behaves as usual (refs, get/put/wait, errors surface
at get() as RayTaskError subclasses of the original class), but everything runs in the
driver's process.
"""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.ember_only

T = 30  # upper bound for every get: a bug fails the test instead of hanging it


@pytest.fixture
def local(start_ember):
    return start_ember(num_cpus=2, local_mode=True)


def test_task_runs_in_driver_process(local):
    ray = local

    @ray.remote
    def pid():
        return os.getpid()

    ref = pid.remote()
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref, timeout=T) == os.getpid()


def test_actor_runs_in_driver_process(local):
    ray = local

    @ray.remote
    class Counter:
        def __init__(self):
            self.value = 0

        def incr(self):
            self.value += 1
            return self.value

        def pid(self):
            return os.getpid()

    c = Counter.remote()
    assert ray.get([c.incr.remote() for _ in range(3)], timeout=T) == [1, 2, 3]
    assert ray.get(c.pid.remote(), timeout=T) == os.getpid()


def test_put_get_wait(local):
    ray = local

    @ray.remote
    def double(x):
        return 2 * x

    refs = [double.remote(i) for i in range(5)]
    ready, not_ready = ray.wait(refs, num_returns=5, timeout=T)
    assert ready == refs and not_ready == []
    assert ray.get(refs, timeout=T) == [0, 2, 4, 6, 8]
    assert ray.get(double.remote(ray.put(21)), timeout=T) == 42


def test_num_returns_and_nested_tasks(local):
    ray = local

    @ray.remote(num_returns=2)
    def pair():
        return "a", "b"

    @ray.remote
    def fib(n):
        if n < 2:
            return n
        return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))

    a, b = pair.remote()
    assert ray.get([a, b], timeout=T) == ["a", "b"]
    assert ray.get(fib.remote(10), timeout=T) == 55


def test_error_raised_at_get(local):
    ray = local

    @ray.remote
    def boom():
        raise ZeroDivisionError("local boom")

    ref = boom.remote()  # does not raise here
    with pytest.raises(ZeroDivisionError, match="local boom") as info:
        ray.get(ref, timeout=T)
    assert isinstance(info.value, ray.exceptions.RayTaskError)


def test_actor_error_then_keeps_working(local):
    ray = local

    @ray.remote
    class A:
        def __init__(self):
            self.n = 0

        def step(self, fail):
            self.n += 1
            if fail:
                raise ValueError("step failed")
            return self.n

    a = A.remote()
    with pytest.raises(ValueError):
        ray.get(a.step.remote(True), timeout=T)
    assert ray.get(a.step.remote(False), timeout=T) == 2


def test_refs_nested_in_args_stay_refs(local):
    ray = local

    @ray.remote
    def inspect(top, nested):
        return isinstance(top, ray.ObjectRef), isinstance(nested[0], ray.ObjectRef)

    r = ray.put(1)
    assert ray.get(inspect.remote(r, [r]), timeout=T) == (False, True)
