"""Cancelling tasks: recursive cancel reaches the children, force on actor tasks is refused."""

from __future__ import annotations

import time

import pytest

T = 30


def _wait_for_cpus(ray, n: float, within: float) -> None:
    deadline = time.monotonic() + within
    while ray.available_resources().get("CPU", 0) != n:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.05)


def test_recursive_cancel_stops_the_children(ray):
    @ray.remote
    def child():
        time.sleep(60)
        return "child finished"

    @ray.remote
    def parent():
        return ray.get(child.remote())

    ref = parent.remote()
    _wait_for_cpus(ray, 1, within=10)  # the child holds one CPU (the parent lent its own)
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=T)
    _wait_for_cpus(ray, 2, within=10)  # the child was cancelled too, long before its 60 s


def test_force_cancel_of_an_actor_task_is_refused(ray):
    @ray.remote
    class Slow:
        def work(self):
            time.sleep(5)

    actor = Slow.remote()
    ref = actor.work.remote()
    with pytest.raises(ValueError, match="force"):
        ray.cancel(ref, force=True)
    ray.cancel(ref)
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError)):
        ray.get(ref, timeout=T)
