"""Chaos tests: real worker and actor processes are killed (SIGKILL) while work runs.

Each test is bounded (a few seconds on 2 cores), waits for events instead of sleeping for
fixed times, and gives every ``get`` a timeout, so a bug fails the test instead of hanging it.
Processes are only ever killed by pid, and only if they belong to the Ember instance this test
started: children of the test's node manager (``ember::node``), which forks its workers.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests._helpers import free_cpus, session_shm_dir, shm_bytes, wait_until

pytestmark = pytest.mark.ember_only  # inspects Ember's own processes and store

T = 30  # upper bound for every get/wait: a bug fails the test instead of hanging it
_NODE_TITLE = "ember::node"


# -- processes ------------------------------------------------------------------------------


def _node_manager() -> psutil.Process:
    """The node manager: the direct child of the test process named ``ember::node``."""
    nodes = []
    for child in psutil.Process().children(recursive=False):
        try:
            if child.name() == _NODE_TITLE:
                nodes.append(child)
        except psutil.Error:
            continue
    assert len(nodes) == 1, f"expected one node manager, found {nodes}"
    return nodes[0]


def _worker_pids() -> set[int]:
    """Pids of the live workers: the node manager's children (it forks them)."""
    pids = set()
    try:
        children = _node_manager().children()
    except psutil.Error:
        return pids
    for proc in children:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                pids.add(proc.pid)
        except psutil.Error:
            continue
    return pids


def _kill_worker(pid: int) -> None:
    """SIGKILL one worker of this test's Ember instance, checked to be one just before."""
    assert pid in _worker_pids(), f"pid {pid} is not a worker of this test's Ember"
    os.kill(pid, signal.SIGKILL)


def _wait_for_pid_file(folder: Path, within: float = T) -> int:
    """Wait until a task wrote its pid in ``folder`` (one file named after the pid)."""
    wait_until(lambda: any(folder.iterdir()), within, f"a pid file in {folder}")
    return int(next(folder.iterdir()).name)


# -- 1. many retried tasks while workers are killed -----------------------------------------


def test_tasks_survive_workers_killed_at_intervals(ray):
    @ray.remote(max_retries=3)
    def square(i):
        time.sleep(0.002)  # long enough that the kills land while tasks are in flight
        return i * i, os.getpid()

    n = 1000
    kill_at = (150, 400, 650)  # completed-task counts after which a worker is killed
    reached = [threading.Event() for _ in kill_at]
    killed: list[int] = []
    errors: list[BaseException] = []

    def killer() -> None:
        try:
            for event in reached:
                if not event.wait(T):
                    return
                # the node forks replacements; kill one that is alive and was not killed yet
                wait_until(lambda: bool(_worker_pids() - set(killed)), 10, "a live worker")
                pid = min(_worker_pids() - set(killed))
                _kill_worker(pid)
                killed.append(pid)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    refs = [square.remote(i) for i in range(n)]
    pending = list(refs)
    done = 0
    deadline = time.monotonic() + T
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} tasks still pending"
        ready, pending = ray.wait(pending, num_returns=min(50, len(pending)), timeout=T)
        done += len(ready)
        for threshold, event in zip(kill_at, reached, strict=True):
            if done >= threshold:
                event.set()
    thread.join(T)
    assert not errors, errors
    assert len(killed) == 3, killed

    results = ray.get(refs, timeout=T)
    assert [value for value, _ in results] == [i * i for i in range(n)]
    pids = {pid for _, pid in results}
    assert pids - set(killed), "no result came from a replacement worker"


# -- 2. an actor killed under a stream of calls ---------------------------------------------


def test_actor_restarted_under_load_answers_every_call(ray):
    @ray.remote(max_restarts=2, max_task_retries=2)
    class Echo:
        def echo(self, i):
            time.sleep(0.002)
            return i, os.getpid()

        def pid(self):
            return os.getpid()

    actor = Echo.remote()
    first_pid = ray.get(actor.pid.remote(), timeout=T)
    n = 200
    refs = [actor.echo.remote(i) for i in range(n)]
    ray.wait(refs, num_returns=50, timeout=T)  # a quarter done: kill it mid-stream
    _kill_worker(first_pid)

    results = ray.get(refs, timeout=T)
    assert [i for i, _ in results] == list(range(n))  # every call answered with its own arg
    pids = [pid for _, pid in results]
    assert pids[0] == first_pid
    assert pids[-1] != first_pid, "the last calls did not run on a restarted instance"
    assert ray.get(actor.pid.remote(), timeout=T) == pids[-1]


# -- 3. a tree of nested tasks with a worker killed mid-way ---------------------------------


def test_nested_task_tree_survives_worker_kill(ray, tmp_path):
    arrivals = tmp_path / "leaves"
    arrivals.mkdir()
    depth, fan_out = 4, 3

    @ray.remote(max_retries=3)
    def tree(level, index, folder):
        if level == 0:
            Path(folder, f"{index}.{os.getpid()}.{time.time_ns()}").touch()
            time.sleep(0.02)
            return index
        children = [tree.remote(level - 1, index * fan_out + k, folder) for k in range(fan_out)]
        return sum(ray.get(children, timeout=T))

    leaves = fan_out**depth  # 81 leaves numbered 0..80
    ref = tree.remote(depth, 0, str(arrivals))
    # mid-way: a third of the leaves ran; kill the worker hosting the most tasks (threads)
    wait_until(lambda: len(list(arrivals.iterdir())) >= leaves // 3, T, "a third of the leaves")

    def threads(pid: int) -> int:
        try:
            return psutil.Process(pid).num_threads()
        except psutil.Error:
            return 0

    victim = max(_worker_pids(), key=threads)
    _kill_worker(victim)
    # without the kill the tree takes under a second; with retries a few: 10 s is ample
    assert ray.get(ref, timeout=10) == sum(range(leaves))


# -- 4. unreferenced actors are killed ------------------------------------------------------


def test_dropped_actors_do_not_leave_processes(ray):
    @ray.remote
    class Holder:
        def __init__(self, i):
            self.i = i

        def get(self):
            return self.i, os.getpid()

    ray.get([ray.remote(lambda: 0).remote() for _ in range(2)], timeout=T)  # warm the pool
    baseline = len(_worker_pids())
    actor_pids = set()

    def use_one(i: int) -> int:
        actor = Holder.remote(i)
        value, pid = ray.get(actor.get.remote(), timeout=T)
        assert value == i
        return pid  # the handle goes out of scope here

    for i in range(20):
        actor_pids.add(use_one(i))
    batch = [Holder.remote(i) for i in range(20)]  # and 20 alive at once
    answers = ray.get([a.get.remote() for a in batch], timeout=T)
    assert [v for v, _ in answers] == list(range(20))
    actor_pids |= {pid for _, pid in answers}
    del batch, answers
    gc.collect()
    assert len(actor_pids) >= 21  # each alive-at-once actor had a process of its own

    # The node ends the dropped actors one after another: wait for the last, not for a count
    # that is reached while the last few are still being ended.
    wait_until(lambda: not (actor_pids & _worker_pids()), 15, "every dropped actor to end")
    bound = max(baseline, 2) + 2
    assert len(_worker_pids()) <= bound, f"more than {bound} workers are left"


def test_actors_dropped_before_any_call_end(ray):
    """An actor whose handle is dropped at once is ended even when the node is told before
    it has finished registering the actor (that message used to be lost: the actor lived on
    with nobody to call it)."""
    from ember._api.api import runtime

    @ray.remote
    class Idle:
        pass

    for _ in range(10):
        Idle.remote()
    gc.collect()
    wait_until(
        lambda: runtime().cluster_info()["actors"], 15, "no live actor", until=lambda n: n == 0
    )


# -- 5. many objects, nested refs, and the store empties afterwards -------------------------


def test_objects_through_tasks_and_store_returns_to_start(ray):
    np = pytest.importorskip("numpy")
    shm_dir = session_shm_dir()

    def session_bytes() -> int:  # the objects' files (not the pooled ones)
        total = 0
        for entry in os.scandir(shm_dir):
            with contextlib.suppress(FileNotFoundError):  # (deleted meanwhile)
                total += entry.stat().st_size if entry.is_file() else 0
        return total

    start = shm_bytes(shm_dir)
    big = 2 * 1024 * 1024 // 8  # float64 elements in 2 MB

    @ray.remote
    def total(nested):
        # refs nested in containers arrive as refs: fetch them here
        return sum(ray.get(nested["small"], timeout=T))

    @ray.remote
    def scale(arr, factor):  # a top-level ref: arrives as the value
        return arr * factor

    @ray.remote
    def check_nested(items):
        arrays = ray.get([item["array"] for item in items], timeout=T)
        return [
            (item["i"], float(a[0]), float(a[-1]), a.nbytes)
            for item, a in zip(items, arrays, strict=True)
        ]

    small = [ray.put(i) for i in range(1000)]
    assert ray.get(small, timeout=T) == list(range(1000))
    assert ray.get(total.remote({"small": small}), timeout=T) == sum(range(1000))
    chunks = [small[k : k + 100] for k in range(0, 1000, 100)]
    sums = ray.get([total.remote({"small": chunk}) for chunk in chunks], timeout=T)
    assert sums == [sum(range(k, k + 100)) for k in range(0, 1000, 100)]

    large = [ray.put(np.full(big, float(i))) for i in range(50)]
    scaled = [scale.remote(ref, 2.0) for ref in large]
    checks = ray.get(
        check_nested.remote([{"i": i, "array": ref} for i, ref in enumerate(large)]), timeout=T
    )
    assert checks == [(i, float(i), float(i), big * 8) for i in range(50)]
    values = ray.get(scaled, timeout=T)
    for i, arr in enumerate(values):
        assert arr.shape == (big,) and arr[0] == 2.0 * i and arr[-1] == 2.0 * i
    peak = shm_bytes(shm_dir)
    assert peak - start >= 100 * 2**20, (start, peak)  # 50 puts + 50 results of 2 MB

    del small, chunks, sums, large, scaled, checks, values, arr
    gc.collect()
    wait_until(lambda: session_bytes() < 2**20, 15, "the session's store to empty")
    wait_until(
        lambda: shm_bytes(shm_dir) - start,
        15,
        f"the store's shared memory back near {start} bytes",
        until=lambda grown: grown < 16 * 2**20,
    )


# -- 6. get on a task whose worker is killed, no retries ------------------------------------


def test_get_of_killed_task_without_retries_raises_quickly(ray, tmp_path):
    folder = tmp_path / "pids"
    folder.mkdir()

    @ray.remote(max_retries=0)
    def victim(path):
        Path(path, str(os.getpid())).touch()
        time.sleep(60)
        return "should not finish"

    ref = victim.remote(str(folder))
    _kill_worker(_wait_for_pid_file(folder))
    start = time.monotonic()
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(ref, timeout=T)
    assert time.monotonic() - start < 5


# -- 7. wait with a timeout, then cancel the slow tasks -------------------------------------


def test_wait_timeout_split_then_cancel_frees_cpus(ray):
    @ray.remote
    def fast(i):
        return i

    @ray.remote
    def slow(i):
        time.sleep(10)
        return i

    # the fast half first: with 2 CPUs, slow tasks ahead of them would hold both CPUs
    fast_refs = [fast.remote(i) for i in range(50)]
    slow_refs = [slow.remote(i) for i in range(50)]
    timeout = 2.0
    start = time.monotonic()
    ready, not_ready = ray.wait(fast_refs + slow_refs, num_returns=100, timeout=timeout)
    elapsed = time.monotonic() - start
    assert elapsed < timeout + 1.5, elapsed
    assert set(ready) == set(fast_refs)
    assert set(not_ready) == set(slow_refs)
    assert ray.get(ready, timeout=T) == list(range(50))

    for ref in slow_refs:
        ray.cancel(ref)
    for ref in slow_refs:
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(ref, timeout=T)
    wait_until(free_cpus, 10, "both CPUs to come back", until=lambda n: n == 2)
    assert time.monotonic() - start < 10  # well before the slow tasks would have finished


# -- 8. nested tasks while workers are killed: the node never wedges ------------------------


def test_nested_gets_with_workers_killed_never_wedge_the_node(ray):
    """Parents that each get their children, on 2 CPUs, while workers are killed every
    100 ms: a parent's death stops the workers running its children, and any other caller's
    lease sharing those processes; the node once kept those CPUs held for ever (no worker
    left, 0 CPUs free, every request waiting)."""

    @ray.remote(max_retries=1)
    def child(i):
        time.sleep(0.005)
        return i

    @ray.remote(max_retries=1)
    def parent(i):
        return sum(ray.get([child.remote(i * 5 + k) for k in range(5)], timeout=T))

    stop = threading.Event()
    killed: list[int] = []

    def killer() -> None:
        while not stop.wait(0.1) and len(killed) < 15:
            with contextlib.suppress(AssertionError, psutil.Error, ProcessLookupError):
                live = _worker_pids() - set(killed)
                if live:
                    pid = max(live)
                    _kill_worker(pid)
                    killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    refs = [parent.remote(i) for i in range(100)]
    outcomes = []
    try:
        for i, ref in enumerate(refs):
            try:
                outcomes.append(ray.get(ref, timeout=T) == sum(range(i * 5, i * 5 + 5)))
            except ray.exceptions.WorkerCrashedError:
                outcomes.append(None)  # it ran out of retries: an error, not a hang
            except ray.exceptions.RayTaskError as e:  # a child's crash, raised by its parent
                assert isinstance(e, ray.exceptions.WorkerCrashedError), e
                outcomes.append(None)
    finally:
        stop.set()
        thread.join(T)
    assert len(killed) >= 5, killed
    assert all(o is not False for o in outcomes)

    # The node takes new work, and every CPU comes back.
    assert ray.get(child.remote(7), timeout=T) == 7
    wait_until(free_cpus, T, "both CPUs back", until=lambda n: n == 2)
