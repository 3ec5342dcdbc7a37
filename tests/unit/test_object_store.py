"""Object files: layout, sealing by rename, zero-copy reads and spilling, on a temp folder."""

from __future__ import annotations

import os
import pickle

import numpy as np

from ember._runtime import serialization
from ember._runtime.object_store import StoreFiles


def _store(tmp_path) -> StoreFiles:
    (tmp_path / "shm").mkdir()
    (tmp_path / "spill").mkdir()
    return StoreFiles(str(tmp_path / "shm"), str(tmp_path / "spill"))


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
    assert os.listdir(store.shm_dir) == [(b"\x03" * 16).hex()]


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
    store = _store(tmp_path)
    os.mkdir(os.path.join(store.shm_dir, "pool"))
    for i, n in enumerate([1000, 5000, 300]):  # (none fits in a pooled file)
        ser = serialization.serialize(b"x" * n)
        size = store.write(bytes([i]) * 16, ser.meta, ser.buffers)
        store.recycle(bytes([i]) * 16, size, max_bytes=4000)
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
        size = store.write(bytes([i]) * 16, ser.meta, ser.buffers)
        store.recycle(bytes([i]) * 16, size, max_bytes=10_000)
    assert len(_pooled_sizes(store)) == 3
    two_smallest = sum(_pooled_sizes(store)[:2])
    store.trim_pool(max_bytes=two_smallest)  # the largest goes first
    assert sum(_pooled_sizes(store)) == two_smallest
    store.trim_pool(max_bytes=10_000, idle_seconds=3600)  # recently pooled: kept
    assert len(_pooled_sizes(store)) == 2
    store.trim_pool(max_bytes=10_000, idle_seconds=-1)  # every file counts as idle
    assert _pooled_sizes(store) == []
