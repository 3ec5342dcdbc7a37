"""Cancelling tasks: recursive cancel reaches the children, force on actor tasks is refused,
a task or actor call cancelled before it went, and the error each kind of cancel gives."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from tests._helpers import free_cpus, wait_until

T = 30


def test_recursive_cancel_stops_the_children(ray):
    @ray.remote
    def child():
        time.sleep(60)
        return "child finished"

    @ray.remote
    def parent():
        return ray.get(child.remote())

    ref = parent.remote()
    # the child holds one CPU (the parent lent its own)
    wait_until(free_cpus, 10, "the child to hold a CPU", until=lambda n: n == 1)
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=T)
    # the child was cancelled too, long before its 60 s
    wait_until(free_cpus, 10, "both CPUs back", until=lambda n: n == 2)


def test_force_cancel_of_an_actor_task_is_refused(ray):
    @ray.remote
    class Slow:
        def work(self):  # (a sync actor's running call is not interrupted: it looks)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not ray.get_runtime_context().is_canceled():
                time.sleep(0.005)

    actor = Slow.remote()
    ref = actor.work.remote()
    with pytest.raises(ValueError, match="force"):
        ray.cancel(ref, force=True)
    ray.cancel(ref)
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError)):
        ray.get(ref, timeout=T)


def test_a_task_cancelled_while_its_argument_is_made_stays_cancelled_if_that_fails(ray, signal_cls):
    """Its argument failing later used to overwrite the cancel with that error."""
    sig = signal_cls.remote()

    @ray.remote(max_retries=0)
    def fails_when_released(sig):
        ray.get(sig.wait.remote(), timeout=T)
        raise ValueError("the argument failed")

    @ray.remote
    def use(x):
        return x

    arg = fails_when_released.remote(sig)
    ref = use.remote(arg)
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=T)
    ray.get(sig.send.remote(), timeout=T)
    with pytest.raises(ValueError):
        ray.get(arg, timeout=T)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=T)


def test_cancelling_an_actor_call_waiting_for_its_argument_lets_the_calls_behind_it_run(
    ray, signal_cls
):
    """The calls queued behind it used to wait until its argument was ready."""
    sig = signal_cls.remote()

    @ray.remote
    def released(sig):
        return ray.get(sig.wait.remote(), timeout=T)

    @ray.remote
    class Echo:
        def echo(self, x="ready"):
            return x

    echo = Echo.remote()
    assert ray.get(echo.echo.remote(), timeout=T) == "ready"
    waiting = echo.echo.remote(released.remote(sig))
    behind = echo.echo.remote()
    ray.cancel(waiting)
    try:
        assert ray.get(behind, timeout=T) == "ready"
    finally:
        ray.get(sig.send.remote(), timeout=T)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(waiting, timeout=T)


@pytest.mark.parametrize("end", ["cancelled", "argument failed"])
def test_an_actor_whose_handle_is_dropped_ends_once_its_last_call_ends_unsent(ray, signal_cls, end):
    """A call that never went (cancelled, or its argument failed) used to keep the release
    of the actor's last handle waiting for ever: the actor lived on."""
    sig = signal_cls.remote()

    @ray.remote(num_cpus=0, max_retries=0)
    def argument(sig, fail):
        ray.get(sig.wait.remote(), timeout=T)
        if fail:
            raise ValueError("the argument failed")
        return 1

    @ray.remote(num_cpus=1)
    class Pinger:
        def ping(self, x=None):
            return 1

    actor = Pinger.remote()
    assert ray.get(actor.ping.remote(), timeout=T) == 1
    ref = actor.ping.remote(argument.remote(sig, end == "argument failed"))
    del actor  # its release waits for the call queued
    gc.collect()
    ray.put(None)  # (which counts the dropped handle now, before the cancel)
    if end == "cancelled":
        ray.cancel(ref)
    else:
        ray.get(sig.send.remote(), timeout=T)
    wait_until(free_cpus, T, "the actor to give its CPU back", until=lambda n: n == 2)
    with pytest.raises((ray.exceptions.TaskCancelledError, ValueError)):
        ray.get(ref, timeout=T)
    ray.get(sig.send.remote(), timeout=T)


def _cancel_error(ray, ref):
    with pytest.raises(ray.exceptions.TaskCancelledError) as info:
        ray.get(ref, timeout=T)
    return info.value


def test_a_task_cancelled_while_it_runs_fails_with_its_task_error_and_is_not_retried(
    ray, signal_cls
):
    """As in Ray, the cancel is raised in the task's code, so its caller gets
    RayTaskError(TaskCancelledError) (which ``except RayTaskError`` catches), and
    ``retry_exceptions`` does not run it again (a second run would outlast the get)."""
    started = signal_cls.remote()

    @ray.remote(max_retries=1, retry_exceptions=True)
    def busy(started):
        ray.get(started.send.remote())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.01)

    ref = busy.remote(started)
    ray.get(started.wait.remote(), timeout=T)
    ray.cancel(ref)
    assert isinstance(_cancel_error(ray, ref), ray.exceptions.RayTaskError)


def test_a_task_cancelled_before_it_runs_fails_with_task_cancelled_error_alone(ray, signal_cls):
    sig = signal_cls.remote()

    @ray.remote
    def use(x):
        return x

    ref = use.remote(sig.wait.remote())
    ray.cancel(ref)
    try:
        assert not isinstance(_cancel_error(ray, ref), ray.exceptions.RayTaskError)
    finally:
        ray.get(sig.send.remote(), timeout=T)


def test_an_async_actor_call_cancelled_while_it_runs_fails_with_its_task_error(ray, signal_cls):
    started = signal_cls.remote()

    @ray.remote
    class Sleeper:
        async def work(self, started):
            await started.send.remote()
            await asyncio.sleep(60)

    ref = Sleeper.remote().work.remote(started)
    ray.get(started.wait.remote(), timeout=T)
    ray.cancel(ref)
    assert isinstance(_cancel_error(ray, ref), ray.exceptions.RayTaskError)


def test_a_sync_actor_call_cancelled_while_it_runs_fails_with_task_cancelled_error_alone(
    ray, signal_cls
):
    started = signal_cls.remote()

    @ray.remote
    class Looker:
        def work(self, started):
            ray.get(started.send.remote())
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not ray.get_runtime_context().is_canceled():
                time.sleep(0.005)

    ref = Looker.remote().work.remote(started)
    ray.get(started.wait.remote(), timeout=T)
    ray.cancel(ref)
    assert not isinstance(_cancel_error(ray, ref), ray.exceptions.RayTaskError)


def test_a_task_cancelled_by_force_fails_with_task_cancelled_error_alone(ray, signal_cls):
    """Its worker is killed: no error of its own code reaches the caller."""
    started = signal_cls.remote()

    @ray.remote(max_retries=1)
    def busy(started):
        ray.get(started.send.remote())
        time.sleep(60)

    ref = busy.remote(started)
    ray.get(started.wait.remote(), timeout=T)
    ray.cancel(ref, force=True)
    assert not isinstance(_cancel_error(ray, ref), ray.exceptions.RayTaskError)
