"""The node's shared-memory object store: one file per object under a session folder.

A sealed object is a file named by the object's hex id; writers fill a temporary name and
rename it, so a reader that can open the name sees a whole object. Readers map the file
read-only and hand its buffers to pickle (protocol 5), so numpy arrays come back as read-only
views of the shared pages: no copy, whatever the size. Deleting the name frees the memory once
the last reader drops its view. Spilled objects move to a folder on disk under the same name;
readers look there next, so a spilled object is read back transparently.

Freed files go to a small pool instead of being deleted when there is room: the next large
write renames one into place and overwrites pages the kernel has already allocated, which is
about twice as fast as filling fresh shared memory. This is safe because a process holds an
object (like a ref) for as long as any view of its mapping is alive, so a freed file is mapped
nowhere.

File layout: ``b"EMB1"``, buffer count (u32), metadata length (u64), each buffer's length (u64),
then the metadata and the buffers, each buffer starting on a 64-byte boundary.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import struct
import time
from collections.abc import Callable, Sequence

_MAGIC = b"EMB1"
POOL = "pool"
_HEAD = struct.Struct("<4sIQ")
_ALIGN = 64


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) & ~(_ALIGN - 1)


def layout(meta_len: int, buffer_lens: Sequence[int]) -> tuple[bytes, list[int], int]:
    """The header bytes, each buffer's offset, and the total file size."""
    header = _HEAD.pack(_MAGIC, len(buffer_lens), meta_len) + struct.pack(
        f"<{len(buffer_lens)}Q", *buffer_lens
    )
    offset = len(header) + meta_len
    offsets = []
    for n in buffer_lens:
        offset = _aligned(offset)
        offsets.append(offset)
        offset += n
    return header, offsets, offset


def parse(view: memoryview) -> tuple[memoryview, list[memoryview]]:
    magic, nbufs, meta_len = _HEAD.unpack_from(view, 0)
    if magic != _MAGIC:
        raise ValueError("not an Ember object file")
    lens = struct.unpack_from(f"<{nbufs}Q", view, _HEAD.size)
    start = _HEAD.size + 8 * nbufs
    meta = view[start : start + meta_len]
    _, offsets, _ = layout(meta_len, lens)
    return meta, [view[o : o + n] for o, n in zip(offsets, lens, strict=True)]


class _Mapping(mmap.mmap):
    """A read-only mapping that calls ``release`` once the last view of it is gone."""

    release: Callable[[], None] | None = None

    def __del__(self) -> None:
        if self.release is not None:
            self.release()


class StoreFiles:
    """Reading and writing object files; any process on the node may use one of these."""

    def __init__(self, shm_dir: str, spill_dir: str) -> None:
        self.shm_dir = shm_dir
        self.spill_dir = spill_dir

    def path(self, object_id: bytes) -> str:
        return os.path.join(self.shm_dir, object_id.hex())

    def spill_path(self, object_id: bytes) -> str:
        return os.path.join(self.spill_dir, object_id.hex())

    def write(self, object_id: bytes, meta: bytes, buffers: Sequence[memoryview]) -> int:
        """Write and seal an object; returns its size in bytes."""
        header, offsets, total = layout(len(meta), [b.nbytes for b in buffers])
        final = self.path(object_id)
        tmp = f"{final}.{os.getpid()}.tmp"
        if not self.take_pooled(total, tmp):
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        else:
            fd = os.open(tmp, os.O_RDWR)
        try:
            os.ftruncate(fd, total)
            _write_all(fd, header + meta, 0)
            for buf, off in zip(buffers, offsets, strict=True):
                _write_all(fd, buf, off)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(fd)
        os.rename(tmp, final)
        return total

    def write_file(self, object_id: bytes, data: bytes) -> None:
        """Store an object given as the bytes of its file (from a driver in client mode)."""
        final = self.path(object_id)
        tmp = f"{final}.put"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data, 0)
        finally:
            os.close(fd)
        os.rename(tmp, final)

    def read(
        self, object_id: bytes, release: Callable[[], None] | None = None
    ) -> tuple[memoryview, list[memoryview]] | None:
        """Map a sealed object; None if it is not (or no longer) here. ``release`` is called
        when no view of the mapping is left."""
        for path in (self.path(object_id), self.spill_path(object_id)):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                size = os.fstat(fd).st_size
                mapped = _Mapping(fd, size, access=mmap.ACCESS_READ)
            finally:
                os.close(fd)
            mapped.release = release
            return parse(memoryview(mapped))
        return None

    def _pooled(self) -> list[tuple[int, str]]:
        """(size, path) of the freed files kept for reuse, largest first."""
        pool = os.path.join(self.shm_dir, POOL)
        try:
            names = os.listdir(pool)
        except FileNotFoundError:
            return []
        return sorted(
            ((int(name.split("-", 1)[0]), os.path.join(pool, name)) for name in names),
            reverse=True,
        )

    def recycle(self, object_id: bytes, size: int, max_bytes: int, max_files: int = 4) -> None:
        """Free an object, keeping its file for reuse when the pool has room."""
        pooled = self._pooled()
        if len(pooled) < max_files and sum(n for n, _ in pooled) + size <= max_bytes:
            kept = os.path.join(self.shm_dir, POOL, f"{size}-{object_id.hex()}")
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.path(object_id), kept)
                return
        self.delete(object_id)

    def trim_pool(self, max_bytes: int, idle_seconds: float | None = None) -> None:
        """Delete pooled files, largest first, until they hold at most ``max_bytes``; and,
        given ``idle_seconds``, every file pooled for longer than that (idle memory goes
        back to the system)."""
        pooled = self._pooled()
        held = sum(n for n, _ in pooled)
        now = time.time()
        for size, path in pooled:
            with contextlib.suppress(FileNotFoundError):  # a writer may take one meanwhile
                if held <= max_bytes and (
                    idle_seconds is None or now - os.stat(path).st_ctime <= idle_seconds
                ):
                    continue
                os.unlink(path)
            held -= size

    def take_pooled(self, size: int, dest: str) -> bool:
        """Move a pooled file of about ``size`` bytes to ``dest``; False if none fits."""
        for _, path in sorted(p for p in self._pooled() if size <= p[0] <= 2 * size):
            try:
                os.rename(path, dest)
            except FileNotFoundError:
                continue  # another writer took it first
            return True
        return False

    def open_sealed(self, object_id: bytes) -> int | None:
        """A read-only descriptor of a sealed object's file (in memory or spilled), or None."""
        for path in (self.path(object_id), self.spill_path(object_id)):
            with contextlib.suppress(FileNotFoundError):
                return os.open(path, os.O_RDONLY)
        return None

    def exists(self, object_id: bytes) -> bool:
        return os.path.exists(self.path(object_id)) or os.path.exists(self.spill_path(object_id))

    def delete(self, object_id: bytes) -> None:
        for path in (self.path(object_id), self.spill_path(object_id)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def spill(self, object_id: bytes) -> bool:
        """Move an object from shared memory to disk; readers keep finding it."""
        src = self.path(object_id)
        dst = self.spill_path(object_id)
        tmp = f"{dst}.tmp"
        try:
            shutil.copyfile(src, tmp)
        except FileNotFoundError:
            return False
        os.rename(tmp, dst)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(src)
        return True


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        offset += n
        view = view[n:]
