"""System tests: remote functions, options, num_returns, nesting, closures and cancellation.

Checked against real Ray 2.60. Things Ray does that may surprise an implementer:
- A task blocked in get() releases its CPU, so recursive tasks (fib) cannot deadlock even on
  num_cpus=2.
- Top-level ObjectRef arguments are resolved to values before the task runs; refs nested in a
  list or dict are passed through as ObjectRefs.
- A task that returns ObjectRefs returns them as refs (no automatic flattening), and they stay
  gettable after the task that created them has finished.
- cancel() of a queued or running task makes get() raise TaskCancelledError; with force=True
  the worker running it is killed, and get() still raises TaskCancelledError (Ray's docs say
  WorkerCrashedError for force=True, but Ray 2.60 raises TaskCancelledError). A non-forced
  cancel is a KeyboardInterrupt in the task, so a task ignoring SIGINT needs force=True.
- fib(15) as recursive tasks (~2000 tasks) takes ~19 s on Ray (one worker process per blocked
  task); Ember should be much faster, hence the generous timeout.
- Functions defined at module level are pickled by reference: Ray workers import the test
  module by name (tests.system.test_tasks, found from the driver's working directory, which
  Ray puts on the workers' sys.path; see tests/system/conftest.py). Ray does not pass the
  driver's sys.path additions to workers.
"""

from __future__ import annotations

import os
import time

import pytest

T = 30  # upper bound for every get: a bug fails the test instead of hanging it


def module_level_square(x):
    return x * x


def test_simple_task(ray):
    @ray.remote
    def add(a, b):
        return a + b

    ref = add.remote(1, 2)
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref, timeout=T) == 3


def test_task_args_kwargs_and_defaults(ray):
    @ray.remote
    def f(a, b=10, *args, c=100, **kwargs):
        return a, b, args, c, kwargs

    assert ray.get(f.remote(1), timeout=T) == (1, 10, (), 100, {})
    assert ray.get(f.remote(1, 2, 3, 4, c=5, d=6), timeout=T) == (1, 2, (3, 4), 5, {"d": 6})


def test_task_runs_in_another_process(ray):
    @ray.remote
    def pid():
        return os.getpid()

    assert ray.get(pid.remote(), timeout=T) != os.getpid()


def test_module_level_function(ray):
    f = ray.remote(module_level_square)
    assert ray.get([f.remote(i) for i in range(5)], timeout=T) == [0, 1, 4, 9, 16]


def test_remote_with_options_decorator(ray):
    @ray.remote(num_cpus=1, max_retries=0)
    def f(x):
        return x * 2

    assert ray.get(f.remote(21), timeout=T) == 42


def test_options_on_function(ray):
    @ray.remote
    def f(x):
        return x

    g = f.options(num_cpus=0.5, name="renamed")
    assert ray.get(g.remote(3), timeout=T) == 3
    # options() does not change the original
    assert ray.get(f.remote(4), timeout=T) == 4


def test_num_returns_two(ray):
    @ray.remote(num_returns=2)
    def pair():
        return 1, "two"

    refs = pair.remote()
    assert len(refs) == 2
    a, b = refs
    assert isinstance(a, ray.ObjectRef) and isinstance(b, ray.ObjectRef)
    assert a != b
    assert ray.get(a, timeout=T) == 1
    assert ray.get(b, timeout=T) == "two"


def test_num_returns_via_options(ray):
    @ray.remote
    def triple():
        return [1, 2, 3]

    one = triple.remote()
    assert ray.get(one, timeout=T) == [1, 2, 3]
    refs = triple.options(num_returns=3).remote()
    assert ray.get(list(refs), timeout=T) == [1, 2, 3]


def test_closure_captures_local_state(ray):
    factor = 7
    table = {"a": 1, "b": 2}

    def helper(x):
        return x * factor

    @ray.remote
    def f(key):
        return helper(table[key])

    assert ray.get([f.remote("a"), f.remote("b")], timeout=T) == [7, 14]


def test_local_class_instances_as_args_and_results(ray):
    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

        def norm1(self):
            return abs(self.x) + abs(self.y)

    @ray.remote
    def move(p, dx):
        return Point(p.x + dx, p.y)

    out = ray.get(move.remote(Point(1, -2), 3), timeout=T)
    assert type(out).__name__ == "Point"
    assert (out.x, out.y) == (4, -2)
    assert out.norm1() == 6


def test_many_tasks_results_in_order(ray):
    @ray.remote
    def ident(i):
        return i

    refs = [ident.remote(i) for i in range(200)]
    assert ray.get(refs, timeout=T) == list(range(200))


def test_dependent_tasks_chain(ray):
    @ray.remote
    def inc(x):
        return x + 1

    ref = ray.put(0)
    for _ in range(20):
        ref = inc.remote(ref)
    assert ray.get(ref, timeout=T) == 20


def test_top_level_refs_resolved_nested_refs_passed_through(ray):
    @ray.remote
    def inspect(top, in_list, in_dict):
        return (
            isinstance(top, ray.ObjectRef),
            isinstance(in_list[0], ray.ObjectRef),
            isinstance(in_dict["k"], ray.ObjectRef),
            top,
            ray.get(in_list[0], timeout=T),
            ray.get(in_dict["k"], timeout=T),
        )

    r1, r2, r3 = ray.put(1), ray.put(2), ray.put(3)
    out = ray.get(inspect.remote(r1, [r2], {"k": r3}), timeout=T)
    assert out == (False, True, True, 1, 2, 3)


def test_kwarg_ref_is_resolved(ray):
    @ray.remote
    def f(*, x):
        return isinstance(x, ray.ObjectRef), x

    assert ray.get(f.remote(x=ray.put(5)), timeout=T) == (False, 5)


def test_nested_fib_does_not_deadlock(ray):
    @ray.remote
    def fib(n):
        if n < 2:
            return n
        return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))

    assert ray.get(fib.remote(15), timeout=120) == 610


def test_task_returns_refs_of_subtasks(ray):
    @ray.remote
    def square(i):
        return i * i

    @ray.remote
    def spawn(n):
        return [square.remote(i) for i in range(n)]

    refs = ray.get(spawn.remote(4), timeout=T)
    assert len(refs) == 4
    assert all(isinstance(r, ray.ObjectRef) for r in refs)
    assert ray.get(refs, timeout=T) == [0, 1, 4, 9]


def test_task_returning_a_ref_is_not_flattened(ray):
    @ray.remote
    def inner():
        return "deep"

    @ray.remote
    def outer():
        return inner.remote()

    ref = ray.get(outer.remote(), timeout=T)
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref, timeout=T) == "deep"


def test_task_can_put_and_pass_to_subtask(ray):
    @ray.remote
    def total(xs):
        return sum(xs)

    @ray.remote
    def parent():
        ref = ray.put(list(range(10)))
        return ray.get(total.remote(ref), timeout=T)

    assert ray.get(parent.remote(), timeout=T) == 45


def test_cancel_queued_task(ray, gate):
    @ray.remote(num_cpus=1)
    def block(gate):
        return gate.wait()  # busy, not blocked in get(): keeps its CPU

    @ray.remote(num_cpus=2)
    def queued():
        return "should not run"

    blocker = block.remote(gate)
    gate.wait_arrivals(1)
    q = queued.remote()  # needs both CPUs: cannot start while `blocker` runs
    ready, _ = ray.wait([q], timeout=0.3)
    assert not ready
    ray.cancel(q)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(q, timeout=T)
    gate.open()
    assert ray.get(blocker, timeout=T) is True


def test_cancelled_queued_task_never_runs(ray, gate, tmp_path):
    ran = tmp_path / "ran"

    @ray.remote(num_cpus=2)
    def block(gate):
        return gate.wait()

    @ray.remote(num_cpus=2)
    def queued(path):
        open(path, "w").close()
        return "ran"

    blocker = block.remote(gate)
    gate.wait_arrivals(1)
    q = queued.remote(str(ran))
    ray.cancel(q)
    gate.open()
    assert ray.get(blocker, timeout=T) is True
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(q, timeout=T)

    @ray.remote(num_cpus=2)
    def after():
        return "after"

    assert ray.get(after.remote(), timeout=T) == "after"  # runs after `queued` would have
    assert not ran.exists()


def test_cancel_running_task(ray, signal_cls):
    started = signal_cls.remote()

    @ray.remote
    def spin(started):
        ray.get(started.send.remote(), timeout=T)
        end = time.monotonic() + T
        while time.monotonic() < end:
            time.sleep(0.01)
        return "not cancelled"

    ref = spin.remote(started)
    ray.get(started.wait.remote(), timeout=T)
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=T)

    @ray.remote
    def after():
        return "ok"

    assert ray.get(after.remote(), timeout=T) == "ok"


def test_cancel_force_running_task(ray, signal_cls):
    started = signal_cls.remote()

    @ray.remote(max_retries=0)
    def stubborn(started):
        import signal as _signal

        _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # ignores KeyboardInterrupt
        ray.get(started.send.remote(), timeout=T)
        end = time.monotonic() + T
        while time.monotonic() < end:
            time.sleep(0.01)
        return "not cancelled"

    ref = stubborn.remote(started)
    ray.get(started.wait.remote(), timeout=T)
    t0 = time.monotonic()
    ray.cancel(ref, force=True)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=T)
    assert time.monotonic() - t0 < T / 2

    @ray.remote
    def after():
        return "ok"

    assert ray.get(after.remote(), timeout=T) == "ok"


def test_cancel_finished_task_keeps_result(ray):
    @ray.remote
    def f():
        return 5

    ref = f.remote()
    assert ray.get(ref, timeout=T) == 5
    ray.cancel(ref)
    assert ray.get(ref, timeout=T) == 5
