"""The shared-memory object store: freeing, spilling, borrowing and clear warnings."""

from __future__ import annotations

import errno
import os
import threading
import time

import numpy as np
import pytest

from tests._helpers import free_cpus, session_shm_dir, shm_bytes, wait_until

pytestmark = pytest.mark.ember_only

MB = 1024 * 1024
T = 30
# A short grace period before the node frees a shared object nobody refers to (1 s by
# default), for the tests that check that a ref still held keeps its object past it.
GRACE = 0.05


def test_put_and_drop_loop_does_not_grow_memory(ray):
    data = np.ones(50 * MB // 8)
    shm_dir = session_shm_dir()
    before = shm_bytes(shm_dir)
    peak = 0
    for _ in range(60):  # 3 GB written in all
        ref = ray.put(data)
        assert ray.get(ref, timeout=T)[0] == 1.0
        del ref
        peak = max(peak, shm_bytes(shm_dir) - before)
    assert peak < 400 * MB, f"shared memory grew by {peak / MB:.0f} MB"


def _folders() -> tuple[str, str]:
    """The store's shared-memory folder and spill folder of the node init() started."""
    from ember._api import session

    return session._node.shm_dir, session._node.spill_dir


def _shm_bytes(shm_dir: str) -> int:
    """What the store's files take in shared memory: objects, pooled files, files being
    written (not the 16-byte usage counter)."""
    total = 0
    for folder in (shm_dir, os.path.join(shm_dir, "pool")):
        with os.scandir(folder) as entries:
            total += sum(e.stat().st_size for e in entries if e.is_file() and e.name != "usage")
    return total


def _where(ref) -> str:
    shm_dir, spill_dir = _folders()
    here = [d for d in (shm_dir, spill_dir) if os.path.exists(os.path.join(d, ref.hex()))]
    assert len(here) == 1, f"{ref.hex()} is in {here}"
    return "shm" if here[0] == shm_dir else "disk"


def test_objects_spill_to_disk_and_read_back(start_ember):
    ray = start_ember(num_cpus=2, object_store_memory=120 * MB)
    arrays = [np.full(50 * MB // 8, i, dtype=np.float64) for i in range(5)]
    refs = [ray.put(a) for a in arrays]
    assert _shm_bytes(_folders()[0]) <= 120 * MB
    assert [_where(r) for r in refs] == ["disk"] * 3 + ["shm"] * 2  # the oldest went
    for i, ref in enumerate(refs):
        value = ray.get(ref, timeout=T)
        assert value[0] == i and value[-1] == i and value.shape == arrays[i].shape


def test_a_put_larger_than_the_store_is_written_to_disk(start_ember):
    ray = start_ember(num_cpus=1, object_store_memory=8 * MB)
    data = np.arange(20 * MB // 8, dtype=np.float64)
    ref = ray.put(data)
    assert _where(ref) == "disk"
    assert _shm_bytes(_folders()[0]) == 0
    np.testing.assert_array_equal(ray.get(ref, timeout=T), data)

    @ray.remote
    def make(n):
        return np.arange(n, dtype=np.float64)

    returned = make.remote(20 * MB // 8)  # written straight to disk by the worker as well
    np.testing.assert_array_equal(ray.get(returned, timeout=T), data)
    assert _where(returned) == "disk"


def test_mapped_objects_are_never_spilled(start_ember):
    """Objects a live view maps stay in shared memory (spilling them would leave their memory
    held by the views and copy them to disk too); unmapped ones are spilled, and once all are
    mapped, new objects go to disk."""
    ray = start_ember(num_cpus=1, object_store_memory=16 * MB)
    n = 6 * MB // 8
    a, b = ray.put(np.full(n, 1.0)), ray.put(np.full(n, 2.0))
    view_a = ray.get(a, timeout=T)  # maps a
    c = ray.put(np.full(n, 3.0))  # no room: b, not the older a, makes room
    assert (_where(a), _where(b), _where(c)) == ("shm", "disk", "shm")
    view_c = ray.get(c, timeout=T)
    d = ray.put(np.full(n, 4.0))  # a and c are mapped: nothing can be spilled
    assert (_where(a), _where(c), _where(d)) == ("shm", "shm", "disk")
    assert _shm_bytes(_folders()[0]) <= 16 * MB
    assert view_a[0] == 1.0 and view_c[-1] == 3.0
    assert [ray.get(r, timeout=T)[-1] for r in (a, b, c, d)] == [1.0, 2.0, 3.0, 4.0]
    del view_a
    e = ray.put(np.full(n, 5.0))  # a is no longer mapped: it goes now
    assert (_where(a), _where(e)) == ("disk", "shm")


def test_shared_memory_never_exceeds_the_capacity(start_ember):
    """Puts and task results of many sizes, some kept mapped, some dropped: after each one the
    store's folder holds at most its capacity, and every value reads back right."""
    capacity = 24 * MB
    ray = start_ember(num_cpus=2, object_store_memory=capacity)
    shm_dir = _folders()[0]

    @ray.remote
    def make(n, value):
        return np.full(n, value)

    rng = np.random.default_rng(1)
    kept, views, peak = [], [], 0
    for i in range(40):
        n = int(rng.integers(200_000, 1_500_000))  # 1.6 to 12 MB
        ref = ray.put(np.full(n, float(i))) if i % 2 else make.remote(n, float(i))
        value = ray.get(ref, timeout=T)
        assert value[0] == value[-1] == float(i) and value.size == n
        if i % 3 == 0:
            views.append(value)  # stays mapped
        if i % 4 != 1:
            kept.append((ref, float(i)))
        del value
        peak = max(peak, _shm_bytes(shm_dir))
    assert peak <= capacity, f"the store took {peak / MB:.1f} MB of shared memory"
    assert all(ray.get(ref, timeout=T)[-1] == v for ref, v in kept)
    assert all(v[0] == v[-1] for v in views)


def test_a_put_reuses_the_file_of_an_object_just_dropped(ray):
    """Memory that is already allocated (and mapped here) is several times faster to fill than
    new memory: the owner of an object nobody else saw pools its file as soon as it drops it,
    so the next put of about that size writes into it."""
    shm_dir = _folders()[0]
    data = np.ones(20 * MB // 8)
    inodes = []
    for _ in range(3):
        ref = ray.put(data)
        inodes.append(os.stat(os.path.join(shm_dir, ref.hex())).st_ino)
        del ref
    assert inodes[0] == inodes[1] == inodes[2]


def test_large_task_result_is_zero_copy_and_read_only(ray):
    @ray.remote
    def make():
        return np.arange(2 * MB, dtype=np.int64)

    value = ray.get(make.remote(), timeout=T)
    assert value.flags.writeable is False
    assert value[-1] == 2 * MB - 1


def test_borrowed_ref_outlives_the_owners_handle(start_ember):
    """An actor keeps a ref it received inside a list after the driver dropped its own."""
    ray = start_ember(num_cpus=2, _system_config={"ref_grace_s": GRACE})

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
    time.sleep(5 * GRACE)  # longer than the node's grace period for shared objects
    assert ray.get(keeper.read.remote(), timeout=T) == 1 * MB // 8 + 41


def test_refs_returned_inside_a_value_stay_alive(start_ember):
    ray = start_ember(num_cpus=2, _system_config={"ref_grace_s": GRACE})

    @ray.remote
    def leaf(i):
        return np.full(200_000, i)

    @ray.remote
    def parent():
        return [leaf.remote(i) for i in range(3)]

    inner = ray.get(parent.remote(), timeout=T)
    time.sleep(5 * GRACE)  # the parent's worker dropped its refs long ago
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
    err = ""

    def stderr() -> str:
        nonlocal err
        err += capfd.readouterr().err
        return err

    wait_until(stderr, 10, "the warning", until=lambda text: "needs_gpu" in text)
    assert "GPU" in err, err


def test_named_actor_lives_while_another_process_holds_it(start_ember):
    ray = start_ember(num_cpus=2, _system_config={"ref_grace_s": GRACE})

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
    time.sleep(5 * GRACE)  # longer than the node's grace period
    assert ray.get(holder.call.remote(), timeout=T) == "pong"
    del holder  # now nobody holds "kept": it goes, and gives its CPU back
    wait_until(free_cpus, 10, "the unreferenced named actor to end", until=lambda n: n >= 2)


# --------------------------------------------------------------- the store's count of memory


def _runtime():
    from ember._runtime import state

    return state.current()


def test_a_writer_that_dies_waiting_for_room_leaves_no_count(start_ember):
    """A writer that asked the node for room is killed before it writes (cancelled, out of
    memory): nothing stays counted for it, or large puts would go to disk for good."""
    ray = start_ember(num_cpus=1, object_store_memory=32 * MB)
    store = _runtime().store

    @ray.remote(max_retries=0)
    def ask_for_room_and_die(size):
        from ember._runtime import state

        state.current().objects.make_room(size)  # answered: the node made room...
        os._exit(1)  # ...and the writer is gone before it took it

    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(ask_for_room_and_die.remote(16 * MB), timeout=T)
    assert store.usage.used == _shm_bytes(_folders()[0]) == 0
    ref = ray.put(np.ones(24 * MB // 8))  # it all fits in shared memory still
    assert _where(ref) == "shm"


def test_a_count_left_wrong_is_repaired_by_the_node(ray):
    """However the count went wrong (a process killed between counting a file and making
    it), the node recounts the store's files and repairs it."""
    store = _runtime().store
    ref = ray.put(np.ones(MB))
    with store.usage.locked():
        store.usage.set_used(store.usage.used + 100 * MB)  # counted; the file never made
    wait_until(lambda: store.usage.used == _shm_bytes(_folders()[0]), T, "the node to recount")
    assert store.usage.used >= MB
    del ref


def test_a_task_that_stored_its_result_and_died_runs_again_counted_once(ray, tmp_path):
    """The worker died after storing the task's result and telling the node, before the
    result reached the caller: the task runs again and writes the same return id. The file
    there stays, counted once, and held once by its owner, so it is freed once dropped."""
    from ember._protocol import ids
    from ember._protocol import messages as m

    first_run = tmp_path / "first"
    owner = _runtime().client_id

    @ray.remote(max_retries=1)
    def make(first_run, owner):
        from ember._runtime import serialization, state

        value = np.full(MB, 7.0)
        if not os.path.exists(first_run):
            open(first_run, "w").close()
            client = state.current()
            task_id = bytes.fromhex(ray.get_runtime_context().get_task_id())
            oid = ids.return_object_id(task_id, 1)
            ser = serialization.serialize(value)
            size = client.store.write(oid, ser.meta, ser.buffers)
            client.node.send(
                m.ObjectCreated(object_id=oid, size=size, owner_id=owner, contained=[])
            )
            client.cluster_info()  # (the node has taken the notice in)
            os._exit(1)
        return value

    @ray.remote
    def total(refs):
        return float(ray.get(refs[0], timeout=T).sum())

    ref = make.remote(str(first_run), owner)
    assert ray.get(total.remote([ref]), timeout=T) == 7.0 * MB  # shared with another process
    shm_dir = _folders()[0]
    path = os.path.join(shm_dir, ref.hex())
    assert os.path.exists(path)
    del ref
    wait_until(lambda: not os.path.exists(path), T, "the object to be freed")
    assert _runtime().store.usage.used == _shm_bytes(shm_dir)


def test_nothing_is_spilled_for_a_put_it_would_not_make_room_for(start_ember):
    """Spilling every object nobody maps would not make room for the put: none is copied to
    disk for nothing; the new object goes there itself."""
    ray = start_ember(num_cpus=1, object_store_memory=16 * MB)
    a = ray.put(np.full(5 * MB // 8, 1.0))
    view_a = ray.get(a, timeout=T)  # mapped: stays
    b = ray.put(np.full(5 * MB // 8, 2.0))
    c = ray.put(np.full(12 * MB // 8, 3.0))  # with b gone, a and c would not fit either
    assert (_where(a), _where(b), _where(c)) == ("shm", "shm", "disk")
    assert view_a[0] == 1.0 and ray.get(c, timeout=T)[-1] == 3.0


def test_dropped_files_are_pooled_outside_the_client_lock(ray, monkeypatch):
    """Deleting a large file takes a while: the owner pools (or deletes) the files of the
    objects it dropped with its lock free, so other threads (and the reactor) go on; and a
    failure there (out of descriptors) does not fail the put or submit that came next."""
    client = _runtime()
    lock_free = []

    def take_lock() -> None:
        lock_free.append(client.lock.acquire(blocking=False))
        if lock_free[-1]:
            client.lock.release()

    def pool(oid):
        taker = threading.Thread(target=take_lock)
        taker.start()
        taker.join()
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(client.store, "pool", pool)
    shm_dir = _folders()[0]
    ref = ray.put(np.ones(MB))
    path = os.path.join(shm_dir, ref.hex())
    del ref
    again = ray.put(np.ones(MB))  # drops the first: its file is pooled now
    assert lock_free and all(lock_free)
    wait_until(lambda: not os.path.exists(path), T, "the node to free the first")
    assert ray.get(again, timeout=T)[0] == 1.0


def test_the_store_use_reported_is_what_limits_the_store(ray):
    """``object_store_used`` is the count that limits the store: objects, and pooled files."""
    shm_dir = _folders()[0]
    keep = ray.put(np.ones(2 * MB))
    ref = ray.put(np.ones(MB))
    path = os.path.join(shm_dir, ref.hex())
    del ref
    wait_until(lambda: not os.path.exists(path), T, "the dropped object's file to be pooled")
    assert _runtime().cluster_info()["object_store_used"] == _shm_bytes(shm_dir) > 16 * MB
    del keep
