"""Regression tests for bugs found in review, one test per bug.

Each test's docstring says what used to go wrong. Tests that can only see the bug through
Ember's internals (or its /dev/shm store files) are marked ``ember_only``.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time

import pytest

from tests._helpers import free_cpus, session_shm_dir, shm_bytes, wait_until

T = 30  # upper bound for every get: a bug fails the test instead of hanging it


class TwoArgError(Exception):
    """Pickles as ``TwoArgError(a)``, so unpickling it raises TypeError."""

    def __init__(self, a, b):
        super().__init__(a)
        self.b = b


# -- 1. actors whose constructor argument is a pending task result ---------------------------


def test_actor_constructor_argument_may_be_pending_or_fail(ray, signal_cls):
    """Calls on an actor whose constructor argument was pending used to fail or hang 60 s."""
    sig = signal_cls.remote()

    @ray.remote
    def value_after_signal(sig):
        ray.get(sig.wait.remote(), timeout=T)
        return 5

    @ray.remote
    def bad_argument():
        raise ValueError("bad constructor argument")

    @ray.remote
    class Holder:
        def __init__(self, x):
            self.x = x

        def get(self):
            return self.x

    @ray.remote
    def call_through(handle):
        return ray.get(handle.get.remote(), timeout=T)

    # The argument is still being computed when the actor is called.
    owned = Holder.remote(value_after_signal.remote(sig))
    borrowed = Holder.remote(value_after_signal.remote(sig))
    from_driver = owned.get.remote()
    from_task = call_through.remote(borrowed)  # the handle is passed on before it is ready
    ray.get(sig.send.remote(), timeout=T)
    assert ray.get(from_driver, timeout=T) == 5
    assert ray.get(from_task, timeout=T) == 5
    assert ray.get(borrowed.get.remote(), timeout=T) == 5

    # The argument's task fails: calls raise ActorDiedError at once, naming the argument.
    for options in ({}, {"name": "holder_with_failed_argument"}):
        start = time.monotonic()
        actor = Holder.options(**options).remote(bad_argument.remote())
        with pytest.raises(ray.exceptions.ActorDiedError) as info:
            ray.get(actor.get.remote(), timeout=T)
        assert time.monotonic() - start < 10, options
        message = str(info.value)
        assert "argument" in message and "constructor" in message, message
        assert "bad_argument" in message and "bad constructor argument" in message, message

    # The argument had failed before the actor was made: its failure reached the node while
    # the node was still registering the actor, and was dropped (calls hung).
    bad = bad_argument.remote()
    ray.wait([bad], timeout=T)
    for _ in range(10):
        with pytest.raises(ray.exceptions.ActorDiedError, match="bad constructor argument"):
            ray.get(Holder.remote(bad).get.remote(), timeout=T)


# -- 2. calls on an actor whose handle was a temporary ----------------------------------------


def test_calls_submitted_to_an_unreferenced_actor_finish(ray):
    """`get(A.remote().f.remote())` used to fail: the actor went before its call ran."""

    @ray.remote
    class Worker:
        def work(self, seconds):
            time.sleep(seconds)
            return "done"

    ref = Worker.remote().work.remote(0.5)  # no handle is kept
    gc.collect()
    assert ray.get(ref, timeout=T) == "done"


# -- 3. nested refs stay alive ----------------------------------------------------------------


def test_nested_refs_outlive_the_drivers_own_refs(start_ember, gate, short_grace):
    """Refs nested in put values, task arguments or returns used to die with the driver's refs."""
    grace_args, past_grace = short_grace
    ray = start_ember(num_cpus=1, **grace_args)

    # Nested in a put value.
    inner = ray.put(123)
    outer = ray.put([inner])
    del inner
    gc.collect()
    assert ray.get(ray.get(outer, timeout=T)[0], timeout=T) == 123

    # Nested in a value returned to its owner.
    @ray.remote
    def echo(items):
        return items

    x = ray.put("hello")
    out = echo.remote([x])
    ray.get(out, timeout=T)
    del x
    gc.collect()
    assert ray.get(ray.get(out, timeout=T)[0], timeout=T) == "hello"

    # Nested in the arguments of a task that waits for a CPU.
    @ray.remote
    def occupy(gate):
        return gate.wait()

    @ray.remote
    def read_first(items):
        return ray.get(items[0], timeout=T)

    busy = occupy.remote(gate)
    gate.wait_arrivals(1)  # the only CPU is taken: read_first stays queued
    result = read_first.remote([ray.put("payload")])  # the driver drops its ref at once
    gc.collect()
    # A shared ref whose count drops to zero is freed after a grace period that no event
    # marks: keep the task queued past it.
    assert ray.wait([result], timeout=past_grace) == ([], [result])
    gate.open()
    assert ray.get(busy, timeout=T) is True
    assert ray.get(result, timeout=T) == "payload"


# -- 4. a failure flowing down a long chain ---------------------------------------------------


def test_failure_at_head_of_long_chain_reaches_its_end(ray, signal_cls):
    """A failure at the head of 400 dependent tasks used to hit RecursionError or hang."""
    sig = signal_cls.remote()

    @ray.remote
    def head(sig):
        ray.get(sig.wait.remote(), timeout=T)
        raise ValueError("boom at the head")

    @ray.remote
    def step(x):
        return x

    ref = head.remote(sig)
    for _ in range(400):
        ref = step.remote(ref)
    ray.get(sig.send.remote(), timeout=T)
    start = time.monotonic()
    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(ref, timeout=T)
    assert time.monotonic() - start < 15
    assert isinstance(info.value, ValueError), repr(info.value)
    assert "boom at the head" in str(info.value)
    assert "RecursionError" not in str(info.value)
    assert ray.get(step.remote(5), timeout=T) == 5


# -- 5. exceptions that pickle cannot rebuild -------------------------------------------------


def test_exception_that_cannot_be_unpickled_arrives_as_task_error(ray):
    """An exception pickle cannot rebuild used to break get (or hang it with retry_exceptions)."""

    def raise_two_arg_error():
        raise TwoArgError("first", "second")

    plain = ray.remote(raise_two_arg_error)
    retried = ray.remote(retry_exceptions=[ValueError], max_retries=2)(raise_two_arg_error)

    @ray.remote
    def ok():
        return 1

    for fn in (plain, retried):
        with pytest.raises(ray.exceptions.RayTaskError) as info:
            ray.get(fn.remote(), timeout=T)
        message = str(info.value)
        assert "Traceback" in message and "TwoArgError" in message, message
        assert "raise_two_arg_error" in message, message
        assert ray.get(ok.remote(), timeout=T) == 1


# -- 6. an actor whose handle was passed to a task --------------------------------------------


def test_actor_handle_passed_to_task_is_freed_with_the_last_handle(ray):
    """An actor whose handle had been passed to a task used to outlive its last handle."""

    @ray.remote(num_cpus=1)
    class Pinger:
        def ping(self):
            return 1

    @ray.remote
    def touch(handle):
        return ray.get(handle.ping.remote(), timeout=T)

    actor = Pinger.remote()
    assert ray.get(touch.remote(actor), timeout=T) == 1
    wait_until(free_cpus, 10, "only the actor to hold a CPU", until=lambda n: n == 1)
    del actor
    gc.collect()
    wait_until(free_cpus, 10, "the actor to give its CPU back", until=lambda n: n == 2)


# -- 7. get_if_exists in another process ------------------------------------------------------


def test_get_if_exists_handle_dropped_in_task_keeps_named_actor(ray):
    """A get_if_exists=True handle obtained in a task used to kill the actor when dropped."""

    @ray.remote
    class Service:
        def pid(self):
            return os.getpid()

    @ray.remote
    def peek():
        handle = Service.options(name="service", get_if_exists=True).remote()
        return ray.get(handle.pid.remote(), timeout=T)  # the handle is dropped on return

    actor = Service.options(name="service").remote()
    pid = ray.get(actor.pid.remote(), timeout=T)
    assert ray.get(peek.remote(), timeout=T) == pid  # the task found the same actor
    gc.collect()
    # No event says the task's handle is gone everywhere: check the actor for a while.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert ray.get(actor.pid.remote(), timeout=T) == pid
        time.sleep(0.1)


# -- 8. shutdown wakes a blocked get ----------------------------------------------------------


def _in_get(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == "get" and frame.f_code.co_filename != __file__:
            return True
        frame = frame.f_back
    return False


def test_shutdown_wakes_a_thread_blocked_in_get(start_ember, gate):
    """A thread blocked in get used to stay blocked for ever after ember.shutdown()."""
    ray = start_ember(num_cpus=2)

    @ray.remote
    def blocked(gate):
        return gate.wait(timeout=60)

    ref = blocked.remote(gate)
    gate.wait_arrivals(1)
    outcome: list[object] = []

    def waiter():
        try:
            outcome.append(ray.get(ref, timeout=60))
        except BaseException as e:  # the test inspects it
            outcome.append(e)

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    wait_until(lambda: _in_get(thread) or not thread.is_alive(), 10, "the thread to be in get")
    ray.shutdown()
    thread.join(timeout=10)
    assert not thread.is_alive(), "get still blocked 10 s after shutdown()"
    assert len(outcome) == 1 and isinstance(outcome[0], Exception), outcome
    assert not ray.is_initialized()


# -- 9. timed-out gets and waits clean up -----------------------------------------------------


@pytest.mark.ember_only
def test_timed_out_get_and_wait_leave_no_callbacks(ray, blocked_task):
    """Each get/wait that timed out on a pending ref used to leave a callback on it."""
    from ember._api.session import runtime

    ref = blocked_task.remote()
    for _ in range(2000):
        assert ray.wait([ref], timeout=0) == ([], [ref])
    for _ in range(100):
        assert ray.wait([ref], timeout=0.001) == ([], [ref])
    for timeout in [0] * 500 + [0.001] * 100:
        with pytest.raises(ray.exceptions.GetTimeoutError):
            ray.get(ref, timeout=timeout)
    entry = runtime().objects.entry(ref._id)
    assert entry is not None
    assert len(entry.waiters or []) <= 1, len(entry.waiters)
    blocked_task.release()
    assert ray.get(ref, timeout=T) is True


# -- 10. an actor whose __init__ raises -------------------------------------------------------


def test_actor_init_failure_says_the_constructor_raised(ray):
    """An __init__ failure used to be reported as an unexpected death, not as the constructor's."""

    @ray.remote
    class Broken:
        def __init__(self):
            raise KeyError("missing config")

        def f(self):
            return 1

    actor = Broken.remote()
    with pytest.raises(ray.exceptions.ActorDiedError) as info:
        ray.get(actor.f.remote(), timeout=T)
    assert info.value.actor_init_failed
    message = str(info.value)
    assert "constructor" in message or "creation task" in message, message
    assert "__init__" in message, message
    assert "KeyError" in message and "missing config" in message, message


# -- 11. a name is free again right after kill ------------------------------------------------


def test_named_actor_can_be_recreated_right_after_kill(ray):
    """Creating an actor under the name of one just killed used to raise ValueError."""

    @ray.remote
    class Named:
        def pid(self):
            return os.getpid()

    first = Named.options(name="reused").remote()
    first_pid = ray.get(first.pid.remote(), timeout=T)
    ray.kill(first)
    second = Named.options(name="reused").remote()
    assert ray.get(second.pid.remote(), timeout=T) != first_pid


# -- 12. the idle-worker reaper spares owners -------------------------------------------------


def test_idle_worker_that_owns_objects_is_not_reaped(start_ember, gate, monkeypatch):
    """An idle worker owning its child tasks' results used to be reaped, losing those results."""
    monkeypatch.setenv("EMBER_IDLE_WORKER_SECONDS", "1")  # Ember's knob; Ray ignores it
    ray = start_ember(num_cpus=2)
    child_gate = type(gate)(gate.path + "-child")

    @ray.remote(num_cpus=0)
    def hold(gate):
        gate.wait()
        return os.getpid()

    @ray.remote
    def child(gate):
        gate.wait()
        return "child result"

    @ray.remote
    def parent(gate):
        return [child.remote(gate)]  # the child's result is owned by this worker

    # Five workers busy (not blocked in get), so parent and child get processes of their own.
    spares = [hold.remote(gate) for _ in range(5)]
    gate.wait_arrivals(5)
    [inner] = ray.get(parent.remote(child_gate), timeout=T)
    child_gate.wait_arrivals(1)
    # Only the child holds a CPU: the owner's process is idle. Only then let the spare workers
    # go idle, so that the reaper, which stops the longest-idle workers first, reaches the
    # owner before any of them.
    wait_until(free_cpus, 10, "one free CPU", until=lambda n: n == 1)
    gate.open()
    spare_pids = set(ray.get(spares, timeout=T))
    wait_until(
        lambda: any(not _alive(pid) for pid in spare_pids), 14, "a spare worker to be reaped"
    )
    child_gate.open()
    assert ray.get(inner, timeout=T) == "child result"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- 13. a partly failed multi-return leaves nothing in the store -----------------------------


@pytest.mark.ember_only
def test_unpicklable_second_return_leaves_first_out_of_store(ray):
    """An unpicklable second of two return values used to leave the first one in the store."""
    np = pytest.importorskip("numpy")
    mb = 1024 * 1024

    @ray.remote(num_returns=2)
    def two():
        return np.zeros(16 * mb // 8), threading.Lock()

    shm_dir = session_shm_dir()
    before = shm_bytes(shm_dir)
    for _ in range(3):
        first, second = two.remote()
        with pytest.raises(ray.exceptions.RayTaskError):
            ray.get(first, timeout=T)
        del first, second
    gc.collect()
    wait_until(
        lambda: shm_bytes(shm_dir) - before,
        10,
        "the store's shared memory back near its start",
        until=lambda grown: grown < 8 * mb,
    )


# -- 14. cancelling a call queued on an async actor -------------------------------------------


def test_cancel_of_call_queued_on_async_actor_is_not_lost(ray, gate):
    """A cancel of a call queued behind an async actor's blocked event loop used to be lost."""

    @ray.remote
    class AsyncActor:
        async def block(self, gate):
            return gate.wait()  # blocks the event loop itself

        async def quick(self):
            return "ran"

    actor = AsyncActor.remote()
    assert ray.get(actor.quick.remote(), timeout=T) == "ran"
    blocker = actor.block.remote(gate)
    gate.wait_arrivals(1)
    queued = [actor.quick.remote() for _ in range(3)]
    for ref in queued:
        ray.cancel(ref)
    # cancel() only sends the request (as in Ray), and nothing observable says it reached the
    # actor: free the event loop only after giving the requests ample time to arrive.
    time.sleep(0.5)
    gate.open()
    assert ray.get(blocker, timeout=T) is True
    for ref in queued:
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(ref, timeout=T)
    assert ray.get(actor.quick.remote(), timeout=T) == "ran"


# -- 15. two task shapes from one driver ------------------------------------------------------


@pytest.mark.ember_only
def test_two_task_shapes_do_not_revoke_leases_over_and_over(ray, monkeypatch):
    """Alternating two task shapes from one driver used to revoke its leases over and over."""
    from ember._api.session import runtime

    rt = runtime()
    revocations = [0]
    on_revoke = rt.tasks.on_revoke

    def counting(lease_id):
        revocations[0] += 1
        on_revoke(lease_id)

    monkeypatch.setattr(rt.tasks, "on_revoke", counting)

    @ray.remote
    def f():
        return 1

    half = f.options(num_cpus=0.5)
    start = time.monotonic()
    results = ray.get([(f if i % 2 else half).remote() for i in range(2000)], timeout=60)
    elapsed = time.monotonic() - start
    assert results == [1] * 2000
    assert revocations[0] <= 20, f"{revocations[0]} leases revoked"
    assert elapsed < 30, f"2,000 tasks took {elapsed:.1f} s"


@pytest.mark.ember_only
def test_shutdown_right_after_init_frees_the_shared_memory_folder() -> None:
    """A node stopped before its loop ran used to die of SIGTERM without cleaning up,
    leaving its /dev/shm folder behind."""
    import ember
    from ember._api import session

    ember.init(num_cpus=1)
    try:
        shm_dir = session._node.shm_dir
    finally:
        ember.shutdown()
    assert not os.path.exists(shm_dir)
