"""A node's log folder for ``ember logs``: its files as rows of the state kind "logs", and
the answers to ``ReadLog``.

Only files inside the folder are read: a name is checked (``_core/log_files.check_name``) and
its real path must lie in the folder's, so a symbolic link cannot lead out either. A read
returns at most ``MAX_READ`` bytes, cut after its last whole line if it has one; the reader
asks again from where it ended.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Any, BinaryIO

from ember._core import log_files
from ember._protocol import messages as m

if TYPE_CHECKING:
    from ember._runtime.node.manager import NodeManager

# How far back a tail request reads at a time while it looks for the lines' start.
_TAIL_STEP = 64 * 1024


class NodeLogs:
    def __init__(self, node: NodeManager) -> None:
        self.node = node
        node.state.providers["logs"] = self.rows

    def answer(self, msg: m.ReadLog) -> m.Answer:
        """The answer to a read (an INVALID error Reply for a bad or unknown name)."""
        try:
            return self.read(msg)
        except ValueError as e:
            return m.error_reply(msg.rid, m.ErrorKind.INVALID, str(e))
        except OSError as e:  # (unreadable: permissions, a disk error)
            text = f"log file {msg.name!r} cannot be read: {e.strerror or e}"
            return m.error_reply(msg.rid, m.ErrorKind.INVALID, text)

    def rows(self, detail: bool) -> list[dict[str, Any]]:
        """The state kind "logs": a row per file of the folder, with the worker it is of and
        the actor that worker hosts (while the pool remembers it)."""
        pool = self.node.pool
        actors = {
            os.path.basename(w.log_path): w.actor_id.hex()
            for w in (*pool.ended.values(), *pool.workers.values())
            if w.actor_id
        }
        folder = self.node.log_dir
        try:
            entries = sorted(
                (e for e in os.scandir(folder) if e.is_file(follow_symlinks=False)),
                key=lambda e: e.name,
            )
        except FileNotFoundError:
            return []
        node_id = self.node.node_id.hex()
        rows: list[dict[str, Any]] = []
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:  # (removed meanwhile)
                continue
            worker = log_files.parse_worker_log(e.name)
            rows.append(
                {
                    "node_id": node_id,
                    "name": e.name,
                    "category": log_files.category(e.name),
                    "size": st.st_size,
                    "mtime": st.st_mtime,
                    "worker_id": worker[0] if worker else "",
                    "pid": worker[1] if worker else 0,
                    "actor_id": actors.get(e.name, ""),
                }
            )
        return rows

    def read(self, msg: m.ReadLog) -> m.LogChunk:
        name = log_files.check_name(msg.name)
        folder = os.path.realpath(self.node.log_dir)
        path = os.path.realpath(os.path.join(folder, name))
        if os.path.commonpath([folder, path]) != folder:
            raise ValueError(f"log file name {name!r} leads outside the log folder")
        missing = ValueError(
            f"no log file {name!r} on node {self.node.node_id.hex()}: `ember logs` lists the "
            "files there"
        )
        try:  # (without blocking, should the name be a pipe's)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise missing from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise missing
        with open(fd, "rb") as f:
            size = os.fstat(fd).st_size
            limit = max(0, min(msg.max_bytes, log_files.MAX_READ))
            offset = (
                _tail_offset(f, size, msg.tail_lines, limit) if msg.tail_lines > 0 else msg.offset
            )
            offset = max(0, min(size, offset))
            f.seek(offset)
            data = f.read(limit)
        cut = data.rfind(b"\n") + 1  # whole lines, where there are any (a line may be longer)
        return m.LogChunk(rid=msg.rid, data=data[:cut] if cut else data, offset=offset, size=size)


def _tail_offset(f: BinaryIO, size: int, lines: int, limit: int) -> int:
    """Where the last ``lines`` lines start, looking back at most ``limit`` bytes (beyond
    that: the first line that starts within them)."""
    floor = max(0, size - limit)
    start = size
    while True:
        start = max(floor, start - _TAIL_STEP)
        f.seek(start)
        data = f.read(size - start)
        found = log_files.tail_start(data, lines, at_start=start == 0)
        if found is not None:
            return start + found
        if start == floor:  # the lines reach back further than a read may return
            cut = data.find(b"\n")
            return start + cut + 1 if cut >= 0 else start
