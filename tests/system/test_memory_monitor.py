"""System tests: the node's memory monitor kills workers before the machine runs out of memory.

Checked against real Ray 2.60, whose default (time-based) policy kills workers running
retriable tasks first, the most recently granted first, until memory is back under the
threshold less a buffer (set to 0 here, ``RAY_max_kill_memory_buffer_bytes``, so that exactly
the worker that crossed it goes); a task with ``max_retries=0`` fails with
``OutOfMemoryError``, whose message gives the node's memory numbers.

No test exhausts the machine: the threshold is set just above what the machine uses when the
test starts (a margin of ``MARGIN``), and a task allocates in steps until it is killed, at most
``MARGIN + HEADROOM`` bytes, so a killed worker frees the excess at once. The margin absorbs
the processes the cluster itself starts; allocating in steps up to a cap well beyond the
margin keeps the test working when other processes on the machine free memory meanwhile. The
monitor only ever kills this test's own workers (those holding leases of this node).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

T = 60  # upper bound for every get
GB = 1 << 30
MARGIN = int(1.5 * GB)
HEADROOM = int(2.5 * GB)
STEP = 64 << 20


def hold_memory(cap: int, gate: str = "") -> str:
    """Allocate (and touch) memory in steps up to ``cap`` bytes, then hold it a while; a
    worker still alive then was not killed. With ``gate``, wait for that file first."""
    deadline = time.monotonic() + T
    while gate and not os.path.exists(gate):
        if time.monotonic() > deadline:
            return "the gate never opened"
        time.sleep(0.01)
    chunks = []
    while len(chunks) * STEP < cap:
        chunks.append(bytearray(b"\x01") * STEP)
        time.sleep(0.01)
    time.sleep(T / 2)
    return "not killed"


class Hog:
    def hold(self, cap: int) -> str:
        return hold_memory(cap)

    def ping(self) -> str:
        return "pong"


@pytest.fixture
def low_threshold(monkeypatch: pytest.MonkeyPatch) -> int:
    """Set the memory monitor's threshold ``MARGIN`` above what the machine uses now (before
    the cluster starts), sample often, and free no more than the excess; returns the most a
    task should allocate."""
    mem = psutil.virtual_memory()
    if mem.available < 2 * (MARGIN + HEADROOM):
        pytest.skip(f"too little free memory ({mem.available / GB:.1f} GiB) to test safely")
    used = mem.total - mem.available
    monkeypatch.setenv("RAY_memory_usage_threshold", f"{(used + MARGIN) / mem.total:.4f}")
    monkeypatch.setenv("RAY_memory_monitor_refresh_ms", "50")
    monkeypatch.setenv("RAY_max_kill_memory_buffer_bytes", "0")
    monkeypatch.setenv("RAY_task_oom_retry_delay_base_ms", "0")
    return MARGIN + HEADROOM


def test_a_task_without_retries_fails_with_out_of_memory_error(start_ember, low_threshold):
    ray = start_ember(num_cpus=2)

    @ray.remote
    class Keeper:
        def value(self) -> int:
            return 42

    keeper = Keeper.remote()  # non-retriable (max_restarts=0), and older than the task
    assert ray.get(keeper.value.remote(), timeout=T) == 42
    hog = ray.remote(max_retries=0)(hold_memory)
    with pytest.raises(ray.exceptions.OutOfMemoryError) as info:
        ray.get(hog.remote(low_threshold), timeout=T)
    text = str(info.value)
    assert "worker(s) were killed due to the node running low on memory" in text
    assert "GB used /" in text and "exceeded threshold of" in text  # the node's numbers
    assert "RAY_memory_usage_threshold" in text  # what to do

    # The node and the other work survive.
    assert ray.get(keeper.value.remote(), timeout=T) == 42

    @ray.remote
    def add(x: int) -> int:
        return x + 1

    assert ray.get(add.remote(1), timeout=T) == 2


def test_a_retriable_task_is_killed_first_and_runs_again(start_ember, low_threshold, tmp_path):
    ray = start_ember(num_cpus=2)
    tried = str(tmp_path / "tried")
    gate = str(tmp_path / "gate")

    @ray.remote(max_retries=1)
    def hog(cap: int) -> str:
        if os.path.exists(tried):
            return "ran again"
        Path(tried).touch()
        return hold_memory(cap, gate)

    @ray.remote(max_retries=0)
    def steady(started: str) -> str:
        Path(started).touch()
        deadline = time.monotonic() + T
        while not os.path.exists(tried + ".done") and time.monotonic() < deadline:
            time.sleep(0.01)
        return "finished"

    first = hog.remote(low_threshold)
    deadline = time.monotonic() + T
    while not os.path.exists(tried) and time.monotonic() < deadline:
        time.sleep(0.01)
    # Granted after the retriable task, so newer; still not the one killed.
    started = str(tmp_path / "steady")
    other = steady.remote(started)
    while not os.path.exists(started) and time.monotonic() < deadline:
        time.sleep(0.01)
    Path(gate).touch()
    assert ray.get(first, timeout=T) == "ran again"
    Path(tried + ".done").touch()
    assert ray.get(other, timeout=T) == "finished"


def test_kills_for_memory_do_not_use_max_retries(start_ember, low_threshold, tmp_path):
    """As in Ray: a task with max_retries != 0 runs again after each kill by the memory
    monitor on a budget of its own (``task_oom_retries``, no limit by default)."""
    ray = start_ember(num_cpus=2)
    runs = tmp_path / "runs"

    @ray.remote(max_retries=1)
    def hog(cap: int) -> int:
        with runs.open("a") as f:
            f.write("x")
        n = len(runs.read_text())
        return n if n > 2 else len(hold_memory(cap))

    assert ray.get(hog.remote(low_threshold), timeout=2 * T) == 3  # killed twice


def test_the_legacy_policy_does_not_retry_an_owner_s_last_task(
    start_ember, low_threshold, monkeypatch
):
    """With RAY_worker_killing_policy_by_group (Ray's policy before 2.56), the only task of
    its owner is killed without a retry: it would only use the memory again."""
    monkeypatch.setenv("RAY_worker_killing_policy_by_group", "1")
    ray = start_ember(num_cpus=2)
    hog = ray.remote(max_retries=3)(hold_memory)
    with pytest.raises(ray.exceptions.OutOfMemoryError):
        ray.get(hog.remote(low_threshold), timeout=T)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_an_idle_worker_holding_much_memory_is_killed_first(
    start_ember, low_threshold, monkeypatch
):
    """A worker that holds no lease but keeps more than
    RAY_idle_worker_killing_memory_threshold_bytes goes before any busy one (it holds no
    work). Here the driver's own allocation crosses the threshold: it is never killed."""
    monkeypatch.setenv("RAY_idle_worker_killing_memory_threshold_bytes", str(MARGIN // 4))
    ray = start_ember(num_cpus=2)

    @ray.remote
    def keep(n: int) -> int:
        import builtins

        builtins._kept = bytearray(b"\x01") * n  # type: ignore[attr-defined]
        return os.getpid()

    pid = ray.get(keep.remote(MARGIN // 2), timeout=T)
    chunks = []
    deadline = time.monotonic() + T
    while not _gone(pid) and len(chunks) * STEP < low_threshold and time.monotonic() < deadline:
        chunks.append(bytearray(b"\x01") * STEP)
        time.sleep(0.01)
    del chunks
    assert _gone(pid)


def test_an_actor_killed_for_memory_fails_its_call_with_out_of_memory_error(
    start_ember, low_threshold
):
    """As on Ray 2.60: the call its process was running fails with OutOfMemoryError, and so
    does every later call, since the actor (max_restarts=0) stays dead."""
    ray = start_ember(num_cpus=2)

    hog: Any = ray.remote(Hog).remote()
    with pytest.raises(ray.exceptions.OutOfMemoryError) as info:
        ray.get(hog.hold.remote(low_threshold), timeout=T)
    assert "running low on memory" in str(info.value)
    with pytest.raises(ray.exceptions.OutOfMemoryError):
        ray.get(hog.ping.remote(), timeout=T)


@pytest.mark.ember_only  # (ember.testing.Cluster)
def test_a_task_killed_for_memory_on_another_node_fails_with_out_of_memory_error(
    make_cluster, low_threshold
):
    """The task's owner is on the head node; the node that ran it says why its worker
    ended. (Every node on this host samples the same memory; the head has no work to kill.)"""
    import ember

    make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"far": 1}})
    hog = ember.remote(max_retries=0, resources={"far": 1})(hold_memory)
    with pytest.raises(ember.exceptions.OutOfMemoryError, match="running low on memory"):
        ember.get(hog.remote(low_threshold), timeout=T)


@pytest.mark.ember_only  # (ember.testing.Cluster)
def test_an_actor_on_another_node_killed_for_memory_fails_with_out_of_memory_error(
    make_cluster, low_threshold
):
    """The actor is managed by the head node and runs on the other one, whose monitor must
    count it as one that does not run again (max_restarts=0) and say why it killed it."""
    import ember

    make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"far": 1}})

    hog: Any = ember.remote(resources={"far": 1})(Hog).remote()
    with pytest.raises(ember.exceptions.OutOfMemoryError) as info:
        ember.get(hog.hold.remote(low_threshold), timeout=T)
    assert "running low on memory" in str(info.value)
    assert "retriable" not in str(info.value)  # (it may not restart)
    with pytest.raises(ember.exceptions.OutOfMemoryError):
        ember.get(hog.ping.remote(), timeout=T)
