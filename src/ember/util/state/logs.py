"""Log files of a cluster's nodes, as Ray's ``ray.util.state.list_logs`` and ``get_log``.

Every request goes to the control store (through this process's runtime when it is connected
and no ``address`` is given, else to the cluster at ``address``), which passes it to the node
that has the file: each node reads only its own log folder (``_runtime/node/logs.py``). A read
returns at most ``MAX_READ`` bytes and the offset it ends at; reading on from there is also
how ``follow`` polls. A worker's file is ``worker-<worker id>-<pid>.log`` and holds both of its
streams, so ``suffix`` ("out" or "err") selects nothing. A task's lines are found through the
task's state row (its node and worker) and the markers its worker writes before them
(``_core/log_files.py``).

``list_log_files`` and ``read_log`` are the two requests themselves, for a caller that polls
on its own (the dashboard).
"""

from __future__ import annotations

import collections
import glob as globs
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from ember._core import log_files
from ember._core.log_files import MAX_READ, TaskLines
from ember._protocol import messages as m
from ember._runtime import state
from ember._runtime.launch import admin, cluster_files
from ember._transport.rpc import RemoteError

DEFAULT_RPC_TIMEOUT = 30
# How often ``follow`` asks for new lines.
FOLLOW_INTERVAL = 0.25

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]")

__all__ = ["get_log", "list_log_files", "list_logs", "read_log"]


def list_logs(
    address: str | None = None,
    node_id: str | None = None,
    node_ip: str | None = None,
    glob_filter: str | None = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    *,
    _token: str | None = None,
) -> dict[str, list[str]]:
    """The log files of one node (``node_id`` or ``node_ip``; either may be left out on a
    cluster of one node) whose names match ``glob_filter``, grouped as ``{"node": [...],
    "control_store": [...], "worker": [...], "other": [...]}`` (empty groups left out)."""
    if glob_filter:
        log_files.check_name(glob_filter)
    target = _Target(address, timeout, _token)
    node = target.node(node_id, node_ip) or target.only_node()
    groups: dict[str, list[str]] = {}
    for f in target.files(node, glob_filter or ""):
        groups.setdefault(log_files.category(f.name), []).append(f.name)
    return groups


def get_log(
    address: str | None = None,
    node_id: str | None = None,
    node_ip: str | None = None,
    filename: str | None = None,
    actor_id: str | None = None,
    task_id: str | None = None,
    pid: int | None = None,
    follow: bool = False,
    tail: int = -1,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    suffix: str = "out",
    encoding: str | None = "utf-8",
    errors: str | None = "strict",
    submission_id: str | None = None,
    attempt_number: int = 0,
    _interval: float | None = None,
    filter_ansi_code: bool = False,
    *,
    _token: str | None = None,
) -> Iterator[Any]:
    """The lines (each with its newline; bytes if ``encoding`` is None) of one log file,
    named by ``filename`` or found by ``actor_id``, ``task_id`` (its attempt
    ``attempt_number``: only the lines that task printed) or a worker's ``pid``. ``tail``:
    only the last that many lines (-1: all). ``follow``: keep yielding lines as they are
    written, until the caller stops. Bad input raises ValueError before anything is read."""
    if submission_id is not None:
        raise NotImplementedError(
            "get_log(submission_id=...): Ember has no job submission; a driver's output is "
            "its own process's"
        )
    if suffix not in ("out", "err"):
        raise ValueError(f"suffix must be 'out' or 'err', got {suffix!r}")
    if sum(x is not None for x in (filename, actor_id, task_id, pid)) != 1:
        raise ValueError("give exactly one of filename=, actor_id=, task_id= or pid=")
    if filename is not None:
        log_files.check_name(filename)
    actor_id = actor_id if actor_id is None else _hex_id(actor_id, "actor_id")
    task_id = task_id if task_id is None else _hex_id(task_id, "task_id")
    if not isinstance(tail, int) or tail == 0 or tail < -1:
        raise ValueError(f"tail must be a number of lines (>= 1), or -1 for all; got {tail!r}")
    return _read_lines(
        _Target(address, timeout, _token),
        node_id,
        node_ip,
        filename,
        actor_id,
        task_id,
        pid,
        attempt_number,
        follow,
        tail,
        FOLLOW_INTERVAL if _interval is None else _interval,
        (encoding, errors or "strict"),
        filter_ansi_code,
    )


def list_log_files(
    address: str | None = None,
    node_id: str | None = None,
    glob: str = "",
    *,
    token: str | None = None,
    timeout: float = DEFAULT_RPC_TIMEOUT,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every live node's log files (or one node's: its id in hex, or the start of it) whose
    names match the shell pattern ``glob``, as rows ``{node_id, name, category, size,
    mtime, actor_id}`` (ids in hex; ``actor_id`` "" but for a worker that hosts an actor),
    and a warning per node that did not answer."""
    if glob:
        log_files.check_name(glob)
    target = _Target(address, timeout, token)
    node = target.node(node_id, None) or b""
    answer = target.ask(lambda rid: m.ListLogs(rid=rid, node_id=node, glob=glob))
    rows = [
        {
            "node_id": f.node_id.hex(),
            "name": f.name,
            "category": log_files.category(f.name),
            "size": f.size,
            "mtime": f.mtime,
            "actor_id": f.actor_id.hex(),
        }
        for f in answer.files
    ]
    return rows, list(answer.warnings)


def read_log(
    node_id: str,
    filename: str,
    offset: int = 0,
    *,
    tail_lines: int = 0,
    max_bytes: int = MAX_READ,
    address: str | None = None,
    token: str | None = None,
    timeout: float = DEFAULT_RPC_TIMEOUT,
) -> m.LogChunk:
    """At most ``max_bytes`` of a node's log file from ``offset`` (or, with ``tail_lines``,
    its last lines): a ``LogChunk(data, offset, size)``; read on from
    ``chunk.offset + len(chunk.data)``."""
    return _Target(address, timeout, token).read(
        bytes.fromhex(node_id), log_files.check_name(filename), offset, tail_lines, max_bytes
    )


class _Target:
    """Where requests go: this process's runtime, or the cluster at an address."""

    def __init__(self, address: str | None, timeout: float, token: str | None = None) -> None:
        self.timeout = timeout
        self.runtime = state.current() if address is None else None
        self.address = ""
        self.token = ""
        if self.runtime is None or not hasattr(self.runtime, "control_request"):
            if address in (None, "auto"):
                address = os.environ.get("EMBER_ADDRESS") or cluster_files.the_local_cluster(
                    "start one with `ember start --head`, or call ember.init() first",
                    "pass the one you mean with address='HOST:PORT'",
                )
            assert address is not None
            self.runtime = None
            self.address = address
            self.token = admin.token_for(address, token)
        self._nodes: list[dict[str, Any]] | None = None

    def ask(self, make: Callable[[int], m.Message]) -> Any:
        try:
            if self.runtime is not None:
                return self.runtime.control_request(make, self.timeout)  # type: ignore[attr-defined]
            return admin.query(self.address, self.token, make, self.timeout)
        except RemoteError as e:
            if e.kind is m.ErrorKind.INVALID:
                raise ValueError(str(e)) from None
            raise

    def nodes(self) -> list[dict[str, Any]]:
        if self._nodes is None:
            nodes = self.ask(lambda rid: m.GetNodes(rid=rid))
            self._nodes = [n for n in nodes if n["alive"]]
        return self._nodes

    def node(self, node_id: str | None, node_ip: str | None) -> bytes | None:
        """The live node named by id (hex, or a prefix of it that only it has) or address."""
        if node_id is None and node_ip is None:
            return None
        found = [
            n["node_id"]
            for n in self.nodes()
            if (node_id is None or n["node_id"].hex().startswith(node_id.lower()))
            and (node_ip is None or n["host"] == node_ip)
        ]
        named = " and ".join(
            f"{k}={v!r}" for k, v in (("node_id", node_id), ("node_ip", node_ip)) if v is not None
        )
        if not found:
            raise ValueError(f"no live node with {named}: {self._known()}")
        if len(found) > 1:
            raise ValueError(
                f"several live nodes with {named}: give more of the id. {self._known()}"
            )
        node: bytes = found[0]
        return node

    def only_node(self) -> bytes:
        nodes = self.nodes()
        if len(nodes) != 1:
            raise ValueError(
                f"the cluster has {len(nodes)} live nodes: give node_id= or node_ip=. "
                + self._known()
            )
        node: bytes = nodes[0]["node_id"]
        return node

    def _known(self) -> str:
        return "live nodes: " + ", ".join(
            f"{n['node_id'].hex()} ({n['host']})" for n in self.nodes()
        )

    def files(self, node: bytes | None, glob: str) -> list[m.LogFile]:
        answer = self.ask(lambda rid: m.ListLogs(rid=rid, node_id=node or b"", glob=glob))
        return list(answer.files)

    def read(
        self, node: bytes, name: str, offset: int, tail_lines: int, max_bytes: int = MAX_READ
    ) -> m.LogChunk:
        chunk: m.LogChunk = self.ask(
            lambda rid: m.ReadLog(
                rid=rid,
                node_id=node,
                name=name,
                offset=offset,
                max_bytes=max_bytes,
                tail_lines=tail_lines,
            )
        )
        return chunk

    def one_file(self, files: list[m.LogFile], what: str) -> m.LogFile:
        """The one file found for ``what``, or a ValueError that says what to give."""
        if not files:
            raise ValueError(f"no log file of {what} on any live node: `ember logs` lists them")
        nodes = {f.node_id for f in files}
        if len(nodes) > 1:
            raise ValueError(
                f"{what} has log files on several nodes "
                f"({', '.join(sorted(n.hex() for n in nodes))}): give node_id="
            )
        return max(files, key=lambda f: f.mtime)


def _find(
    target: _Target,
    node_id: str | None,
    node_ip: str | None,
    filename: str | None,
    actor_id: str | None,
    task_id: str | None,
    pid: int | None,
    attempt_number: int,
) -> tuple[m.LogFile, str | None]:
    """The file to read, and the task whose lines to keep (None: all)."""
    node = target.node(node_id, node_ip)
    if filename is not None:
        return target.one_file(target.files(node, globs.escape(filename)), filename), None
    if pid is not None:
        return target.one_file(target.files(node, f"worker-*-{int(pid)}.log"), f"pid {pid}"), None
    if actor_id is not None:
        hosts = [f for f in target.files(node, "worker-*") if f.actor_id.hex() == actor_id]
        return target.one_file(hosts, f"actor {actor_id}"), None
    assert task_id is not None
    return _task_file(target, node, task_id, attempt_number), task_id


def _task_file(target: _Target, node: bytes | None, task_id: str, attempt: int) -> m.LogFile:
    """The log of the worker that ran the task, from the task's state row."""
    from ember._api import state as state_api

    result = state_api.query(
        "tasks",
        address=target.address or None,
        filters=[("task_id", "=", task_id)],
        detail=True,
        timeout=target.timeout,
    )
    rows = [r for r in result.rows if r.get("attempt_number", 0) == attempt] or result.rows
    rows = [r for r in rows if r.get("worker_id") and r.get("node_id")]
    if not rows:
        raise ValueError(
            f"no worker is known to have run task {task_id} (attempt {attempt}): it has not "
            "started yet, or its record was dropped (`ember list tasks` shows what is known)"
        )
    row = rows[-1]
    where = bytes.fromhex(row["node_id"])
    if node is not None and node != where:
        raise ValueError(f"task {task_id} ran on node {where.hex()}, not on the node given")
    files = target.files(where, f"worker-{row['worker_id']}-*.log")
    return target.one_file(files, f"task {task_id}")


def _hex_id(value: str, what: str) -> str:
    try:
        bytes.fromhex(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an id in hex, got {value!r}") from None
    return value.lower()


def _read_lines(
    target: _Target,
    node_id: str | None,
    node_ip: str | None,
    filename: str | None,
    actor_id: str | None,
    task_id: str | None,
    pid: int | None,
    attempt_number: int,
    follow: bool,
    tail: int,
    interval: float,
    decoding: tuple[str | None, str],
    filter_ansi: bool,
) -> Iterator[Any]:
    found, task = _find(target, node_id, node_ip, filename, actor_id, task_id, pid, attempt_number)
    keep = TaskLines(task)
    encoding, errors = decoding

    def out(line: bytes) -> Any:
        if filter_ansi:
            line = _ANSI.sub(b"", line)
        return line if encoding is None else line.decode(encoding, errors)

    # A task's lines are picked from its whole file; any other file's tail is found by its node.
    from_end = tail > 0 and task is None
    chunk = target.read(found.node_id, found.name, 0, tail if from_end else 0)
    offset, pending = chunk.offset, b""
    last: collections.deque[bytes] | None = collections.deque(maxlen=tail) if tail > 0 else None
    while True:
        offset += len(chunk.data)
        lines, pending = log_files.complete_lines(pending, chunk.data)
        kept = [line for line in lines if keep.keep(line)]
        if last is not None:
            last.extend(kept)
        else:
            yield from map(out, kept)
        if offset < chunk.size:  # more was there already
            chunk = target.read(found.node_id, found.name, offset, 0)
            continue
        if last is not None:  # the tail is complete: from now on every line goes out
            yield from map(out, last)
            last = None
        if not follow:
            break
        time.sleep(interval)
        chunk = target.read(found.node_id, found.name, offset, 0)
    if pending and keep.keep(pending):
        yield out(pending)
