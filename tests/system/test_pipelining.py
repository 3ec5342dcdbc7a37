"""A lease may carry a second task when the node is saturated; these used to go wrong."""

from __future__ import annotations

import os

import pytest

T = 30


def test_tasks_needing_a_custom_resource_never_wait_behind_a_blocked_one(start_ember):
    """A task queued behind a blocked one on a lease holding a custom resource deadlocked."""
    ray = start_ember(num_cpus=2, resources={"r": 2})

    @ray.remote
    class Signal:
        def __init__(self):
            self.sent = False

        def send(self):
            self.sent = True

        def is_sent(self):
            return self.sent

    @ray.remote(resources={"r": 1})
    def waiter(sig):
        import time

        while not ray.get(sig.is_sent.remote(), timeout=T):
            time.sleep(0.01)
        return "w"

    @ray.remote(resources={"r": 1})
    def sender(sig):
        ray.get(sig.send.remote(), timeout=T)
        return "s"

    @ray.remote(resources={"r": 1})
    def short():
        return "x"

    sig = Signal.remote()
    refs = [waiter.remote(sig), sender.remote(sig), short.remote()]
    assert ray.get(refs, timeout=T) == ["w", "s", "x"]


@pytest.mark.parametrize("retries", [0, 2])
def test_a_crash_does_not_fail_the_tasks_queued_behind_it(ray, tmp_path, retries):
    """Tasks queued on the lease of a task that killed its worker were failed or retried."""

    @ray.remote(max_retries=retries)
    def innocent(i, folder):
        open(os.path.join(folder, f"{i}-{os.getpid()}-{os.urandom(4).hex()}"), "w").close()
        return i

    @ray.remote(max_retries=0)
    def crash():
        os._exit(1)

    refs = [innocent.remote(i, str(tmp_path)) for i in range(20)]
    bad = crash.remote()
    refs += [innocent.remote(i, str(tmp_path)) for i in range(20, 40)]
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(bad, timeout=T)
    assert ray.get(refs, timeout=T) == list(range(40))
