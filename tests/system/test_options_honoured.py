"""Options of tasks, actors and ``init()`` that Ember once accepted and ignored, each honoured
as Ray honours it (or refused by name): ``max_calls``, ``max_pending_calls``, ``memory``,
``accelerator_type``, node labels and ``label_selector``, and ``init()``'s keywords.

The tests not marked ``ember_only`` also run on Ray through the shim (tests/system/conftest.py).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import psutil
import pytest

from tests._helpers import wait_until


def _runs(ray: Any, refs: list[Any]) -> bool:
    """Did these refs finish within a second? (For work that must wait: a bound, not a race.)"""
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=1.0)
    return bool(ready)


# ------------------------------------------------------------------------------- max_calls


def test_a_worker_runs_a_function_at_most_max_calls_times(ray: Any) -> None:
    @ray.remote(max_calls=2)
    def pid() -> int:
        return os.getpid()

    one_by_one = [ray.get(pid.remote(), timeout=30) for _ in range(6)]
    at_once = ray.get([pid.remote() for _ in range(10)], timeout=60)
    for pids in (one_by_one, at_once):
        assert max(pids.count(p) for p in pids) <= 2
    assert len(set(one_by_one) & set(at_once)) == 0  # each retired worker is gone

    @ray.remote(max_calls=1, max_retries=0)
    def once() -> int:
        return os.getpid()

    # Nothing pushed to a retiring worker is lost or counted as a crash.
    pids = ray.get([once.remote() for _ in range(8)], timeout=60)
    assert len(set(pids)) == 8


def test_max_calls_zero_means_no_limit_and_gpu_functions_default_to_one(
    start_ember: Any,
) -> None:
    ray = start_ember(num_cpus=2, num_gpus=1)

    @ray.remote
    def cpu() -> int:
        return os.getpid()

    cpu_pids = [ray.get(cpu.remote(), timeout=30) for _ in range(4)]
    assert len(set(cpu_pids)) < 4  # workers are reused

    @ray.remote(num_gpus=1)
    def gpu() -> int:
        return os.getpid()

    gpu_pids = [ray.get(gpu.remote(), timeout=30) for _ in range(3)]
    assert len(set(gpu_pids)) == 3

    @ray.remote(num_gpus=1, max_calls=0)
    def gpu_reused() -> int:
        return os.getpid()

    reused = [ray.get(gpu_reused.remote(), timeout=30) for _ in range(4)]
    assert len(set(reused)) < 4


# --------------------------------------------------------------------- max_pending_calls


def test_max_pending_calls_raises_at_the_call_site(ray: Any, gate: Any) -> None:
    @ray.remote(max_pending_calls=2)
    class Slow:
        def hold(self, g: Any) -> bool:
            return bool(g.wait())

    actor = Slow.remote()
    first = [actor.hold.remote(gate) for _ in range(2)]
    with pytest.raises(ray.exceptions.PendingCallsLimitExceeded) as raised:
        actor.hold.remote(gate)
    assert isinstance(raised.value, ray.exceptions.RayError)
    assert "max_pending_calls" in str(raised.value)
    gate.open()
    assert ray.get(first, timeout=30) == [True, True]
    assert ray.get(actor.hold.remote(gate), timeout=30)  # room again once answered


def test_max_pending_calls_holds_for_calls_from_many_threads(ray: Any, gate: Any) -> None:
    @ray.remote(max_pending_calls=3)
    class Slow:
        def hold(self, g: Any) -> bool:
            return bool(g.wait())

    actor = Slow.remote()
    start = threading.Barrier(8)
    taken: list[Any] = []

    def submit() -> None:
        start.wait(timeout=30)
        for _ in range(20):
            try:
                taken.append(actor.hold.remote(gate))
            except ray.exceptions.PendingCallsLimitExceeded:
                pass

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(taken) == 3
    gate.open()
    assert ray.get(taken, timeout=30) == [True] * 3


# ---------------------------------------------------------------------------------- memory


def test_memory_is_a_node_resource_in_bytes(ray: Any) -> None:
    memory = ray.cluster_resources()["memory"]
    assert 0 < memory < psutil.virtual_memory().total
    assert ray.nodes()[0]["Resources"]["memory"] == memory


def test_tasks_asking_for_memory_run_only_while_it_is_free(ray: Any, gate: Any) -> None:
    most = int(ray.cluster_resources()["memory"] * 0.6)

    @ray.remote(memory=most)
    def hold(g: Any) -> bool:
        return bool(g.wait())

    first = hold.remote(gate)
    gate.wait_arrivals(1)
    second = hold.remote(gate)  # CPUs are free, the memory is not
    assert not _runs(ray, [second])
    assert gate.arrivals() == 1
    gate.open()
    assert ray.get([first, second], timeout=30) == [True, True]


@pytest.mark.ember_only  # (Ray's autoscaler warns later, in its own words)
def test_asking_more_memory_than_any_node_has_waits_with_a_warning(
    ray: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    @ray.remote(memory=int(ray.cluster_resources()["memory"]) * 2)
    def huge() -> int:
        return 1

    ref = huge.remote()
    said: list[str] = []

    def warned() -> bool:
        said.append(capfd.readouterr().err)
        return "lacks memory" in "".join(said)

    wait_until(warned, 15, "the infeasible task's warning")
    assert not _runs(ray, [ref])


# ------------------------------------------------------------------------ accelerator_type


def test_accelerator_type_needs_a_node_that_advertises_it(start_ember: Any) -> None:
    ray = start_ember(num_cpus=2, resources={"accelerator_type:A100": 1})

    @ray.remote(accelerator_type="A100")
    def on_a100() -> int:
        return 1

    assert ray.get([on_a100.remote() for _ in range(3)], timeout=30) == [1, 1, 1]
    assert not _runs(ray, [on_a100.options(accelerator_type="H100").remote()])


# -------------------------------------------------------------------------- label_selector


def test_label_selector_runs_only_on_a_node_with_matching_labels(start_ember: Any) -> None:
    ray = start_ember(num_cpus=2, labels={"zone": "a"})
    assert ray.nodes()[0]["Labels"]["zone"] == "a"

    @ray.remote
    def one() -> int:
        return 1

    for selector in ({"zone": "a"}, {"zone": "!b"}, {"zone": "in(a,b)"}, {"zone": "!in(b,c)"}):
        assert ray.get(one.options(label_selector=selector).remote(), timeout=30) == 1

    @ray.remote(label_selector={"zone": "in(a,b)"})
    class Here:
        def ping(self) -> str:
            return "pong"

    assert ray.get(Here.remote().ping.remote(), timeout=30) == "pong"
    assert not _runs(ray, [one.options(label_selector={"zone": "b"}).remote()])


@pytest.mark.ember_only  # (ember.testing.Cluster)
def test_label_selector_places_tasks_and_actors_on_a_cluster(make_cluster: Any) -> None:
    import ember

    cluster = make_cluster(
        {"num_cpus": 1, "labels": {"zone": "a"}},
        {"num_cpus": 1, "labels": {"zone": "b", "disk": "ssd"}},
        {"num_cpus": 1},
    )
    a, b, c = (n.node_id for n in cluster.nodes)
    labels = {n["NodeID"]: n["Labels"] for n in ember.nodes()}
    assert labels[a]["zone"] == "a" and labels[b] == {"zone": "b", "disk": "ssd", **_id(b)}
    assert labels[c] == _id(c)

    @ember.remote(num_cpus=0)
    def where() -> str:
        return ember.get_runtime_context().get_node_id()

    def ran_on(selector: dict[str, str]) -> set[str]:
        return set(ember.get([where.options(label_selector=selector).remote() for _ in range(6)]))

    assert ran_on({"zone": "b"}) == {b}
    assert ran_on({"disk": "ssd", "zone": "!a"}) == {b}
    assert ran_on({"zone": "!in(a,b)"}) == {c}
    assert ran_on({"zone": "in(a,b)"}) <= {a, b}

    @ember.remote(num_cpus=0, label_selector={"zone": "a"})
    class Where:
        def node(self) -> str:
            return ember.get_runtime_context().get_node_id()

    assert ember.get(Where.remote().node.remote(), timeout=30) == a


def _id(node_id: str) -> dict[str, str]:
    return {"ray.io/node-id": node_id}


# ---------------------------------------------------------------------- enable_task_events


def test_enable_task_events_is_taken_by_tasks_actors_and_methods(ray: Any) -> None:
    @ray.remote(enable_task_events=False)
    def quiet() -> int:
        return 1

    @ray.remote(enable_task_events=False)
    class Quiet:
        @ray.method(enable_task_events=True)
        def loud(self) -> int:
            return 2

        def still_quiet(self) -> int:
            return 3

    actor = Quiet.remote()
    refs = [quiet.remote(), actor.loud.remote(), actor.still_quiet.remote()]
    refs.append(quiet.options(enable_task_events=True).remote())
    assert ray.get(refs, timeout=30) == [1, 2, 3, 1]


# ------------------------------------------------------------------------------- init()


def test_init_sets_up_its_own_logger(start_ember: Any) -> None:
    ray = start_ember(num_cpus=1, logging_level=logging.WARNING)
    assert logging.getLogger(ray.__name__).getEffectiveLevel() == logging.WARNING


@pytest.mark.ember_only
@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"job_config": object()}, NotImplementedError, "job_config"),
        ({"logging_config": object()}, NotImplementedError, "logging_config"),
        ({"_plasma_directory": "/tmp"}, NotImplementedError, "_plasma_directory"),
        ({"num_cpu": 2}, TypeError, "num_cpu"),
        ({"_system_config": {"max_io_workers": 2}}, ValueError, "max_io_workers"),
        ({"_redis_password": "secret"}, ValueError, "_redis_password"),
        ({"_enable_object_reconstruction": False}, ValueError, "lineage"),
        ({"_temp_dir": "relative"}, ValueError, "_temp_dir"),
        ({"labels": {"zone": "not ok"}}, ValueError, "zone"),
    ],
)
def test_init_refuses_what_it_does_not_honour_naming_it(
    start_ember: Any, kwargs: dict[str, Any], error: type[Exception], names: str
) -> None:
    with pytest.raises(error, match=names):
        start_ember(**kwargs)


@pytest.mark.ember_only
def test_init_honours_the_hidden_keywords_it_takes(start_ember: Any, tmp_path: Any) -> None:
    ray = start_ember(
        num_cpus=1,
        include_dashboard=False,
        dashboard_port=8265,  # (moot without a dashboard, as in Ray)
        _temp_dir=str(tmp_path),
        _node_ip_address="127.0.0.2",
        _memory=1 << 30,
        _redis_password="5241590000000000",  # Ray's default: nothing to refuse
        _enable_object_reconstruction=True,  # (what Ember does anyway)
        _system_config={"ref_grace_s": 0.5},
    )
    sessions = os.listdir(tmp_path / f"ember-{os.getuid()}")
    assert [s for s in sessions if s.startswith("s-")]
    (node,) = ray.nodes()
    assert node["NodeManagerAddress"] == "127.0.0.2"
    assert node["Resources"]["node:127.0.0.2"] == 1
    assert ray.cluster_resources()["memory"] == 1 << 30

    @ray.remote
    def one() -> int:
        return 1

    assert ray.get(one.remote(), timeout=30) == 1
