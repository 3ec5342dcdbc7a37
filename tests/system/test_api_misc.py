"""System tests: init/shutdown, cluster and runtime-context queries, option validation, output.

Checked against real Ray 2.60. Things Ray does that may surprise an implementer:
- shutdown() when not initialized is a silent no-op; init() after shutdown() works again.
- A second init() raises RuntimeError; init(ignore_reinit_error=True) does not.
- get_runtime_context().get_task_id() is None on the driver; get_actor_id() is None outside
  an actor; ids are hex strings.
- Unknown option names raise ValueError at decoration time ("Invalid option keyword foo for
  remote functions. Valid ones are [...]"), as does .options(foo=...); an ill-typed value
  such as num_cpus="two" raises TypeError.
- Calling a remote function or instantiating an actor class directly raises TypeError.
- init(resources={"x": 0.5}) raises ValueError (node resource amounts must be whole numbers;
  only requests may be fractional); Ray then leaves processes behind, so it is not tested.
- available_resources() is updated asynchronously: poll it.
- Worker output reaches the driver prefixed with "(<task name> pid=<pid>)".
"""

from __future__ import annotations

import os
import select
import sys
import time

import psutil
import pytest

from tests._helpers import free_cpus, wait_until

T = 30  # upper bound for every get: a bug fails the test instead of hanging it


def _descendant_pids() -> set[int]:
    try:
        return {p.pid for p in psutil.Process().children(recursive=True)}
    except psutil.Error:
        return set()


def test_init_shutdown_is_initialized(start_ember):
    import ember

    assert not ember.is_initialized()
    ray = start_ember(num_cpus=2)
    assert ray.is_initialized()
    ray.shutdown()
    assert not ray.is_initialized()
    ray.shutdown()  # a second shutdown is a no-op


def test_init_again_after_shutdown(start_ember):
    ray = start_ember(num_cpus=1)

    @ray.remote
    def f(x):
        return x + 1

    assert ray.get(f.remote(1), timeout=T) == 2
    ray.shutdown()
    ray.init(num_cpus=2)
    assert ray.is_initialized()
    assert ray.cluster_resources()["CPU"] == 2
    assert ray.get(f.remote(2), timeout=T) == 3


def test_second_init_raises_runtime_error(ray):
    with pytest.raises(RuntimeError):
        ray.init(num_cpus=2)
    assert ray.is_initialized()


def test_second_init_with_ignore_reinit_error(ray):
    ray.init(num_cpus=2, ignore_reinit_error=True)
    assert ray.is_initialized()

    @ray.remote
    def f():
        return "ok"

    assert ray.get(f.remote(), timeout=T) == "ok"


def test_init_resources_reflected_in_cluster_resources(start_ember):
    ray = start_ember(num_cpus=3, num_gpus=4, resources={"custom": 2, "other": 1})
    total = ray.cluster_resources()
    assert total["CPU"] == 3
    assert total["GPU"] == 4
    assert total["custom"] == 2
    assert total["other"] == 1
    assert all(isinstance(v, float) for v in total.values())


def test_available_resources_when_idle(start_ember):
    ray = start_ember(num_cpus=2, resources={"custom": 3})
    avail = ray.available_resources()
    assert avail["CPU"] == 2
    assert avail["custom"] == 3
    assert "GPU" not in ray.cluster_resources() or ray.cluster_resources()["GPU"] == 0


def test_available_resources_drop_while_task_runs(ray, gate):
    @ray.remote(num_cpus=1)
    def hold(gate):
        return gate.wait()  # busy, not blocked in get(): keeps its CPU

    ref = hold.remote(gate)
    gate.wait_arrivals(1)
    # Resource accounting may be reported asynchronously: poll, bounded.
    wait_until(free_cpus, 15, "one free CPU", until=lambda n: n == 1)
    gate.open()
    assert ray.get(ref, timeout=T) is True
    wait_until(free_cpus, 15, "both CPUs free", until=lambda n: n == 2)


@pytest.mark.ember_only  # (Ray's figures come from its control store, a moment later)
def test_available_resources_right_after_get(ray):
    """The CPUs of tasks that finished are free at once: their leases were kept idle for a
    second, and reported as used meanwhile."""

    @ray.remote
    def nap():
        time.sleep(0.05)

    ray.get([nap.remote() for _ in range(4)], timeout=T)
    assert ray.available_resources().get("CPU") == 2


def test_nodes_has_one_alive_node(ray):
    nodes = ray.nodes()
    assert isinstance(nodes, list)
    assert len(nodes) == 1
    node = nodes[0]
    assert node["Alive"] is True
    assert isinstance(node["NodeID"], str) and node["NodeID"]
    assert node["Resources"]["CPU"] == 2


def test_runtime_context_on_driver(ray):
    ctx = ray.get_runtime_context()
    job_id = ctx.get_job_id()
    assert isinstance(job_id, str) and job_id
    node_id = ctx.get_node_id()
    assert isinstance(node_id, str) and node_id
    assert node_id == ray.nodes()[0]["NodeID"]
    assert ctx.get_actor_id() is None


def test_runtime_context_inside_task(ray):
    @ray.remote
    def ids():
        ctx = ray.get_runtime_context()
        return ctx.get_job_id(), ctx.get_task_id(), ctx.get_node_id(), ctx.get_actor_id()

    job1, task1, node1, actor1 = ray.get(ids.remote(), timeout=T)
    job2, task2, node2, _ = ray.get(ids.remote(), timeout=T)
    ctx = ray.get_runtime_context()
    assert job1 == job2 == ctx.get_job_id()
    assert node1 == node2 == ctx.get_node_id()
    assert isinstance(task1, str) and task1
    assert isinstance(task2, str) and task2
    assert task1 != task2
    assert actor1 is None


def test_runtime_context_inside_actor(ray):
    @ray.remote
    class A:
        def actor_id(self):
            return ray.get_runtime_context().get_actor_id()

        def task_id(self):
            return ray.get_runtime_context().get_task_id()

    a, b = A.remote(), A.remote()
    a1 = ray.get(a.actor_id.remote(), timeout=T)
    a2 = ray.get(a.actor_id.remote(), timeout=T)
    b1 = ray.get(b.actor_id.remote(), timeout=T)
    assert isinstance(a1, str) and a1
    assert a1 == a2
    assert a1 != b1
    t1 = ray.get(a.task_id.remote(), timeout=T)
    t2 = ray.get(a.task_id.remote(), timeout=T)
    assert isinstance(t1, str) and t1 != t2


def test_exceptions_module_is_importable():
    import ember
    import ember.exceptions as exc

    assert ember.exceptions is exc
    assert issubclass(exc.RayTaskError, exc.RayError)
    assert issubclass(exc.RayActorError, exc.RayError)
    assert issubclass(exc.ActorDiedError, exc.RayActorError)
    assert issubclass(exc.GetTimeoutError, exc.RayError)
    assert issubclass(exc.GetTimeoutError, TimeoutError)
    assert issubclass(exc.TaskCancelledError, exc.RayError)
    assert issubclass(exc.WorkerCrashedError, exc.RayError)
    assert issubclass(exc.RayError, Exception)


def test_public_names_exist():
    import ember

    for name in [
        "init",
        "shutdown",
        "is_initialized",
        "remote",
        "method",
        "get",
        "put",
        "wait",
        "cancel",
        "kill",
        "get_actor",
        "get_gpu_ids",
        "get_runtime_context",
        "cluster_resources",
        "available_resources",
        "nodes",
        "ObjectRef",
    ]:
        assert hasattr(ember, name), name


def test_unknown_function_option_raises_value_error():
    import ember as ray  # options are validated at decoration time, without init()

    def f():
        return 1

    with pytest.raises(ValueError, match="num_cpus"):
        ray.remote(not_an_option=1)(f)

    g = ray.remote(f)
    with pytest.raises(ValueError, match="num_cpus"):
        g.options(not_an_option=1)


def test_unknown_actor_option_raises_value_error():
    import ember as ray

    class A:
        pass

    with pytest.raises(ValueError, match="max_restarts"):
        ray.remote(not_an_option=1)(A)

    B = ray.remote(A)
    with pytest.raises(ValueError, match="max_restarts"):
        B.options(not_an_option=1)


def test_task_only_option_on_actor_raises_value_error():
    import ember as ray

    class A:
        pass

    with pytest.raises(ValueError):
        ray.remote(num_returns=2)(A)  # num_returns is not an actor option


@pytest.mark.parametrize(
    "options",
    [
        {"num_cpus": "two"},
        {"num_gpus": "one"},
        {"max_retries": "3"},
        {"resources": ["custom"]},
        {"num_returns": -1},
        {"num_cpus": -1},
    ],
)
def test_ill_typed_function_options_raise(options):
    import ember as ray

    def f():
        return 1

    with pytest.raises((TypeError, ValueError)):
        ray.remote(**options)(f)


@pytest.mark.parametrize(
    "options",
    [
        {"max_restarts": "1"},
        {"max_task_retries": "x"},
        {"max_concurrency": "2"},
        {"num_cpus": "x"},
        {"name": 5},
        {"lifetime": "forever"},
    ],
)
def test_ill_typed_actor_options_raise(options):
    import ember as ray

    class A:
        pass

    with pytest.raises((TypeError, ValueError)):
        ray.remote(**options)(A)


def test_remote_function_cannot_be_called_directly():
    import ember as ray

    @ray.remote
    def f():
        return 1

    with pytest.raises(TypeError):
        f()


def test_actor_class_cannot_be_instantiated_directly():
    import ember as ray

    @ray.remote
    class A:
        pass

    with pytest.raises(TypeError):
        A()


def test_print_in_task_reaches_driver_with_pid_prefix(ray, monkeypatch):
    # The driver prints worker output from a background thread. pytest's capfd loses a write
    # that lands between the read and the truncate of its readouterr(), so the test reads the
    # driver's output through a pipe of its own instead.
    read_fd, write_fd = os.pipe()
    pipe = os.fdopen(write_fd, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", pipe)
    monkeypatch.setattr(sys, "stderr", pipe)
    token = f"ember-print-token-{time.time_ns()}"

    @ray.remote
    def chatty(token):
        import os

        print(token, flush=True)
        return os.getpid()

    try:
        pid = ray.get(chatty.remote(token), timeout=T)
        seen = ""
        deadline = time.monotonic() + 15
        while token not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"task output never reached the driver: {seen!r}"
            if select.select([read_fd], [], [], left)[0]:
                seen += os.read(read_fd, 65536).decode(errors="replace")
    finally:
        monkeypatch.undo()
        pipe.close()
        os.close(read_fd)
    line = next(ln for ln in seen.splitlines() if token in ln)
    assert f"pid={pid}" in line
    assert line.index(f"pid={pid}") < line.index(token)


def test_shutdown_ends_every_started_process(start_ember):
    before = _descendant_pids()
    ray = start_ember(num_cpus=2)

    @ray.remote
    def pid():
        import os

        return os.getpid()

    @ray.remote
    class A:
        def pid(self):
            import os

            return os.getpid()

    actor = A.remote()
    worker_pids = set(ray.get([pid.remote() for _ in range(4)], timeout=T))
    worker_pids.add(ray.get(actor.pid.remote(), timeout=T))
    started = _descendant_pids() - before
    assert worker_pids <= started  # workers are descendants of the driver

    ray.shutdown()
    left = _descendant_pids() - before
    alive = []
    for p in left:
        try:
            if psutil.Process(p).status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    assert not left, f"processes still there right after shutdown(): {left} (alive: {alive})"
    assert not ray.is_initialized()
