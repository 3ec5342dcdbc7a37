"""Object files: layout, sealing by rename, zero-copy reads and spilling, on a temp folder."""

from __future__ import annotations

import errno
import os
import pickle

import numpy as np

from ember._runtime import serialization
from ember._runtime.object_store import store as object_store
from ember._runtime.object_store.store import StoreFiles


def _store(tmp_path, capacity: int = 1 << 30) -> StoreFiles:
    (tmp_path / "shm").mkdir()
    (tmp_path / "spill").mkdir()
    store = StoreFiles(str(tmp_path / "shm"), str(tmp_path / "spill"))
    store.create_usage(capacity)
    return store


def test_write_read_round_trip_is_zero_copy(tmp_path):
    store = _store(tmp_path)
    value = {"a": np.arange(1000, dtype=np.float32), "b": b"x" * 10, "c": [1, 2]}
    ser = serialization.serialize(value)
    size = store.write(b"\x01" * 16, ser.meta, ser.buffers)
    assert size == os.path.getsize(store.path(b"\x01" * 16))
    meta, buffers = store.read(b"\x01" * 16)
    out = pickle.loads(meta, buffers=buffers)
    assert out["b"] == value["b"] and out["c"] == [1, 2]
    np.testing.assert_array_equal(out["a"], value["a"])
    assert out["a"].flags.writeable is False  # a view of the read-only mapping


def test_buffers_are_aligned(tmp_path):
    store = _store(tmp_path)
    ser = serialization.serialize([np.ones(3), np.ones(5, dtype=np.int8), np.zeros(7)])
    store.write(b"\x02" * 16, ser.meta, ser.buffers)
    _, buffers = store.read(b"\x02" * 16)
    base = np.frombuffer(store.read(b"\x02" * 16)[1][0], dtype=np.uint8).ctypes.data
    assert len(buffers) == 3
    assert base % 64 == 0


def test_missing_object_reads_as_none_and_no_temp_files_remain(tmp_path):
    store = _store(tmp_path)
    assert store.read(b"\x03" * 16) is None
    ser = serialization.serialize(np.ones(10))
    store.write(b"\x03" * 16, ser.meta, ser.buffers)
    assert sorted(os.listdir(store.shm_dir)) == [(b"\x03" * 16).hex(), "usage"]


def test_spill_moves_to_disk_and_stays_readable(tmp_path):
    store = _store(tmp_path)
    ser = serialization.serialize(np.arange(100))
    oid = b"\x04" * 16
    store.write(oid, ser.meta, ser.buffers)
    assert store.spill(oid)
    assert not os.path.exists(store.path(oid))
    assert store.exists(oid)
    meta, buffers = store.read(oid)
    np.testing.assert_array_equal(pickle.loads(meta, buffers=buffers), np.arange(100))
    store.delete(oid)
    assert not store.exists(oid)


def test_inline_form_round_trips_with_and_without_buffers():
    for value in [42, "text", {"k": [1, 2]}, np.arange(50), (np.ones(2), b"raw")]:
        data = serialization.serialize(value).inline()
        out = serialization.loads(data)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(out, value)
        elif isinstance(value, tuple):
            np.testing.assert_array_equal(out[0], value[0])
            assert out[1] == value[1]
        else:
            assert out == value


def _pooled_sizes(store: StoreFiles) -> list[int]:
    return sorted(int(n.split("-")[0]) for n in os.listdir(os.path.join(store.shm_dir, "pool")))


def test_freed_files_are_pooled_within_bounds_and_reused(tmp_path):
    store = _store(tmp_path, capacity=8000)  # the pool holds at most half of it
    os.mkdir(os.path.join(store.shm_dir, "pool"))
    for i, n in enumerate([1000, 5000, 300]):  # (none fits in a pooled file)
        ser = serialization.serialize(b"x" * n)
        store.write(bytes([i]) * 16, ser.meta, ser.buffers)
        store.recycle(bytes([i]) * 16)
    kept = _pooled_sizes(store)
    assert len(kept) == 2 and sum(kept) <= 4000  # the second did not fit: deleted
    assert not store.exists(b"\x01" * 16) and not store.exists(b"\x00" * 16)
    # A new object of about a pooled file's size takes that file.
    ser = serialization.serialize(b"y" * 900)
    store.write(b"\x09" * 16, ser.meta, ser.buffers)
    assert len(_pooled_sizes(store)) == 1
    meta, buffers = store.read(b"\x09" * 16)
    assert pickle.loads(meta, buffers=buffers) == b"y" * 900


def test_the_pool_shrinks_to_the_room_left_and_empties_when_idle(tmp_path):
    store = _store(tmp_path)
    os.mkdir(os.path.join(store.shm_dir, "pool"))
    for i, n in enumerate([1000, 2000, 3000]):
        ser = serialization.serialize(b"x" * n)
        store.write(bytes([i]) * 16, ser.meta, ser.buffers)
        store.recycle(bytes([i]) * 16)
    assert len(_pooled_sizes(store)) == 3
    two_smallest = sum(_pooled_sizes(store)[:2])
    store.trim_pool(max_bytes=two_smallest)  # the largest goes first
    assert sum(_pooled_sizes(store)) == two_smallest
    store.trim_pool(max_bytes=10_000, idle_seconds=3600)  # recently pooled: kept
    assert len(_pooled_sizes(store)) == 2
    store.trim_pool(max_bytes=10_000, idle_seconds=-1)  # every file counts as idle
    assert _pooled_sizes(store) == []


def _put(store: StoreFiles, oid: bytes, n: int, fill: int = 1) -> int:
    ser = serialization.serialize(np.full(n, fill, dtype=np.uint8))
    return store.write(oid, ser.meta, ser.buffers)


def _get(store: StoreFiles, oid: bytes) -> np.ndarray:
    meta, buffers = store.read(oid)
    return pickle.loads(meta, buffers=buffers)


def test_usage_counts_every_file_in_shared_memory(tmp_path):
    store = _store(tmp_path)
    os.mkdir(os.path.join(store.shm_dir, "pool"))
    a = _put(store, b"\x01" * 16, 100_000)
    b = _put(store, b"\x02" * 16, 50_000)
    assert store.usage.used == a + b
    store.recycle(b"\x01" * 16)  # pooled files count too
    assert store.usage.used == a + b and store.pooled_bytes() == a
    c = _put(store, b"\x03" * 16, 60_000)  # takes the pooled file, cut to its size
    assert store.pooled_bytes() == 0 and store.usage.used == b + c
    store.spill(b"\x02" * 16)
    store.delete(b"\x03" * 16)
    assert store.usage.used == 0


def test_an_object_larger_than_the_store_is_written_to_the_spill_folder(tmp_path):
    store = _store(tmp_path, capacity=100_000)
    _put(store, b"\x01" * 16, 300_000, fill=7)
    assert not os.path.exists(store.path(b"\x01" * 16))
    assert os.path.exists(store.spill_path(b"\x01" * 16))
    assert store.usage.used == 0
    assert _get(store, b"\x01" * 16)[-1] == 7


def test_a_full_store_asks_for_room_and_else_writes_to_disk(tmp_path):
    store = _store(tmp_path, capacity=250_000)
    asked = []

    def make_room(size: int) -> bool:  # as the node does: spill (the writer takes the room)
        asked.append(size)
        return store.spill(b"\x01" * 16)

    store.make_room = make_room
    _put(store, b"\x01" * 16, 100_000)
    _put(store, b"\x02" * 16, 100_000)
    assert asked == []  # room enough: nobody was asked
    _put(store, b"\x03" * 16, 100_000)
    assert len(asked) == 1 and os.path.exists(store.path(b"\x03" * 16))
    _put(store, b"\x04" * 16, 100_000, fill=4)  # nothing left to spill: to disk
    assert len(asked) == 2 and os.path.exists(store.spill_path(b"\x04" * 16))
    assert _get(store, b"\x04" * 16)[0] == 4
    assert store.usage.used <= 250_000


def test_mapped_objects_are_neither_spilled_nor_recycled(tmp_path):
    store = _store(tmp_path)
    os.mkdir(os.path.join(store.shm_dir, "pool"))
    _put(store, b"\x01" * 16, 100_000, fill=3)
    view = _get(store, b"\x01" * 16)
    assert not store.spill(b"\x01" * 16)
    store.recycle(b"\x01" * 16)  # freed while mapped: deleted
    assert store.pooled_bytes() == 0 and store.usage.used == 0
    _put(store, b"\x02" * 16, 100_000, fill=9)
    assert view[0] == 3 and view[-1] == 3  # its memory was not reused under it
    del view
    _put(store, b"\x03" * 16, 100_000)
    assert store.spill(b"\x03" * 16)


def test_a_writer_keeps_its_pooled_files_mapped_until_they_are_deleted(tmp_path):
    store = _store(tmp_path)
    os.mkdir(os.path.join(store.shm_dir, "pool"))
    size = _put(store, b"\x01" * 16, 1_000_000)  # a new file, written through the file
    assert not store._kept
    for i in range(2, 5):  # the pooled file again and again: mapped once, then kept
        store.recycle(bytes([i - 1]) * 16)
        assert _put(store, bytes([i]) * 16, 1_000_000, fill=i) == size
        assert len(store._kept) == 1 and _get(store, bytes([i]) * 16)[-1] == i
    store.recycle(b"\x04" * 16)
    store.trim_pool(max_bytes=0)  # the pool gives its memory back...
    store.tidy()
    assert not store._kept  # ...and so does the writer's mapping


def test_unsealed_files_of_an_ended_writer_are_deleted_and_uncounted(tmp_path):
    store = _store(tmp_path)
    claim = store.claim(b"\x01" * 16, 5000, ".4242.tmp")
    os.close(claim.fd)
    assert store.usage.used == 5000
    store.discard_unsealed(4242)
    assert store.usage.used == 0 and not os.path.exists(claim.tmp)


def test_a_count_left_wrong_is_repaired_by_a_recount(tmp_path):
    """A process killed between counting a file and making it (or the reverse) leaves the
    count wrong for good, unless the node recounts the files."""
    store = _store(tmp_path)
    os.mkdir(os.path.join(store.shm_dir, "pool"))
    a = _put(store, b"\x01" * 16, 100_000)
    b = _put(store, b"\x02" * 16, 50_000)
    store.recycle(b"\x01" * 16)  # (pooled files count)
    with store.usage.locked():  # counted, then killed before its file was made
        store.usage.set_used(store.usage.used + 70_000)
    store.recount()  # (once might be a file renamed while it looked)
    assert store.usage.used == a + b + 70_000
    store.recount()
    assert store.usage.used == a + b
    with open(os.path.join(store.shm_dir, "x.4242.tmp"), "wb") as f:  # made, never counted
        f.truncate(30_000)
    store.recount()
    store.recount()
    assert store.usage.used == a + b + 30_000


def test_an_object_written_again_keeps_its_file_and_its_count(tmp_path):
    """A task that runs again (its worker died after storing its result) writes the same
    return id: the object here stays, counted once (replacing it lost its count)."""
    store = _store(tmp_path)
    os.mkdir(os.path.join(store.shm_dir, "pool"))
    oid = b"\x01" * 16
    size = _put(store, oid, 100_000, fill=1)
    assert _put(store, oid, 100_000, fill=2) == size
    assert _put(store, oid, 300_000, fill=3) == size  # (the size of the file kept)
    assert _get(store, oid)[0] == 1
    assert store.usage.used == size
    assert sorted(os.listdir(store.shm_dir)) == [oid.hex(), "pool", "usage"]


def test_an_object_goes_to_disk_when_dev_shm_is_full(tmp_path, monkeypatch):
    """/dev/shm can be full whatever the store's count says (another tenant of a small
    container's /dev/shm, say): the object is written to the spill folder instead."""
    store = _store(tmp_path)
    write_all = object_store._write_all

    def full_shm(fd: int, data, offset: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(store.shm_dir):
            raise OSError(errno.ENOSPC, "No space left on device")
        write_all(fd, data, offset)

    monkeypatch.setattr(object_store, "_write_all", full_shm)
    _put(store, b"\x01" * 16, 100_000, fill=5)
    assert os.path.exists(store.spill_path(b"\x01" * 16))
    assert _get(store, b"\x01" * 16)[-1] == 5
    assert store.usage.used == 0 and os.listdir(store.shm_dir) == ["usage"]
