"""The node's shared-memory object store: one file per object under a session folder.

A sealed object is a file named by the object's hex id; writers fill a temporary name and
rename it, so a reader that can open the name sees a whole object. Readers map the file
read-only and hand its buffers to pickle (protocol 5), so numpy arrays come back as read-only
views of the shared pages: no copy, whatever the size. Spilled objects move to a folder on disk
under the same name; readers look there next, so a spilled object is read back transparently.

Room. The store's files in shared memory (objects, pooled files, files being written) never
take more than its capacity: a small file of the folder, ``usage``, holds the capacity and the
bytes taken, and every writer reserves room there for a new file itself (under a lock on that
file), so a put asks the node only when the store is full. The node then makes room by
deleting pooled files and spilling the oldest objects that no process maps, and the writer
reserves it; an object it cannot make room for (larger than the store, or everything is
mapped), or that ``/dev/shm`` itself has no space for, is written to the spill folder. A file
in shared memory is made, resized or deleted under that lock, together with the change of the
count; so the node can recount the files (``recount``), and a count a process left wrong
(killed between the two) is repaired.

Mapped objects. A reader holds a shared ``flock`` on an object's file for as long as its mapping
lives (the mapping keeps a duplicate of the descriptor, and with it the lock). The node spills
or recycles only a file it can lock exclusively, so a mapped object is never copied to disk or
overwritten under its readers.

Reuse. Freed files go to a small pool instead of being deleted when there is room: the next
large write renames one into place and overwrites pages the kernel has already allocated. A
writer keeps its mappings of the pooled files it wrote into (a few), so writing into one of them
again is a plain memory copy: no page faults, no page allocation. A kept mapping of a file that
was deleted since is dropped at the next ``tidy``, so it never holds memory the store gave back.

File layout: ``b"EMB1"``, buffer count (u32), metadata length (u64), each buffer's length (u64),
then the metadata and the buffers, each buffer starting on a 64-byte boundary.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import shutil
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

_MAGIC = b"EMB1"
POOL = "pool"
USAGE = "usage"
_HEAD = struct.Struct("<4sIQ")
_ALIGN = 64
_USAGE = struct.Struct("<QQ")  # capacity, bytes taken
_USED = struct.Struct("<Q")  # (the second of those)
_KEPT_MAPPINGS = 4  # pooled files a writer keeps mapped
# Copies into a mapping hold the GIL: a slice at a time lets other threads run in between.
_COPY_SLICE = 16 << 20
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


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


class Usage:
    """The store's capacity and the bytes its files take in shared memory, in a 16-byte file
    that every process of the node maps; changed under an exclusive ``flock`` of that file (and
    a thread lock, since threads of one process share the file's lock)."""

    def __init__(self, path: str, capacity: int | None = None) -> None:
        """Open the node's counter, or create it (the node does) given ``capacity``."""
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if capacity is not None else 0)
        self._fd = os.open(path, flags, 0o600)
        if capacity is not None:
            os.pwrite(self._fd, _USAGE.pack(capacity, 0), 0)
        self._map = mmap.mmap(self._fd, _USAGE.size)
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return int(_USAGE.unpack_from(self._map)[0])

    @property
    def used(self) -> int:
        return int(_USAGE.unpack_from(self._map)[1])

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the counter: no other thread or process changes it, or the store's files in
        shared memory, meanwhile."""
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def set_used(self, n: int) -> None:
        """Holding the counter (``locked``): the store's files take ``n`` bytes now."""
        _USED.pack_into(self._map, 8, max(0, n))


@dataclass
class _Kept:
    """A writer's read-write mapping of a store file, kept to write into it again."""

    fd: int
    map: mmap.mmap

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


@dataclass
class Claim:
    """A new file for an object, counted in the store's usage; seal it by renaming ``tmp`` to
    ``final`` (in shared memory, or in the spill folder when ``in_shm`` is False)."""

    tmp: str
    final: str
    fd: int
    size: int
    in_shm: bool
    kept: _Kept | None = None


class StoreFiles:
    """Reading and writing object files; any process on the node may use one of these."""

    def __init__(
        self, shm_dir: str, spill_dir: str, make_room: Callable[[int], bool] | None = None
    ) -> None:
        self.shm_dir = shm_dir
        self.spill_dir = spill_dir
        # Asks the node to make room for a new file of so many bytes when the store is full
        # (the node's own store calls its method directly); False: write it to disk.
        self.make_room = make_room
        self._usage: Usage | None = None
        self._lock = threading.Lock()
        self._kept: OrderedDict[int, _Kept] = OrderedDict()  # by inode, least recent first
        self._drift = 0  # how far the count was off the files at the last ``recount``

    def create_usage(self, capacity: int) -> None:
        """The node sets the store's capacity up before any process writes."""
        self._usage = Usage(os.path.join(self.shm_dir, USAGE), capacity)

    @property
    def usage(self) -> Usage:
        with self._lock:
            if self._usage is None:
                self._usage = Usage(os.path.join(self.shm_dir, USAGE))
            return self._usage

    def path(self, object_id: bytes) -> str:
        return os.path.join(self.shm_dir, object_id.hex())

    def spill_path(self, object_id: bytes) -> str:
        return os.path.join(self.spill_dir, object_id.hex())

    # ------------------------------------------------------------------ writing

    def write(self, object_id: bytes, meta: bytes, buffers: Sequence[memoryview]) -> int:
        """Write and seal an object; returns its size in bytes."""
        header, offsets, total = layout(len(meta), [b.nbytes for b in buffers])
        pieces: list[tuple[bytes | memoryview, int]] = [
            (header + meta, 0),
            *zip(buffers, offsets, strict=True),
        ]
        return self._store(object_id, total, f".{os.getpid()}.tmp", pieces, keep_mapped=True)

    def write_file(self, object_id: bytes, data: bytes) -> None:
        """Store an object given as the bytes of its file (from a driver in client mode)."""
        self._store(object_id, len(data), ".put", [(data, 0)])

    def _store(
        self,
        object_id: bytes,
        size: int,
        suffix: str,
        pieces: Sequence[tuple[bytes | memoryview, int]],
        keep_mapped: bool = False,
    ) -> int:
        claim = self.claim(object_id, size, suffix, keep_mapped)
        try:
            return self._fill(claim, pieces)
        except OSError as e:
            if e.errno != errno.ENOSPC or not claim.in_shm:
                raise
        # /dev/shm is full whatever the count says (another tenant of a small container's
        # /dev/shm, or deleted pooled files that a writer still maps for a moment): to disk.
        return self._fill(self._disk_file(object_id, size, suffix), pieces)

    def claim(self, object_id: bytes, size: int, suffix: str, keep_mapped: bool = False) -> Claim:
        """A new file of ``size`` bytes for an object: a pooled file of about that size (its
        pages are allocated already; with ``keep_mapped``, mapped here and kept so), else a new
        one if the store has room or the node makes some, else a file in the spill folder."""
        final = self.path(object_id)
        if size <= self.usage.capacity:
            claim = self._take_pooled(size, final, final + suffix, keep_mapped)
            if claim is None:
                claim = self._new_file(final, final + suffix, size)
            if claim is None and self.make_room is not None and self.make_room(size):
                # (another writer may take that room first: then this object goes to disk)
                claim = self._new_file(final, final + suffix, size)
            if claim is not None:
                return claim
        return self._disk_file(object_id, size, suffix)

    def _new_file(self, final: str, tmp: str, size: int) -> Claim | None:
        """A new file in shared memory, counted, if the store has room for it (and /dev/shm
        the space); the count and the file come together, under the counter's lock."""
        usage = self.usage
        with usage.locked():
            if usage.used + size > usage.capacity:
                return None
            try:
                fd = _create(tmp, size)
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    return None
                raise
            usage.set_used(usage.used + size)
        return Claim(tmp, final, fd, size, True)

    def _disk_file(self, object_id: bytes, size: int, suffix: str) -> Claim:
        final = self.spill_path(object_id)
        return Claim(final + suffix, final, _create(final + suffix, size), size, False)

    def _take_pooled(self, size: int, final: str, tmp: str, keep_mapped: bool) -> Claim | None:
        """Rename a pooled file of ``size`` to 2 × ``size`` bytes to ``tmp``, preferring one this
        process keeps mapped; None if none fits."""
        candidates = sorted(
            (inode not in self._kept, pooled, inode, path)
            for pooled, inode, path in self._pooled()
            if size <= pooled <= 2 * size
        )
        usage = self.usage
        for _, pooled, inode, path in candidates:
            try:
                os.rename(path, tmp)
            except FileNotFoundError:
                continue  # another writer took it first
            kept = self._take_kept(inode) if keep_mapped else None
            claim = Claim(tmp, final, -1, pooled, True, kept)
            try:
                claim.fd = kept.fd if kept is not None else os.open(tmp, os.O_RDWR)
                if size != pooled:
                    with usage.locked():
                        os.ftruncate(claim.fd, size)
                        usage.set_used(usage.used - (pooled - size))
                    claim.size = size
                if keep_mapped and kept is None:
                    # Faulting the pages in with the mapping costs about what writing them
                    # through the file would; every later write into this file is a copy.
                    m = mmap.mmap(claim.fd, size, flags=mmap.MAP_SHARED | _POPULATE)
                    claim.kept = _Kept(claim.fd, m)
            except BaseException:
                self.abandon(claim)
                raise
            return claim
        return None

    def _take_kept(self, inode: int) -> _Kept | None:
        with self._lock:
            kept = self._kept.pop(inode, None)
        if kept is not None and os.fstat(kept.fd).st_nlink == 0:  # (a reused inode number)
            kept.close()
            return None
        return kept

    def _fill(self, claim: Claim, pieces: Sequence[tuple[bytes | memoryview, int]]) -> int:
        """Write ``pieces`` (data, offset) into a claimed file and seal it; returns the size
        of the object's file."""
        try:
            for data, offset in pieces:
                if claim.kept is not None:
                    _copy_into(claim.kept.map, data, offset)
                else:
                    _write_all(claim.fd, data, offset)
            size = self.seal(claim)
        except BaseException:
            self.abandon(claim)
            raise
        if claim.fd < 0:  # (abandoned: the object was here already)
            return size
        if claim.kept is None:
            os.close(claim.fd)
            return size
        evicted = []
        with self._lock:
            self._kept[os.fstat(claim.fd).st_ino] = claim.kept
            while len(self._kept) > _KEPT_MAPPINGS:
                evicted.append(self._kept.popitem(last=False)[1])
        for kept in evicted:
            kept.close()
        return size

    def seal(self, claim: Claim) -> int:
        """Rename a written file to its object's name, unless that file is there already (a
        task that runs again writes the same return ids, and a rebuilt object may land where
        a copy was pulled): objects do not change, so the file there stays (replacing it would
        lose its count) and this one is abandoned. Returns the size of the object's file. (A
        copy of a spilled object may come to be in shared memory too: the node frees both.)"""
        if os.access(claim.final, os.F_OK):  # (cheaper than a stat that fails, the usual case)
            with contextlib.suppress(FileNotFoundError):
                size = os.stat(claim.final).st_size
                self.abandon(claim)
                return size
        os.rename(claim.tmp, claim.final)
        return claim.size

    def abandon(self, claim: Claim) -> None:
        """Give a claimed file up unsealed (a failed write or transfer): delete it and its
        count."""
        if claim.kept is not None:
            claim.kept.close()
            claim.kept = None
        elif claim.fd >= 0:
            os.close(claim.fd)
        claim.fd = -1
        if not claim.in_shm:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(claim.tmp)
            return
        usage = self.usage
        with usage.locked():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(claim.tmp)
            usage.set_used(usage.used - claim.size)

    def tidy(self) -> None:
        """Drop the kept mappings of files deleted since (spilled, or pooled files given back),
        so that this process does not hold memory the store has let go."""
        if not self._kept:
            return
        with self._lock:
            gone = [(i, k) for i, k in self._kept.items() if os.fstat(k.fd).st_nlink == 0]
            for inode, _ in gone:
                del self._kept[inode]
        for _, kept in gone:
            kept.close()

    # ------------------------------------------------------------------ reading

    def read(
        self, object_id: bytes, release: Callable[[], None] | None = None
    ) -> tuple[memoryview, list[memoryview]] | None:
        """Map a sealed object; None if it is not (or no longer) here. ``release`` is called
        when no view of the mapping is left."""
        fd = self.open_sealed(object_id)
        if fd is None:
            return None
        try:
            size = os.fstat(fd).st_size
            mapped = _Mapping(fd, size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)  # the mapping keeps a duplicate of it, and with it the lock
        mapped.release = release
        return parse(memoryview(mapped))

    def open_sealed(self, object_id: bytes) -> int | None:
        """A read-only descriptor of a sealed object's file (in memory or spilled), holding a
        shared lock on it, or None: while it is open the node neither spills nor recycles it."""
        for path in (self.path(object_id), self.spill_path(object_id)):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits while the node moves it
            with contextlib.suppress(FileNotFoundError):
                if os.path.samestat(os.fstat(fd), os.stat(path)):
                    return fd
            os.close(fd)  # moved meanwhile (spilled: it is in the spill folder now)
        return None

    def exists(self, object_id: bytes) -> bool:
        return os.path.exists(self.path(object_id)) or os.path.exists(self.spill_path(object_id))

    # ------------------------------------------------------------------ the node's part

    def _pooled(self) -> list[tuple[int, int, str]]:
        """(size, inode, path) of the freed files kept for reuse, largest first. A pooled file
        is named ``<size>-<inode>``: no two files have one name."""
        pool = os.path.join(self.shm_dir, POOL)
        try:
            names = os.listdir(pool)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            size, inode = name.split("-")
            found.append((int(size), int(inode), os.path.join(pool, name)))
        return sorted(found, reverse=True)

    def pooled_bytes(self) -> int:
        return sum(n for n, _, _ in self._pooled())

    def _unlink_counted(self, path: str) -> None:
        """Delete a file in shared memory, and its count."""
        usage = self.usage
        with usage.locked(), contextlib.suppress(FileNotFoundError):
            size = os.stat(path).st_size
            os.unlink(path)
            usage.set_used(usage.used - size)

    def recycle(self, object_id: bytes) -> None:
        """The node frees an object: its file goes to the pool (see ``pool``), or is deleted (a
        freed object still mapped somewhere stays readable to its readers)."""
        if not self.pool(object_id):
            self.delete(object_id)

    def pool(self, object_id: bytes, max_files: int = 4) -> bool:
        """Keep a freed object's file for reuse while the pool has room (at most half the store),
        else delete it; False, doing nothing, if it is not here or some process maps it. An
        owner does this itself for an object no other process knows of."""
        path = self.path(object_id)
        fd = _lock_exclusive(path)
        if fd is None:
            return False
        try:
            st = os.fstat(fd)
            pooled = self._pooled()
            room = self.usage.capacity // 2 - sum(n for n, _, _ in pooled)
            if len(pooled) < max_files and st.st_size <= room:
                # (gone meanwhile: the node deleted it as this owner locked it)
                with contextlib.suppress(FileNotFoundError):
                    os.rename(path, os.path.join(self.shm_dir, POOL, f"{st.st_size}-{st.st_ino}"))
            else:
                self._unlink_counted(path)
        finally:
            os.close(fd)
        return True

    def trim_pool(self, max_bytes: int, idle_seconds: float | None = None) -> None:
        """Delete pooled files, largest first, until they hold at most ``max_bytes``; and,
        given ``idle_seconds``, every file pooled for longer than that (idle memory goes
        back to the system)."""
        pooled = self._pooled()
        held = sum(n for n, _, _ in pooled)
        now = time.time()
        for size, _, path in pooled:
            with contextlib.suppress(FileNotFoundError):  # a writer may take one meanwhile
                if held <= max_bytes and (
                    idle_seconds is None or now - os.stat(path).st_ctime <= idle_seconds
                ):
                    continue
                self._unlink_counted(path)
                held -= size

    def delete(self, object_id: bytes) -> None:
        self._unlink_counted(self.path(object_id))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.spill_path(object_id))

    def lock(self, object_id: bytes) -> int | None:
        """A descriptor of an object's file in shared memory holding an exclusive lock on it
        (for ``spill``), or None if it is not there or some process maps it."""
        return _lock_exclusive(self.path(object_id))

    def spill(self, object_id: bytes, fd: int | None = None) -> bool:
        """Move an object from shared memory to disk, unless a process maps it (or the disk
        is full); readers keep finding it. ``fd``: from ``lock``; closed here."""
        if fd is None:
            fd = self.lock(object_id)
            if fd is None:
                return False
        src = self.path(object_id)
        dst = self.spill_path(object_id)
        usage = self.usage
        try:
            size = os.fstat(fd).st_size
            try:
                shutil.copyfile(src, f"{dst}.tmp")
            except OSError:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{dst}.tmp")
                return False
            with usage.locked():
                os.rename(f"{dst}.tmp", dst)
                os.unlink(src)
                usage.set_used(usage.used - size)
        finally:
            os.close(fd)
        return True

    def discard_unsealed(self, pid: int) -> None:
        """Delete the files a process that ended was writing (and their count)."""
        for folder in (self.shm_dir, self.spill_dir):
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(folder):
                    if not name.endswith(f".{pid}.tmp"):
                        continue
                    path = os.path.join(folder, name)
                    if folder == self.shm_dir:
                        self._unlink_counted(path)
                    else:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(path)

    def recount(self) -> None:
        """Repair the count from what the store's files in shared memory take. Each change to
        them goes with its change of the count, under the count's lock; but a process killed
        between the two (or an interrupt there) leaves the count wrong, and a count too high
        never goes back down by itself, sending large objects to disk for good. A file that
        is renamed meanwhile may be missed by one look at the folder: the count is set only
        when it differs from the files by the same amount twice in a row."""
        usage = self.usage
        drift = 0
        if self._files_bytes() != usage.used:  # (looked at without the lock first: no wait)
            with usage.locked():
                drift = usage.used - self._files_bytes()
                if drift == self._drift:
                    usage.set_used(usage.used - drift)
                    drift = 0
        self._drift = drift

    def _files_bytes(self) -> int:
        sizes = {}  # by inode: (a file may be seen twice while it is renamed)
        for folder in (self.shm_dir, os.path.join(self.shm_dir, POOL)):
            with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name == USAGE or not entry.is_file(follow_symlinks=False):
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        sizes[entry.inode()] = entry.stat(follow_symlinks=False).st_size
        return sum(sizes.values())


def _create(path: str, size: int) -> int:
    """A new file of ``size`` bytes (none of its pages allocated yet), open for writing."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return fd


def _lock_exclusive(path: str) -> int | None:
    """A descriptor of ``path`` holding an exclusive lock, or None if the file is not there or
    some process holds it (maps it, or sends it to another node)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _copy_into(mapping: mmap.mmap, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data).cast("B")
    for start in range(0, len(view), _COPY_SLICE):
        piece = view[start : start + _COPY_SLICE]
        mapping[offset + start : offset + start + len(piece)] = piece


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        offset += n
        view = view[n:]
