"""System tests: worker and actor process deaths, task retries and actor restarts.

Checked against real Ray 2.60. Things Ray does that may surprise an implementer:
- A task whose worker dies (os._exit) is retried by default (max_retries defaults to 3 for
  system failures); with max_retries=0 get() raises WorkerCrashedError.
- Application exceptions are not retried unless retry_exceptions=True (or a list of
  exception classes that includes the raised one).
- When an actor's process dies the call that was running fails with ActorDiedError (a
  RayActorError); with max_restarts=0 every later call fails the same way. With
  max_restarts=1 the actor is re-created by running __init__ again, so its state is reset;
  with max_task_retries=1 as well, the call that was running is retried on the new process.
- ``sys.exit()`` in a task ends its worker process like a crash (retried, then
  WorkerCrashedError), whatever its status; in an actor method, a nonzero status is a crash
  (restarted if max_restarts allows) and status 0 an intended exit (never restarted); the
  caller never receives the SystemExit.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests._helpers import get_when_answered, wait_until

T = 30  # upper bound for every get: a bug fails the test instead of hanging it


def test_worker_crash_without_retries_raises(ray):
    @ray.remote(max_retries=0)
    def die():
        os._exit(1)

    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(die.remote(), timeout=T)


def test_sys_exit_in_a_task_ends_its_worker_and_is_retried(ray, tmp_path):
    @ray.remote(max_retries=1)
    def leave(path, code):
        open(os.path.join(path, str(os.getpid())), "w").close()
        sys.exit(code)

    for code in (0, 3):
        attempts = tmp_path / str(code)
        attempts.mkdir()
        with pytest.raises(ray.exceptions.WorkerCrashedError):
            ray.get(leave.remote(str(attempts), code), timeout=T)
        assert len(list(attempts.iterdir())) == 2  # the first try and 1 retry, each its worker


def test_sys_exit_in_an_actor_method_kills_the_actor(ray):
    @ray.remote
    class Leaver:
        def leave(self):
            sys.exit(1)

        def ping(self):
            return "pong"

    actor = Leaver.remote()
    assert ray.get(actor.ping.remote(), timeout=T) == "pong"
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(actor.leave.remote(), timeout=T)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(actor.ping.remote(), timeout=T)


@pytest.mark.ember_only  # Ray 2.60 leaves the call unanswered (get times out)
def test_sys_exit_in_an_async_actor_method_kills_the_actor(ray):
    @ray.remote
    class AsyncLeaver:
        async def leave(self, code):
            sys.exit(code)

        async def ping(self):
            return "pong"

    for code in (0, 1):
        actor = AsyncLeaver.remote()
        assert ray.get(actor.ping.remote(), timeout=T) == "pong"
        with pytest.raises(ray.exceptions.ActorDiedError):
            ray.get(actor.leave.remote(code), timeout=T)
        with pytest.raises(ray.exceptions.ActorDiedError):
            ray.get(actor.ping.remote(), timeout=T)


def test_sys_exit_restarts_an_actor_unless_its_status_is_0(ray):
    @ray.remote(max_restarts=1)
    class Leaver:
        def leave(self, code):
            sys.exit(code)

        def pid(self):
            return os.getpid()

    actor = Leaver.remote()
    first = ray.get(actor.pid.remote(), timeout=T)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.leave.remote(1), timeout=T)
    assert get_when_answered(actor.pid.remote, T) != first  # a crash: restarted
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(actor.leave.remote(0), timeout=T)
    with pytest.raises(ray.exceptions.ActorDiedError):  # an intended exit: not restarted
        ray.get(actor.pid.remote(), timeout=T)


def test_worker_crash_then_other_tasks_still_run(ray):
    @ray.remote(max_retries=0)
    def die():
        os._exit(1)

    @ray.remote
    def ok(i):
        return i

    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(die.remote(), timeout=T)
    assert ray.get([ok.remote(i) for i in range(4)], timeout=T) == [0, 1, 2, 3]


def test_worker_crash_always_fails_after_retries(ray, tmp_path):
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    @ray.remote(max_retries=2)
    def always_die(path):
        with open(os.path.join(path, str(os.getpid())), "w"):
            pass
        os._exit(1)

    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(always_die.remote(str(attempts)), timeout=T)
    assert len(list(attempts.iterdir())) == 3  # the first try and 2 retries


def test_worker_crash_first_attempt_retried(ray, tmp_path):
    marker = tmp_path / "crashed-once"

    @ray.remote(max_retries=2)
    def die_once(path):
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write("x")
            os._exit(1)
        return "second attempt"

    assert ray.get(die_once.remote(str(marker)), timeout=T) == "second attempt"
    assert marker.exists()


def test_default_max_retries_retries_crash(ray, tmp_path):
    marker = tmp_path / "crashed-once"

    @ray.remote
    def die_once(path):
        if not os.path.exists(path):
            open(path, "w").close()
            os._exit(1)
        return "retried by default"

    assert ray.get(die_once.remote(str(marker)), timeout=T) == "retried by default"


def test_application_error_not_retried_by_default(ray, tmp_path):
    marker = tmp_path / "failed-once"

    @ray.remote(max_retries=3)
    def fail_once(path):
        if not os.path.exists(path):
            open(path, "w").close()
            raise ValueError("first attempt fails")
        return "second attempt"

    with pytest.raises(ValueError, match="first attempt fails"):
        ray.get(fail_once.remote(str(marker)), timeout=T)


def test_retry_exceptions_true_retries_application_error(ray, tmp_path):
    marker = tmp_path / "failed-once"

    @ray.remote(max_retries=2, retry_exceptions=True)
    def fail_once(path):
        if not os.path.exists(path):
            open(path, "w").close()
            raise ValueError("first attempt fails")
        return "second attempt"

    assert ray.get(fail_once.remote(str(marker)), timeout=T) == "second attempt"


def test_retry_exceptions_via_options(ray, tmp_path):
    marker = tmp_path / "failed-once"

    @ray.remote
    def fail_once(path):
        if not os.path.exists(path):
            open(path, "w").close()
            raise ValueError("first attempt fails")
        return "second attempt"

    retried = fail_once.options(max_retries=1, retry_exceptions=True)
    assert ray.get(retried.remote(str(marker)), timeout=T) == "second attempt"


def test_retry_exceptions_list_only_retries_listed(ray, tmp_path):
    @ray.remote(max_retries=2, retry_exceptions=[KeyError])
    def fail_once(path, exc_type):
        if not os.path.exists(path):
            open(path, "w").close()
            raise exc_type("first attempt fails")
        return "second attempt"

    listed = tmp_path / "listed"
    assert ray.get(fail_once.remote(str(listed), KeyError), timeout=T) == "second attempt"
    unlisted = tmp_path / "unlisted"
    with pytest.raises(ValueError):
        ray.get(fail_once.remote(str(unlisted), ValueError), timeout=T)


def test_retry_exceptions_gives_up_after_max_retries(ray, tmp_path):
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    @ray.remote(max_retries=2, retry_exceptions=True)
    def always_fail(path):
        open(os.path.join(path, str(time.time_ns())), "w").close()
        raise ValueError("always")

    with pytest.raises(ValueError, match="always"):
        ray.get(always_fail.remote(str(attempts)), timeout=T)
    assert len(list(attempts.iterdir())) == 3


def test_actor_process_death_fails_call_and_later_calls(ray):
    @ray.remote
    class Doomed:
        def die(self):
            os._exit(1)

        def ping(self):
            return "pong"

    d = Doomed.remote()
    assert ray.get(d.ping.remote(), timeout=T) == "pong"
    with pytest.raises(ray.exceptions.RayActorError) as info:
        ray.get(d.die.remote(), timeout=T)
    assert isinstance(info.value, ray.exceptions.ActorDiedError)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(d.ping.remote(), timeout=T)


def test_actor_death_does_not_affect_other_actors(ray):
    @ray.remote
    class A:
        def die(self):
            os._exit(1)

        def ping(self):
            return os.getpid()

    doomed, survivor = A.remote(), A.remote()
    pid = ray.get(survivor.ping.remote(), timeout=T)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(doomed.die.remote(), timeout=T)
    assert ray.get(survivor.ping.remote(), timeout=T) == pid


def test_actor_restarts_with_fresh_state(ray):
    @ray.remote(max_restarts=1)
    class Counter:
        def __init__(self):
            self.value = 0

        def incr(self):
            self.value += 1
            return self.value

        def die(self):
            os._exit(1)

        def pid(self):
            return os.getpid()

    c = Counter.remote()
    assert ray.get([c.incr.remote() for _ in range(3)], timeout=T) == [1, 2, 3]
    old_pid = ray.get(c.pid.remote(), timeout=T)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(c.die.remote(), timeout=T)  # max_task_retries=0: the call itself fails
    assert get_when_answered(c.incr.remote) == 1  # __init__ ran again
    assert ray.get(c.pid.remote(), timeout=T) != old_pid


def test_actor_restart_budget_is_exhausted(ray):
    @ray.remote(max_restarts=1)
    class A:
        def die(self):
            os._exit(1)

        def ping(self):
            return "pong"

    a = A.remote()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(a.die.remote(), timeout=T)
    assert get_when_answered(a.ping.remote) == "pong"
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(a.die.remote(), timeout=T)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(a.ping.remote(), timeout=T)


def test_actor_task_retried_after_restart(ray, tmp_path):
    marker = tmp_path / "actor-crashed-once"

    @ray.remote(max_restarts=1, max_task_retries=1)
    class Flaky:
        def __init__(self):
            self.inits = 1

        def work(self, path):
            if not os.path.exists(path):
                open(path, "w").close()
                os._exit(1)
            return ("done", os.getpid())

    f = Flaky.remote()
    status, pid = ray.get(f.work.remote(str(marker)), timeout=T)
    assert status == "done"
    assert marker.exists()
    assert pid != os.getpid()


def test_actor_options_max_restarts(ray):
    @ray.remote
    class A:
        def __init__(self):
            self.value = "fresh"

        def set(self, v):
            self.value = v

        def get(self):
            return self.value

        def die(self):
            os._exit(1)

    a = A.options(max_restarts=1).remote()
    ray.get(a.set.remote("changed"), timeout=T)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(a.die.remote(), timeout=T)
    assert get_when_answered(a.get.remote) == "fresh"


def test_actors_created_by_an_actor_die_with_its_process_unless_detached(ray):
    import signal

    @ray.remote(max_restarts=-1)
    class Child:
        def ping(self):
            return "pong"

    @ray.remote
    class Parent:
        def make(self):
            self.child = Child.remote()
            self.detached = Child.options(name="orphan", lifetime="detached").remote()
            return self.child, self.detached, os.getpid()

    parent = Parent.remote()  # (held: a dropped handle would end it, and its child)
    child, detached, pid = ray.get(parent.make.remote(), timeout=T)
    assert ray.get(child.ping.remote(), timeout=T) == "pong"
    os.kill(pid, signal.SIGKILL)

    def ping():
        try:
            return ray.get(child.ping.remote(), timeout=T)
        except ray.exceptions.ActorDiedError as e:  # (max_restarts does not bring it back)
            return e

    # (a call made before the owner's death is noticed may still be answered)
    wait_until(ping, T, "the child to die", until=lambda v: isinstance(v, Exception))
    assert ray.get(detached.ping.remote(), timeout=T) == "pong"
    ray.kill(detached)
