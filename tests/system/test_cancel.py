"""Cancelling tasks: recursive cancel reaches the children, force on actor tasks is refused."""

from __future__ import annotations

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
        def work(self):
            time.sleep(5)

    actor = Slow.remote()
    ref = actor.work.remote()
    with pytest.raises(ValueError, match="force"):
        ray.cancel(ref, force=True)
    ray.cancel(ref)
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError)):
        ray.get(ref, timeout=T)
