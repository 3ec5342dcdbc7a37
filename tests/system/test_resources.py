"""System tests: CPU, GPU, fractional and custom resources; infeasible requests.

Checked against real Ray 2.60. Things Ray does that may surprise an implementer:
- num_gpus=4 may be declared on a machine with no GPU: tasks asking for GPUs are scheduled
  against that number; get_gpu_ids() inside a 1-GPU task is a list of one id and
  CUDA_VISIBLE_DEVICES is set to exactly that id.
- An actor by default needs 1 CPU to be placed but holds 0 CPUs while alive, so more default
  actors than CPUs can exist at once; an actor created with num_cpus=N holds N CPUs until it
  dies.
- A task blocked in get() gives its CPU back while it waits, so other tasks can run.
- A request larger than the machine (infeasible) stays pending: get(timeout=...) raises
  GetTimeoutError; nothing raises at submission.
- Work that waits while actors hold every CPU it needs (and no task runs) still waits; Ember
  warns once, in the words of Ray's autoscaler ("cannot be scheduled right now ... claimed
  by actors"); a local Ray only logs it to its raylet's log.
- Tasks and actors see OMP_NUM_THREADS set to their whole CPUs (at least 1) unless the user
  set it; no other thread-count variable is set.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests._helpers import wait_until

T = 30  # upper bound for every get: a bug fails the test instead of hanging it


def test_gpu_task_sees_one_gpu(start_ember):
    ray = start_ember(num_cpus=2, num_gpus=4)
    assert ray.cluster_resources()["GPU"] == 4

    @ray.remote(num_gpus=1)
    def gpu_info():
        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    ids, visible = ray.get(gpu_info.remote(), timeout=T)
    assert len(ids) == 1
    assert str(ids[0]) in {"0", "1", "2", "3"}
    assert visible == str(ids[0])


def test_two_gpu_task_sees_two_gpus(start_ember):
    ray = start_ember(num_cpus=2, num_gpus=4)

    @ray.remote(num_gpus=2)
    def gpu_info():
        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    ids, visible = ray.get(gpu_info.remote(), timeout=T)
    assert len(ids) == 2 and len(set(ids)) == 2
    assert visible == ",".join(str(i) for i in ids)


def test_concurrent_gpu_tasks_get_distinct_ids(start_ember, barrier_cls):
    ray = start_ember(num_cpus=4, num_gpus=4)
    barrier = barrier_cls.remote()

    @ray.remote(num_gpus=1)
    def gpu_id(barrier):
        ray.get(barrier.arrive.remote(4), timeout=T)  # all four hold their GPU at once
        ids = ray.get_gpu_ids()
        return str(ids[0]), os.environ.get("CUDA_VISIBLE_DEVICES")

    results = ray.get([gpu_id.remote(barrier) for _ in range(4)], timeout=T)
    assert sorted(r[0] for r in results) == ["0", "1", "2", "3"]
    assert all(ident == visible for ident, visible in results)


def test_gpu_actor_sees_one_gpu(start_ember):
    ray = start_ember(num_cpus=2, num_gpus=2)

    @ray.remote(num_gpus=1)
    class G:
        def info(self):
            return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    a, b = G.remote(), G.remote()
    (ids_a, vis_a), (ids_b, vis_b) = ray.get([a.info.remote(), b.info.remote()], timeout=T)
    assert len(ids_a) == 1 and len(ids_b) == 1
    assert vis_a == str(ids_a[0]) and vis_b == str(ids_b[0])
    assert str(ids_a[0]) != str(ids_b[0])


def test_driver_has_no_gpu_ids(start_ember):
    ray = start_ember(num_cpus=1, num_gpus=2)
    assert ray.get_gpu_ids() == []


def test_fractional_cpus_allow_more_concurrent_tasks(ray, barrier_cls):
    barrier = barrier_cls.remote()

    @ray.remote(num_cpus=0.5)
    def half(barrier):
        return ray.get(barrier.arrive.remote(4), timeout=T)

    # Only possible if all four run at the same time on the 2 CPUs.
    assert ray.get([half.remote(barrier) for _ in range(4)], timeout=T) == [4] * 4


def test_fractional_options_on_existing_function(ray, barrier_cls):
    barrier = barrier_cls.remote()

    @ray.remote
    def meet(barrier):
        return ray.get(barrier.arrive.remote(3), timeout=T)

    quarter = meet.options(num_cpus=0.25)
    assert ray.get([quarter.remote(barrier) for _ in range(3)], timeout=T) == [3, 3, 3]


def test_custom_resource_limits_concurrency(start_ember, barrier_cls):
    ray = start_ember(num_cpus=2, resources={"slot": 1})
    tracker = barrier_cls.remote()

    @ray.remote(num_cpus=0, resources={"slot": 1})
    def exclusive(tracker):

        ray.get(tracker.enter.remote(), timeout=T)
        time.sleep(0.1)
        ray.get(tracker.leave.remote(), timeout=T)
        return True

    assert ray.get([exclusive.remote(tracker) for _ in range(4)], timeout=T) == [True] * 4
    assert ray.get(tracker.max_inside.remote(), timeout=T) == 1


def test_custom_resource_allows_its_amount(start_ember, barrier_cls):
    ray = start_ember(num_cpus=4, resources={"slot": 2})
    barrier = barrier_cls.remote()

    @ray.remote(resources={"slot": 1})
    def paired(barrier):
        ray.get(barrier.enter.remote(), timeout=T)
        ray.get(barrier.arrive.remote(2), timeout=T)
        ray.get(barrier.leave.remote(), timeout=T)
        return True

    assert ray.get([paired.remote(barrier) for _ in range(2)], timeout=T) == [True, True]
    assert ray.get(barrier.max_inside.remote(), timeout=T) == 2


def test_cpu_limit_blocks_extra_task_until_release(ray, gate):
    @ray.remote(num_cpus=1)
    def hold(gate):
        return gate.wait()  # busy, not blocked in get(): keeps its CPU

    @ray.remote(num_cpus=1)
    def third():
        return "ran"

    holders = [hold.remote(gate) for _ in range(2)]
    gate.wait_arrivals(2)
    extra = third.remote()
    ready, _ = ray.wait([extra], timeout=0.5)
    assert ready == []  # both CPUs are held
    gate.open()
    assert ray.get(extra, timeout=T) == "ran"
    assert ray.get(holders, timeout=T) == [True, True]


def test_task_blocked_in_get_releases_its_cpu(ray, blocked_task):
    @ray.remote(num_cpus=1)
    def worker():
        return "ran"

    waiters = [blocked_task.remote() for _ in range(2)]  # both CPUs, but blocked in get()
    wait_until(blocked_task.waiting, T, "the two waiting tasks to start", until=lambda n: n >= 2)
    assert ray.get(worker.remote(), timeout=T) == "ran"
    blocked_task.release()
    assert ray.get(waiters, timeout=T) == [True, True]


def test_zero_cpu_task_runs_while_cpus_busy(ray, gate):
    @ray.remote(num_cpus=1)
    def hold(gate):
        return gate.wait()

    @ray.remote(num_cpus=0)
    def free():
        return "ran"

    holders = [hold.remote(gate) for _ in range(2)]
    gate.wait_arrivals(2)
    assert ray.get(free.remote(), timeout=T) == "ran"
    gate.open()
    assert ray.get(holders, timeout=T) == [True, True]


def test_infeasible_cpu_task_stays_pending(ray):
    @ray.remote(num_cpus=3)
    def too_big():
        return "ran"

    ref = too_big.remote()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(ref, timeout=0.5)
    ready, not_ready = ray.wait([ref], timeout=0.1)
    assert ready == [] and not_ready == [ref]


def test_infeasible_custom_resource_stays_pending(ray):
    @ray.remote(resources={"nonexistent": 1})
    def needs_missing():
        return "ran"

    @ray.remote
    def fine():
        return "ok"

    ref = needs_missing.remote()
    assert ray.get(fine.remote(), timeout=T) == "ok"  # other work is not blocked
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(ref, timeout=0.5)


def test_infeasible_gpu_task_without_gpus_stays_pending(ray):
    @ray.remote(num_gpus=1)
    def needs_gpu():
        return "ran"

    ref = needs_gpu.remote()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(ref, timeout=0.5)


def test_default_actors_do_not_hold_cpus(ray):
    @ray.remote
    class A:
        def ping(self):
            return "pong"

    actors = [A.remote() for _ in range(4)]  # more than the 2 CPUs
    assert ray.get([a.ping.remote() for a in actors], timeout=T) == ["pong"] * 4

    @ray.remote
    def task():
        return "task"

    assert ray.get([task.remote() for _ in range(2)], timeout=T) == ["task", "task"]


def test_actor_with_cpus_holds_them_until_killed(ray):
    @ray.remote(num_cpus=2)
    class Big:
        def ping(self):
            return "pong"

    @ray.remote(num_cpus=1)
    def task():
        return "task"

    big = Big.remote()
    assert ray.get(big.ping.remote(), timeout=T) == "pong"
    ref = task.remote()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(ref, timeout=0.5)
    ray.kill(big)
    assert ray.get(ref, timeout=T) == "task"


# Ray 2.60 on a local instance printed nothing to the driver in 70 s: its raylet logs the
# stall to its own log, and the driver hears Ray's words only from an autoscaler.
@pytest.mark.ember_only
def test_work_behind_actors_holding_every_cpu_warns(start_ember, monkeypatch, capfd):
    monkeypatch.setenv("EMBER_STALLED_WARN_SECONDS", "0.2")
    ray = start_ember(num_cpus=1)

    @ray.remote(num_cpus=1)
    class Holder:
        def ping(self):
            return "pong"

    @ray.remote
    def task():
        return "task"

    holder = Holder.remote()
    assert ray.get(holder.ping.remote(), timeout=T) == "pong"
    ref = task.remote()
    said: list[str] = []

    def warned() -> bool:
        out, err = capfd.readouterr()
        said.append(out + err)
        return "cannot be scheduled right now" in "".join(said)

    wait_until(warned, 60, "the warning that actors hold every CPU")
    assert "claimed by actors" in "".join(said)
    ray.kill(holder)
    assert ray.get(ref, timeout=T) == "task"


def test_actor_with_custom_resource(start_ember):
    ray = start_ember(num_cpus=2, resources={"accel": 1})

    @ray.remote(num_cpus=0, resources={"accel": 1})
    class User:
        def ping(self):
            return "pong"

    first = User.remote()
    assert ray.get(first.ping.remote(), timeout=T) == "pong"
    second = User.remote()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(second.ping.remote(), timeout=0.5)  # cannot be placed while `first` lives
    ray.kill(first)
    assert ray.get(second.ping.remote(), timeout=T) == "pong"


def test_assigned_resources_in_task(start_ember):
    ray = start_ember(num_cpus=2, resources={"custom": 4})

    @ray.remote(num_cpus=0.5, resources={"custom": 2})
    def assigned():
        return ray.get_runtime_context().get_assigned_resources()

    got = ray.get(assigned.remote(), timeout=T)
    assert got.get("CPU") == 0.5
    assert got.get("custom") == 2


def _omp_threads() -> str | None:
    return os.environ.get("OMP_NUM_THREADS")


def test_omp_num_threads_follows_the_cpus_held(start_ember, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    ray = start_ember(num_cpus=2)
    omp = ray.remote(_omp_threads)

    @ray.remote
    class Holder:
        def omp(self):
            return _omp_threads()

    assert ray.get(omp.remote(), timeout=T) == "1"
    assert ray.get(omp.options(num_cpus=2).remote(), timeout=T) == "2"
    assert ray.get(omp.options(num_cpus=0.5).remote(), timeout=T) == "1"
    assert ray.get(omp.options(num_cpus=0).remote(), timeout=T) == "1"
    assert ray.get(Holder.remote().omp.remote(), timeout=T) == "1"
    assert ray.get(Holder.options(num_cpus=2).remote().omp.remote(), timeout=T) == "2"


def test_a_user_s_omp_num_threads_is_kept(start_ember, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    ray = start_ember(num_cpus=2)
    omp = ray.remote(_omp_threads)
    assert ray.get([omp.remote(), omp.options(num_cpus=2).remote()], timeout=T) == ["3", "3"]


@pytest.mark.ember_only
def test_numpy_in_a_one_cpu_task_starts_no_blas_threads(start_ember, monkeypatch):
    """Two 1-CPU tasks must not each start a BLAS thread per core of the machine."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    ray = start_ember(num_cpus=2)

    @ray.remote(num_cpus=1)
    def blas_threads():
        # Workers are forked from the node, which never loads numpy: its BLAS starts here.
        fresh = "numpy" not in sys.modules
        before = len(os.listdir("/proc/self/task"))
        import numpy as np

        a = np.ones((256, 256))
        a @ a
        return fresh, len(os.listdir("/proc/self/task")) - before

    assert ray.get(blas_threads.remote(), timeout=T) == (True, 0)
