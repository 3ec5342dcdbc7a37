"""The shared-memory object store: freeing, spilling, borrowing and clear warnings."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ember_only

MB = 1024 * 1024
T = 30


def _shm_used() -> int:
    return shutil.disk_usage("/dev/shm").used


def test_put_and_drop_loop_does_not_grow_memory(ray):
    data = np.ones(50 * MB // 8)
    before = _shm_used()
    peak = 0
    for _ in range(60):  # 3 GB written in all
        ref = ray.put(data)
        assert ray.get(ref, timeout=T)[0] == 1.0
        del ref
        peak = max(peak, _shm_used() - before)
    assert peak < 400 * MB, f"shared memory grew by {peak / MB:.0f} MB"


def test_objects_spill_to_disk_and_read_back(start_ember):
    ray = start_ember(num_cpus=2, object_store_memory=120 * MB)
    arrays = [np.full(50 * MB // 8, i, dtype=np.float64) for i in range(5)]
    before = _shm_used()
    refs = [ray.put(a) for a in arrays]
    # Give the node a moment to move objects out; it does so as each notice arrives.
    deadline = time.monotonic() + 10
    while _shm_used() - before > 160 * MB and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _shm_used() - before <= 160 * MB, "objects were not spilled past the capacity"
    for i, ref in enumerate(refs):
        value = ray.get(ref, timeout=T)
        assert value[0] == i and value[-1] == i and value.shape == arrays[i].shape


def test_large_task_result_is_zero_copy_and_read_only(ray):
    @ray.remote
    def make():
        return np.arange(2 * MB, dtype=np.int64)

    value = ray.get(make.remote(), timeout=T)
    assert value.flags.writeable is False
    assert value[-1] == 2 * MB - 1


def test_borrowed_ref_outlives_the_owners_handle(ray):
    """An actor keeps a ref it received inside a list after the driver dropped its own."""

    @ray.remote
    class Keeper:
        def __init__(self):
            self.refs = []

        def keep(self, refs):
            self.refs.extend(refs)
            return True

        def read(self):
            big, small = ray.get(self.refs, timeout=T)
            return float(big.sum()) + small

    keeper = Keeper.remote()
    ref = ray.put(np.ones(1 * MB // 8))
    assert ray.get(keeper.keep.remote([ref]), timeout=T)
    small = ray.put(41)
    assert ray.get(keeper.keep.remote([small]), timeout=T)
    del ref, small
    time.sleep(1.5)  # longer than the node's grace period for shared objects
    assert ray.get(keeper.read.remote(), timeout=T) == 1 * MB // 8 + 41


def test_refs_returned_inside_a_value_stay_alive(ray):
    @ray.remote
    def leaf(i):
        return np.full(200_000, i)

    @ray.remote
    def parent():
        return [leaf.remote(i) for i in range(3)]

    inner = ray.get(parent.remote(), timeout=T)
    time.sleep(1.5)  # the parent's worker dropped its refs long ago
    values = ray.get(inner, timeout=T)
    assert [int(v[0]) for v in values] == [0, 1, 2]


def test_infeasible_task_warns_and_waits(start_ember, capfd):
    ray = start_ember(num_cpus=1)

    @ray.remote(num_gpus=1)
    def needs_gpu():
        return 1

    ref = needs_gpu.remote()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(ref, timeout=0.5)
    deadline = time.monotonic() + 10
    err = ""
    while "needs_gpu" not in err and time.monotonic() < deadline:
        err += capfd.readouterr().err
        time.sleep(0.05)
    assert "needs_gpu" in err and "GPU" in err, err


def test_named_actor_lives_while_another_process_holds_it(ray):
    @ray.remote(num_cpus=1)
    class Named:
        def ping(self):
            return "pong"

    @ray.remote
    class Holder:
        def grab(self, name):
            self.handle = ray.get_actor(name)
            return True

        def call(self):
            return ray.get(self.handle.ping.remote(), timeout=T)

    handle = Named.options(name="kept").remote()
    holder = Holder.remote()
    assert ray.get(holder.grab.remote("kept"), timeout=T)
    del handle
    time.sleep(1.5)  # longer than the node's grace period
    assert ray.get(holder.call.remote(), timeout=T) == "pong"
    del holder  # now nobody holds "kept": it goes, and gives its CPU back
    deadline = time.monotonic() + 10
    while ray.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, "the unreferenced named actor is still alive"
        time.sleep(0.1)
