"""Whether a process of this machine still runs: the one test for the node's watch on its
driver, a head's watch on its control store, ``ember stop`` and a compiled graph's peer."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not: it died, and waits to be reaped)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[:1] not in ([b"Z"], [b"X"], [])
    except FileNotFoundError:
        if os.path.exists("/proc/self/stat"):
            return False
    try:  # no /proc on this system
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # (another user's)
        return True
    return True
