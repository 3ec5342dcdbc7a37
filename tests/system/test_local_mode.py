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


def test_task_runtime_env_vars_apply_around_the_call(local):
    ray = local
    os.environ.pop("EMBER_LOCAL_TEST_VAR", None)

    @ray.remote
    def read():
        env = ray.get_runtime_context().runtime_env
        return os.environ.get("EMBER_LOCAL_TEST_VAR"), env.get("env_vars")

    @ray.remote
    def outer():  # a task's own tasks inherit its env, as on a node
        return ray.get(read.remote(), timeout=T)

    with_env = {"runtime_env": {"env_vars": {"EMBER_LOCAL_TEST_VAR": "yes"}}}
    assert ray.get(read.options(**with_env).remote(), timeout=T) == (
        "yes",
        {"EMBER_LOCAL_TEST_VAR": "yes"},
    )
    assert ray.get(outer.options(**with_env).remote(), timeout=T)[0] == "yes"
    assert "EMBER_LOCAL_TEST_VAR" not in os.environ  # put back: the driver goes on
    assert ray.get(read.remote(), timeout=T)[0] is None


def test_actor_runtime_env_vars_apply_to_its_calls(local):
    ray = local
    os.environ.pop("EMBER_LOCAL_TEST_VAR", None)

    @ray.remote
    class A:
        def __init__(self):
            self.at_init = os.environ.get("EMBER_LOCAL_TEST_VAR")

        def read(self):
            return self.at_init, os.environ.get("EMBER_LOCAL_TEST_VAR")

    a = A.options(runtime_env={"env_vars": {"EMBER_LOCAL_TEST_VAR": "a"}}).remote()
    assert ray.get(a.read.remote(), timeout=T) == ("a", "a")
    assert "EMBER_LOCAL_TEST_VAR" not in os.environ


def test_options_local_mode_cannot_honour_are_refused_by_name(local, tmp_path):
    ray = local

    @ray.remote(max_calls=1)
    def limited():
        return 1

    @ray.remote
    def f():
        return 1

    @ray.remote
    class A:
        pass

    with pytest.raises(ValueError, match="max_calls=1.*local mode.*without local_mode=True"):
        limited.remote()
    with pytest.raises(ValueError, match="runtime_env field.*working_dir.*local mode"):
        f.options(runtime_env={"working_dir": str(tmp_path)}).remote()
    with pytest.raises(ValueError, match="label_selector.*local mode"):
        f.options(label_selector={"zone": "a"}).remote()
    with pytest.raises(ValueError, match="label_selector.*local mode"):
        A.options(label_selector={"zone": "a"}).remote()
    with pytest.raises(RuntimeError, match="placement groups.*local mode.*without local_mode"):
        ray.util.placement_group([{"CPU": 1}])
    assert ray.get(f.remote(), timeout=T) == 1  # nothing was left half done


def test_init_labels_are_refused_in_local_mode(start_ember):
    with pytest.raises(ValueError, match="labels or local_mode"):
        start_ember(local_mode=True, labels={"zone": "a"})


@pytest.mark.ember_only  # Ray's local mode takes any _system_config key
def test_unknown_system_config_keys_are_refused_in_local_mode(start_ember):
    with pytest.raises(ValueError, match="_system_config has keys Ember does not know: 'nope'"):
        start_ember(local_mode=True, _system_config={"nope": 1})


def test_max_pending_calls_counts_calls_still_running(local):
    ray = local

    @ray.remote(max_pending_calls=1)
    class A:
        def value(self):
            return 1

        def reenter(self):  # this call is still running: a second one is over the limit
            me = ray.get_runtime_context().current_actor
            try:
                me.value.remote()
            except ray.exceptions.PendingCallsLimitExceeded:
                return "refused"
            return "let through"

    a = A.remote()
    assert ray.get([a.value.remote() for _ in range(3)], timeout=T) == [1, 1, 1]
    assert ray.get(a.reenter.remote(), timeout=T) == "refused"


def test_concurrency_groups_are_accepted(local):
    ray = local

    @ray.remote(concurrency_groups={"io": 2})
    class A:
        @ray.method(concurrency_group="io")
        def read(self):
            return "io"

        def other(self):
            return "default"

    a = A.remote()
    assert ray.get([a.read.remote(), a.other.remote()], timeout=T) == ["io", "default"]
    assert ray.get(a.other.options(concurrency_group="io").remote(), timeout=T) == "default"


def test_async_init_and_runtime_context_of_an_actor(local):
    ray = local

    @ray.remote
    class A:
        async def __init__(self):
            self.ready = True

        async def ready_(self):
            return self.ready

        def who(self):
            ctx = ray.get_runtime_context()
            return ctx.get_actor_name(), ctx.get_actor_id(), ctx.current_actor._actor_id.hex()

    a = A.options(name="who").remote()
    assert ray.get(a.ready_.remote(), timeout=T) is True
    name, actor_id, handle_id = ray.get(a.who.remote(), timeout=T)
    assert (name, actor_id, handle_id) == ("who", a._actor_id.hex(), a._actor_id.hex())
    assert ray.get_runtime_context().get_actor_id() is None  # the driver is no actor again


@pytest.mark.parametrize("is_async", [False, True])
def test_exit_actor_ends_the_actor(local, is_async):
    ray = local

    class A:
        def ping(self):
            return "pong"

    if is_async:

        async def stop(self):
            ray.actor.exit_actor()

    else:

        def stop(self):
            ray.actor.exit_actor()

    A.stop = stop
    a = ray.remote(A).options(name="stopper").remote()
    assert ray.get(a.ping.remote(), timeout=T) == "pong"
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(a.stop.remote(), timeout=T)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(a.ping.remote(), timeout=T)
    with pytest.raises(ValueError):  # its name is free again
        ray.get_actor("stopper")


def test_retry_exceptions_run_the_call_again(local):
    ray = local
    calls = []  # (the driver's own list: local mode runs this very function)

    @ray.remote(max_retries=2, retry_exceptions=[KeyError])
    def flaky(fail_times, error):
        calls.append(1)
        if len(calls) <= fail_times:
            raise error("flaky")
        return len(calls)

    assert ray.get(flaky.remote(2, KeyError), timeout=T) == 3
    calls.clear()
    with pytest.raises(KeyError):  # out of retries
        ray.get(flaky.remote(5, KeyError), timeout=T)
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(ValueError):  # not one of its retry_exceptions
        ray.get(flaky.remote(1, ValueError), timeout=T)
    assert len(calls) == 1

    @ray.remote(max_task_retries=1)
    class A:
        def __init__(self):
            self.n = 0

        @ray.method(retry_exceptions=True)
        def step(self):
            self.n += 1
            if self.n == 1:
                raise RuntimeError("first")
            return self.n

        @ray.method(retry_exceptions=True)
        def stop(self):
            self.n += 1
            ray.actor.exit_actor()

    a = A.remote()
    assert ray.get(a.step.remote(), timeout=T) == 2
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(a.stop.remote(), timeout=T)


def test_job_runtime_env_vars_apply_to_every_call(start_ember, tmp_path):
    with pytest.raises(ValueError, match="working_dir.*the job.*local mode"):
        start_ember(local_mode=True, runtime_env={"working_dir": str(tmp_path)})
    os.environ.pop("EMBER_LOCAL_TEST_VAR", None)
    ray = start_ember(local_mode=True, runtime_env={"env_vars": {"EMBER_LOCAL_TEST_VAR": "job"}})

    @ray.remote
    def read():
        return os.environ.get("EMBER_LOCAL_TEST_VAR"), os.environ.get("EMBER_LOCAL_OTHER")

    other = {"runtime_env": {"env_vars": {"EMBER_LOCAL_OTHER": "task"}}}
    assert ray.get(read.remote(), timeout=T) == ("job", None)
    assert ray.get(read.options(**other).remote(), timeout=T) == ("job", "task")  # merged
    assert "EMBER_LOCAL_TEST_VAR" not in os.environ
