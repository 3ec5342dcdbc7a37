"""How much memory this machine (or this process's cgroup) has and uses, read from Linux's
``/proc`` and ``/sys/fs/cgroup``: one reader for the node's memory monitor and for the
``memory`` resource a node starts with, so that both count alike.

The figure that governs is the machine's (its total less what the kernel says is available,
``/proc/meminfo``), unless this process's cgroup has a memory limit below the machine's
total: then the cgroup's usage (less its reclaimable page cache) against its limit (v2, else
v1). A read costs tens of microseconds.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

from ember._core.memory_monitor import MemoryUsage

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_CGROUP_V2 = "/sys/fs/cgroup"
_CGROUP_V1 = "/sys/fs/cgroup/memory"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _stat_field(text: str | None, field: str) -> int:
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == field:
            return int(value)
    return 0


def total_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def machine_usage() -> MemoryUsage | None:
    """The machine's memory in use: the total less what is available (None off Linux)."""
    text = _read("/proc/meminfo")
    if text is None:
        return None
    fields = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields[name] = int(rest.split()[0]) * 1024
    total = fields["MemTotal"]
    return MemoryUsage(used=total - fields.get("MemAvailable", fields["MemFree"]), total=total)


def cgroup_usage() -> MemoryUsage | None:
    """This process's cgroup's memory in use against its limit, if it has a limit (v2, else
    v1); its inactive page cache is reclaimable, so it does not count."""
    limit = _read(f"{_CGROUP_V2}/memory.max")
    if limit is not None and limit.strip() != "max":
        current = _read(f"{_CGROUP_V2}/memory.current")
        if current is not None:
            stat = _read(f"{_CGROUP_V2}/memory.stat")
            used = int(current) - _stat_field(stat, "inactive_file")
            return MemoryUsage(used=max(0, used), total=int(limit))
    limit = _read(f"{_CGROUP_V1}/memory.limit_in_bytes")
    current = _read(f"{_CGROUP_V1}/memory.usage_in_bytes")
    if limit is not None and current is not None:
        stat = _read(f"{_CGROUP_V1}/memory.stat")
        used = int(current) - _stat_field(stat, "total_inactive_file")
        return MemoryUsage(used=max(0, used), total=int(limit))
    return None


def cgroup_limited(machine: MemoryUsage) -> bool:
    """Whether this process's cgroup has less memory than the machine (``machine``)."""
    group = cgroup_usage()
    return group is not None and group.total < machine.total


def usage() -> MemoryUsage | None:
    """The memory in use against the total that governs this process (None off Linux)."""
    machine = machine_usage()
    if machine is None:
        return None
    return cgroup_usage() if cgroup_limited(machine) else machine


def available_memory() -> int:
    """The memory free for new work now, as Ray counts it: the total less what is in use."""
    now = usage()
    return total_memory() if now is None else max(0, now.total - now.used)


def process_used(pid: int) -> int:
    """A process's own memory: resident less shared (the object store's mappings count as
    shared with every process, not as this one's)."""
    text = _read(f"/proc/{pid}/statm")
    if text is None:
        return 0
    fields = text.split()
    return max(0, int(fields[1]) - int(fields[2])) * _PAGE


def give_heap_back() -> None:
    """Return the memory this process freed to the system (glibc's ``malloc_trim``): glibc
    keeps large freed blocks in the process otherwise, and a node that merged 100,000 tasks'
    waiting batches of events would keep their 23 MB. Nothing elsewhere."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


BIG_QUERY_ROWS = 10_000


def after_big_answer(
    query_limit: int, call_later: Callable[[float, Callable[[], None]], None]
) -> None:
    """After answering a state query that may have held many rows (a timeline, a listing of
    all tasks), give the freed heap back once the answer has been written: otherwise the
    process keeps the answer's high-water mark (80 MB for three timelines of 100,000 tasks)
    for good. Small questions (the dashboard's polls) cost nothing."""
    if query_limit >= BIG_QUERY_ROWS:
        call_later(1.0, give_heap_back)
