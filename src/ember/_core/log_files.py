"""The log folder's files as ``ember logs`` sees them: names, what may be asked for, and the
pieces of reading them in bounded chunks.

A node's log folder holds ``node.log``, ``control_store.log`` and ``dashboard.log`` (on the
head) and one ``worker-<worker id>-<pid>.log`` per worker, both of its streams in one file so
that a traceback follows the lines before it. A worker that prints for a task first writes a marker
line ``:task_id:<hex>`` to its file (not to the driver) whenever the task printing is not the
one that printed last; a task's output is then the lines after its markers (``TaskLines``).
Reads are bounded (``MAX_READ`` bytes a request): a reader continues from the offset an answer
ends at, which is also how ``--follow`` polls.
"""

from __future__ import annotations

import re

# The most bytes one read returns; a longer file is read in several.
MAX_READ = 1 << 20

TASK_MARK = ":task_id:"
_MARK_BYTES = TASK_MARK.encode()

_WORKER_RE = re.compile(r"worker-([0-9a-f]+)-([0-9]+)\.log")


def worker_log_name(worker_id: bytes, pid: int) -> str:
    return f"worker-{worker_id.hex()}-{pid}.log"


def parse_worker_log(name: str) -> tuple[str, int] | None:
    """``(worker id hex, pid)`` of a worker's log file, None for another file."""
    found = _WORKER_RE.fullmatch(name)
    return (found[1], int(found[2])) if found else None


def category(name: str) -> str:
    """The group ``list_logs`` files a log under (Ray groups by process kind too)."""
    if parse_worker_log(name):
        return "worker"
    stem = name.rsplit(".", 1)[0]
    return stem if stem in ("node", "control_store", "dashboard") else "other"


def check_name(name: object) -> str:
    """``name`` if it names a file inside a log folder, else a ValueError that says why:
    a log request never reaches outside the folder (no absolute path, no ``..``)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a log file name must be a non-empty string, got {name!r}")
    if "\0" in name:
        raise ValueError(f"log file name {name!r} contains a NUL character")
    if name.startswith("/"):
        raise ValueError(
            f"log file name {name!r} is an absolute path: give a name inside the log folder, "
            "as `ember logs` lists them"
        )
    if ".." in name.split("/"):
        raise ValueError(
            f"log file name {name!r} leads outside the log folder (`..`): give a name inside "
            "it, as `ember logs` lists them"
        )
    return name


def tail_start(data: bytes, lines: int, at_start: bool) -> int | None:
    """Where the last ``lines`` lines of ``data`` (the end of a file) begin, not counting task
    markers; None if ``data`` holds fewer and more of the file comes before it (``at_start``
    False): read further back. A final line without its newline counts as a line."""
    end = len(data) - 1 if data.endswith(b"\n") else len(data)
    while lines > 0:
        newline = data.rfind(b"\n", 0, end)
        if newline < 0 and not at_start:
            return None
        if not data.startswith(_MARK_BYTES, newline + 1):
            lines -= 1
        if newline < 0:
            return 0
        end = newline
    return end + 1


def complete_lines(pending: bytes, data: bytes) -> tuple[list[bytes], bytes]:
    """The whole lines of ``pending + data`` (with their newlines), and the unfinished rest
    to keep for the next chunk."""
    text = pending + data
    cut = text.rfind(b"\n") + 1
    return text[:cut].splitlines(keepends=True), text[cut:]


def without_markers(data: bytes) -> bytes:
    """A piece of a log as a reader shows it: the task markers' lines left out."""
    if _MARK_BYTES not in data:
        return data
    return b"".join(x for x in data.splitlines(keepends=True) if not x.startswith(_MARK_BYTES))


def task_marker(task_id_hex: str) -> str:
    return f"{TASK_MARK}{task_id_hex}"


class TaskLines:
    """Picks one task's lines out of its worker's log, fed in order: the lines after one of
    its markers, up to the next marker of another task. Marker lines themselves are never
    output (``keep(line)`` is False for them whatever the task)."""

    def __init__(self, task_id_hex: str | None) -> None:
        self.task_id = None if task_id_hex is None else task_id_hex.encode()  # None: every line
        self.inside = task_id_hex is None

    def keep(self, line: bytes) -> bool:
        if line.startswith(_MARK_BYTES):
            if self.task_id is not None:
                self.inside = line[len(_MARK_BYTES) :].strip() == self.task_id
            return False
        return self.inside
