"""System tests: actors (state, ordering, handles, concurrency, naming, kill/restart).

Checked against real Ray 2.60. Things Ray does that may surprise an implementer:
- get_actor() looks only in the caller's namespace; the driver's namespace is an anonymous one
  unless init(namespace=...) is given, so an actor named in namespace "ns" is found only with
  get_actor(name, namespace="ns"). A missing name raises ValueError.
- Creating a second actor with a name already in use raises ValueError at .remote();
  get_if_exists=True returns a handle to the existing actor instead.
- Accessing a method that does not exist on a handle raises AttributeError on the driver.
- kill() returns once the actor is dead for this process: a call submitted right after it
  raises ActorDiedError (a RayActorError), through any handle, and its name is free at once
  (get_actor fails, a new actor may take it). kill(no_restart=False) on an actor with
  max_restarts=1 restarts it; its state is rebuilt by __init__.
- A named actor that is not detached still dies when its creator's last handle goes away.
- An exception in __init__ makes every method call raise ActorDiedError.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from tests._helpers import get_when_answered, wait_until

T = 30  # upper bound for every get: a bug fails the test instead of hanging it


def _counter_cls(ray):
    @ray.remote
    class Counter:
        def __init__(self, start=0):
            self.value = start

        def incr(self, by=1):
            self.value += by
            return self.value

        def get(self):
            return self.value

        def pid(self):
            return os.getpid()

    return Counter


def test_actor_keeps_state(ray):
    Counter = _counter_cls(ray)
    c = Counter.remote()
    assert ray.get(c.incr.remote(), timeout=T) == 1
    assert ray.get(c.incr.remote(), timeout=T) == 2
    assert ray.get(c.incr.remote(by=5), timeout=T) == 7
    assert ray.get(c.get.remote(), timeout=T) == 7


def test_actor_constructor_args_and_separate_instances(ray):
    Counter = _counter_cls(ray)
    a, b = Counter.remote(10), Counter.remote(start=100)
    ray.get([a.incr.remote(), b.incr.remote(), b.incr.remote()], timeout=T)
    assert ray.get([a.get.remote(), b.get.remote()], timeout=T) == [11, 102]


def test_actor_lives_in_one_other_process(ray):
    Counter = _counter_cls(ray)
    c = Counter.remote()
    pids = set(ray.get([c.pid.remote() for _ in range(5)], timeout=T))
    assert len(pids) == 1
    assert pids.pop() != os.getpid()


def test_calls_from_one_caller_run_in_submission_order(ray):
    @ray.remote
    class Log:
        def __init__(self):
            self.items = []

        def append(self, i):
            self.items.append(i)
            return i

        def items_(self):
            return self.items

    log = Log.remote()
    refs = [log.append.remote(i) for i in range(100)]
    assert ray.get(log.items_.remote(), timeout=T) == list(range(100))
    assert ray.get(refs, timeout=T) == list(range(100))


def test_actor_method_with_ref_args_keeps_order(ray):
    @ray.remote
    def slow_value(x):
        time.sleep(0.2)
        return x

    @ray.remote
    class Log:
        def __init__(self):
            self.items = []

        def append(self, i):
            self.items.append(i)

        def items_(self):
            return self.items

    log = Log.remote()
    log.append.remote(slow_value.remote(0))  # its argument is ready only later
    log.append.remote(1)
    assert ray.get(log.items_.remote(), timeout=T) == [0, 1]


def test_handle_passed_to_tasks(ray):
    Counter = _counter_cls(ray)
    c = Counter.remote()

    @ray.remote
    def bump(counter, n):
        for _ in range(n):
            ray.get(counter.incr.remote(), timeout=T)
        return True

    assert ray.get([bump.remote(c, 5) for _ in range(4)], timeout=T) == [True] * 4
    assert ray.get(c.get.remote(), timeout=T) == 20


def test_handle_passed_to_other_actor(ray):
    Counter = _counter_cls(ray)
    c = Counter.remote()

    @ray.remote
    class User:
        def __init__(self, counter):
            self.counter = counter

        def use(self):
            return ray.get(self.counter.incr.remote(10), timeout=T)

        def use_passed(self, other):
            return ray.get(other.incr.remote(100), timeout=T)

    u = User.remote(c)
    assert ray.get(u.use.remote(), timeout=T) == 10
    assert ray.get(u.use_passed.remote(c), timeout=T) == 110
    assert ray.get(c.get.remote(), timeout=T) == 110


def test_actor_handle_in_container(ray):
    Counter = _counter_cls(ray)
    cs = [Counter.remote() for _ in range(2)]

    @ray.remote
    def bump_all(handles):
        return ray.get([h.incr.remote() for h in handles["list"]], timeout=T)

    assert ray.get(bump_all.remote({"list": cs}), timeout=T) == [1, 1]


def test_actor_can_return_its_own_handle(ray):
    @ray.remote
    class Node:
        def __init__(self):
            self.children = []

        def spawn(self):
            child = Node.remote()
            self.children.append(child)
            return child

        def ping(self):
            return "pong"

    root = Node.remote()
    child = ray.get(root.spawn.remote(), timeout=T)
    assert ray.get(child.ping.remote(), timeout=T) == "pong"


def test_options_on_actor_class(ray):
    Counter = _counter_cls(ray)
    c = Counter.options(num_cpus=0, name="opt-counter").remote(3)
    assert ray.get(c.incr.remote(), timeout=T) == 4
    assert ray.get(ray.get_actor("opt-counter").get.remote(), timeout=T) == 4


def test_method_decorator_num_returns(ray):
    @ray.remote
    class A:
        @ray.method(num_returns=2)
        def two(self):
            return "x", "y"

        def one(self):
            return ("x", "y")

    a = A.remote()
    r1, r2 = a.two.remote()
    assert ray.get(r1, timeout=T) == "x"
    assert ray.get(r2, timeout=T) == "y"
    assert ray.get(a.one.remote(), timeout=T) == ("x", "y")


def test_options_on_actor_method(ray):
    @ray.remote
    class A:
        def three(self):
            return 1, 2, 3

    a = A.remote()
    refs = a.three.options(num_returns=3).remote()
    assert ray.get(list(refs), timeout=T) == [1, 2, 3]
    assert ray.get(a.three.remote(), timeout=T) == (1, 2, 3)


def test_missing_method_raises_attribute_error(ray):
    Counter = _counter_cls(ray)
    c = Counter.remote()
    with pytest.raises(AttributeError):
        c.no_such_method.remote()


def test_async_methods_run_concurrently(ray):
    @ray.remote
    class Pair:
        def __init__(self):
            self.events = {"a": asyncio.Event(), "b": asyncio.Event()}

        async def meet(self, me, other):
            self.events[me].set()
            await asyncio.wait_for(self.events[other].wait(), 10)
            return me

    p = Pair.remote()
    # Each call only returns once the other has started: needs concurrent execution.
    assert ray.get([p.meet.remote("a", "b"), p.meet.remote("b", "a")], timeout=T) == ["a", "b"]


def test_async_sleeps_overlap(ray):
    @ray.remote
    class Sleeper:
        async def nap(self, s):
            await asyncio.sleep(s)
            return s

        async def ready(self):
            return True

    s = Sleeper.remote()
    ray.get(s.ready.remote(), timeout=T)  # actor started
    t0 = time.monotonic()
    assert ray.get([s.nap.remote(1.0) for _ in range(5)], timeout=T) == [1.0] * 5
    assert time.monotonic() - t0 < 4.0  # serial would take at least 5 s


def test_max_concurrency_runs_sync_methods_concurrently(ray):
    @ray.remote(max_concurrency=2)
    class Threaded:
        def __init__(self):
            self.barrier = threading.Barrier(2, timeout=10)

        def meet(self):
            self.barrier.wait()
            return threading.get_ident()

    t = Threaded.remote()
    idents = ray.get([t.meet.remote(), t.meet.remote()], timeout=T)
    assert len(set(idents)) == 2


def test_default_sync_actor_is_serial(ray):
    @ray.remote
    class Serial:
        def __init__(self):
            self.inside = 0
            self.max_inside = 0

        def work(self):
            self.inside += 1
            self.max_inside = max(self.max_inside, self.inside)
            time.sleep(0.02)
            self.inside -= 1

        def peak(self):
            return self.max_inside

    s = Serial.remote()
    ray.get([s.work.remote() for _ in range(10)], timeout=T)
    assert ray.get(s.peak.remote(), timeout=T) == 1


def test_named_actor_get_actor(ray):
    Counter = _counter_cls(ray)
    c = Counter.options(name="counter").remote()
    ray.get(c.incr.remote(), timeout=T)
    same = ray.get_actor("counter")
    assert ray.get(same.incr.remote(), timeout=T) == 2

    @ray.remote
    def from_task():
        return ray.get(ray.get_actor("counter").incr.remote(), timeout=T)

    assert ray.get(from_task.remote(), timeout=T) == 3


def test_get_actor_missing_name_raises_value_error(ray):
    with pytest.raises(ValueError):
        ray.get_actor("no-such-actor")


def test_named_actor_in_namespace(ray):
    Counter = _counter_cls(ray)
    # Keep the handle: a named actor that is not detached dies with its last handle.
    keep = Counter.options(name="nsactor", namespace="team").remote(5)
    h = ray.get_actor("nsactor", namespace="team")
    assert ray.get(h.incr.remote(), timeout=T) == 6
    with pytest.raises(ValueError):
        ray.get_actor("nsactor")  # not in the driver's namespace
    assert ray.get(keep.get.remote(), timeout=T) == 6


def test_init_namespace_is_default_for_get_actor(start_ember):
    ray = start_ember(num_cpus=2, namespace="mine")
    Counter = _counter_cls(ray)
    keep = Counter.options(name="c").remote(1)
    assert ray.get(keep.get.remote(), timeout=T) == 1
    assert ray.get(ray.get_actor("c").get.remote(), timeout=T) == 1
    assert ray.get(ray.get_actor("c", namespace="mine").get.remote(), timeout=T) == 1
    assert ray.get_runtime_context().namespace == "mine"


def test_get_if_exists_returns_same_actor(ray):
    Counter = _counter_cls(ray)
    a = Counter.options(name="shared", get_if_exists=True).remote()
    assert ray.get(a.incr.remote(), timeout=T) == 1
    b = Counter.options(name="shared", get_if_exists=True).remote()
    assert ray.get(b.incr.remote(), timeout=T) == 2
    assert ray.get(a.pid.remote(), timeout=T) == ray.get(b.pid.remote(), timeout=T)


def test_duplicate_actor_name_raises_value_error(ray):
    Counter = _counter_cls(ray)
    first = Counter.options(name="dup").remote()
    ray.get(first.get.remote(), timeout=T)
    with pytest.raises(ValueError):
        Counter.options(name="dup").remote()
    # the first one is unaffected
    assert ray.get(first.incr.remote(), timeout=T) == 1


def test_same_name_in_different_namespaces(ray):
    Counter = _counter_cls(ray)
    a = Counter.options(name="n", namespace="ns1").remote(1)
    b = Counter.options(name="n", namespace="ns2").remote(2)
    assert ray.get([a.get.remote(), b.get.remote()], timeout=T) == [1, 2]


def test_detached_actor(ray):
    Counter = _counter_cls(ray)
    d = Counter.options(name="detached-one", lifetime="detached").remote()
    assert ray.get(d.incr.remote(), timeout=T) == 1
    assert ray.get(ray.get_actor("detached-one").get.remote(), timeout=T) == 1
    ray.kill(d)


def test_exception_in_method_then_actor_keeps_working(ray):
    @ray.remote
    class Fragile:
        def __init__(self):
            self.calls = 0

        def maybe_fail(self, fail):
            self.calls += 1
            if fail:
                raise ValueError("requested failure")
            return self.calls

    f = Fragile.remote()
    assert ray.get(f.maybe_fail.remote(False), timeout=T) == 1
    with pytest.raises(ValueError, match="requested failure") as info:
        ray.get(f.maybe_fail.remote(True), timeout=T)
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert ray.get(f.maybe_fail.remote(False), timeout=T) == 3


def test_exception_in_init_makes_calls_raise_actor_died(ray):
    @ray.remote
    class Broken:
        def __init__(self):
            raise RuntimeError("bad init")

        def ping(self):
            return "pong"

    b = Broken.remote()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(b.ping.remote(), timeout=T)


@pytest.mark.ember_only  # Ray documents it, but may still deliver a call made right after
def test_kill_actor_then_calls_raise(ray):
    Counter = _counter_cls(ray)
    c = Counter.remote()
    assert ray.get(c.incr.remote(), timeout=T) == 1
    ray.kill(c)
    with pytest.raises(ray.exceptions.ActorDiedError, match="kill"):
        ray.get(c.incr.remote(), timeout=T)  # at once: kill() has returned
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(c.get.remote(), timeout=T)


def test_kill_fails_calls_through_every_handle_at_once(ray):
    Counter = _counter_cls(ray)
    c = Counter.options(name="twice").remote()
    other = ray.get_actor("twice")
    assert ray.get(other.incr.remote(), timeout=T) == 1
    ray.kill(c)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(other.incr.remote(), timeout=T)


def test_kill_named_actor_frees_name(ray):
    Counter = _counter_cls(ray)
    for start in range(3):  # the name is free as soon as kill() returns, every time
        c = Counter.options(name="reusable").remote(start)
        assert ray.get(c.get.remote(), timeout=T) == start
        ray.kill(c)
        with pytest.raises(ValueError):
            ray.get_actor("reusable")
    again = Counter.options(name="reusable").remote(7)
    assert ray.get(again.get.remote(), timeout=T) == 7


def test_kill_with_restart(ray):
    Counter = _counter_cls(ray)
    c = Counter.options(max_restarts=1).remote()
    assert ray.get(c.incr.remote(), timeout=T) == 1
    old_pid = ray.get(c.pid.remote(), timeout=T)
    ray.kill(c, no_restart=False)
    # kill() is asynchronous: wait (bounded) until calls reach the restarted process.
    wait_until(
        lambda: get_when_answered(c.pid.remote),
        T,
        "calls to reach the restarted actor",
        until=lambda pid: pid != old_pid,
    )
    assert ray.get(c.get.remote(), timeout=T) == 0  # state rebuilt by __init__
    assert ray.get(c.incr.remote(), timeout=T) == 1


def test_actor_handle_dropped_actor_exits(ray):
    Counter = _counter_cls(ray)
    c = Counter.remote()
    pid = ray.get(c.pid.remote(), timeout=T)
    del c
    import psutil

    def ended() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(ended, T, "the actor's process to end after its handle died")


def test_kill_interrupts_running_method(ray, signal_cls):
    started = signal_cls.remote()

    @ray.remote
    class Busy:
        def spin(self, started):
            ray.get(started.send.remote(), timeout=T)
            end = time.monotonic() + T
            while time.monotonic() < end:
                time.sleep(0.01)
            return "finished"

    b = Busy.remote()
    ref = b.spin.remote(started)
    ray.get(started.wait.remote(), timeout=T)
    t0 = time.monotonic()
    ray.kill(b)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(ref, timeout=T)
    assert time.monotonic() - t0 < T / 2


def test_async_actor_awaits_other_actor(ray):
    Counter = _counter_cls(ray)

    @ray.remote
    class Client:
        def __init__(self, counter):
            self.counter = counter

        async def bump_twice(self):
            first = await self.counter.incr.remote()
            second = await self.counter.incr.remote()
            return first, second

    c = Counter.remote()
    client = Client.remote(c)
    assert ray.get(client.bump_twice.remote(), timeout=T) == (1, 2)


def test_async_actor_method_error(ray):
    @ray.remote
    class A:
        async def fail(self):
            await asyncio.sleep(0)
            raise LookupError("async failure")

        async def ok(self):
            return "ok"

    a = A.remote()
    with pytest.raises(LookupError, match="async failure") as info:
        ray.get(a.fail.remote(), timeout=T)
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert ray.get(a.ok.remote(), timeout=T) == "ok"


def test_actor_method_returns_large_array(ray):
    import numpy as np

    @ray.remote
    class Holder:
        def __init__(self):
            self.data = np.arange(1_000_000, dtype=np.float64)

        def data_(self):
            return self.data

    h = Holder.remote()
    out = ray.get(h.data_.remote(), timeout=T)
    assert out.shape == (1_000_000,) and out[-1] == 999_999.0
    assert out.flags.writeable is False
