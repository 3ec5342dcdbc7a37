"""Log files of a cluster's nodes, as Ray's ``ray.util.state.list_logs`` and ``get_log``.

The files are the state kind "logs" (a row per file, from each node: ``_runtime/node/logs.py``);
a file is read by a ``ReadLog`` that the control store passes to the node that has it. A read
returns at most ``MAX_READ`` bytes and where it starts; reading on from its end is also how
``follow`` polls. A worker's file is ``worker-<worker id>-<pid>.log`` and holds both of its
streams, so ``suffix`` ("out" or "err") selects nothing. A task's lines are found through the
task's state row (its node and worker) and the markers its worker writes before them
(``_core/log_files.py``).

``list_log_files`` and ``read_log`` are the two requests themselves, for a caller that polls
on its own (the dashboard), and ``without_markers`` what of a piece to show.
"""

from __future__ import annotations

import collections
import fnmatch
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from ember._api import state as state_api
from ember._core import log_files
from ember._core.log_files import MAX_READ, TaskLines, without_markers
from ember._protocol import messages as m
from ember._transport.rpc import RemoteError
from ember.util.state.exception import RayStateApiException, ServerUnavailable

DEFAULT_RPC_TIMEOUT = 30
# How often ``follow`` asks for new lines.
FOLLOW_INTERVAL = 0.25
# The most files one listing returns (a node keeps a file per worker it ever started).
LIST_LIMIT = 10_000

_ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]")

__all__ = ["get_log", "list_log_files", "list_logs", "read_log", "without_markers"]


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
    "control_store": [...], "dashboard": [...], "worker": [...], "other": [...]}`` (empty
    groups left out)."""
    if glob_filter:
        log_files.check_name(glob_filter)
    target = _Target(address, timeout, _token)
    node = target.node(node_id, node_ip) or target.only_node()
    groups: dict[str, list[str]] = {}
    for row in target.files(node, [], glob_filter or "")[0]:
        groups.setdefault(row["category"], []).append(row["name"])
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
    if pid is not None:
        try:
            pid = int(pid)
        except (TypeError, ValueError):
            raise ValueError(f"pid must be a process id (a number), got {pid!r}") from None
    if not isinstance(tail, int) or tail == 0 or tail < -1:
        raise ValueError(f"tail must be a number of lines (>= 1), or -1 for all; got {tail!r}")
    return _read_lines(
        _Target(address, timeout, _token),
        _Which(node_id, node_ip, filename, actor_id, task_id, pid, attempt_number),
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
    node_ip: str | None = None,
    token: str | None = None,
    timeout: float = DEFAULT_RPC_TIMEOUT,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every live node's log files (or one node's: its id in hex, or the start of it, or
    its address) whose names match the shell pattern ``glob``, as rows ``{node_id, name,
    category, size, mtime, worker_id, pid, actor_id}`` (ids in hex; a worker file's
    ``actor_id`` is the actor its worker hosts, "" for others), and the warnings of nodes
    that did not answer."""
    if glob:
        log_files.check_name(glob)
    target = _Target(address, timeout, token)
    return target.files(target.node(node_id, node_ip), [], glob)


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
    its last lines), whole lines where there are any: a ``LogChunk(data, offset, size)``;
    read on from ``chunk.offset + len(chunk.data)`` (bytes). ``data`` is the file's bytes,
    task markers included: ``without_markers(data)`` is what to show."""
    node = _hex_id(node_id, "node_id")
    return _Target(address, timeout, token).read(
        node, log_files.check_name(filename), offset, tail_lines, max_bytes
    )


class _Target:
    """Where requests go (this process's runtime, or the cluster at an address), and the
    errors of the answers as a caller of the API sees them."""

    def __init__(self, address: str | None, timeout: float, token: str | None = None) -> None:
        self.address, self.timeout, self.token = address, timeout, token
        self._nodes: list[dict[str, Any]] | None = None

    def request(self, make: Callable[[int], m.Message]) -> Any:
        return self.ask(
            lambda: state_api.ask(
                make, address=self.address, timeout=self.timeout, token=self.token
            )
        )

    @staticmethod
    def ask(call: Callable[[], Any]) -> Any:
        """``call()``, its errors as a caller of the API sees them."""
        try:
            return call()
        except RemoteError as e:
            if e.kind is m.ErrorKind.INVALID:  # (a name the node has no file of, say)
                raise ValueError(str(e)) from None
            if e.kind is m.ErrorKind.NODE_DIED:
                raise ConnectionError(str(e)) from None
            raise RayStateApiException(str(e)) from None
        except ConnectionError as e:
            raise ServerUnavailable(str(e)) from None

    def files(
        self, node: bytes | None, filters: Sequence[Sequence[Any]], glob: str = ""
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The rows of the files that pass ``filters`` (on ``node`` alone, if given) and
        whose names match ``glob``, and the warnings of the nodes that did not answer."""
        where = [*filters, ("node_id", "=", node.hex())] if node else list(filters)
        result = self.query("logs", where, LIST_LIMIT)
        rows = [r for r in result.rows if not glob or fnmatch.fnmatchcase(r["name"], glob)]
        warnings = list(result.warnings)
        if result.total > len(result.rows):
            warnings.append(f"{result.total - len(result.rows)} more log files not listed")
        return rows, warnings

    def query(
        self, kind: str, filters: Sequence[Sequence[Any]], limit: int, detail: bool = False
    ) -> state_api.StateResult:
        result: state_api.StateResult = self.ask(
            lambda: state_api.query(
                kind,
                address=self.address,
                filters=filters,
                limit=limit,
                detail=detail,
                timeout=self.timeout,
                token=self.token,
            )
        )
        return result

    def nodes(self) -> list[dict[str, Any]]:
        if self._nodes is None:
            nodes = self.request(lambda rid: m.GetNodes(rid=rid))
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

    def read(
        self, node: str, name: str, offset: int, tail_lines: int, max_bytes: int = MAX_READ
    ) -> m.LogChunk:
        chunk: m.LogChunk = self.request(
            lambda rid: m.ReadLog(
                rid=rid,
                node_id=bytes.fromhex(node),
                name=name,
                offset=offset,
                max_bytes=max_bytes,
                tail_lines=tail_lines,
            )
        )
        return chunk


def _one_file(rows: list[dict[str, Any]], what: str) -> dict[str, Any]:
    """The one file found for ``what`` (the latest written, of one node), or a ValueError
    that says what to give."""
    if not rows:
        raise ValueError(f"no log file of {what} on any live node: `ember logs` lists them")
    nodes = sorted({r["node_id"] for r in rows})
    if len(nodes) > 1:
        raise ValueError(
            f"{what} has log files on several nodes ({', '.join(nodes)}): give node_id="
        )
    return max(rows, key=lambda r: r["mtime"])


class _Which(NamedTuple):
    """The file ``get_log`` was asked for: one of ``filename``, ``actor_id``, ``task_id``
    (its attempt ``attempt_number``) and ``pid``, on the node named, if one is."""

    node_id: str | None
    node_ip: str | None
    filename: str | None
    actor_id: str | None
    task_id: str | None
    pid: int | None
    attempt_number: int


def _find(target: _Target, which: _Which) -> tuple[dict[str, Any], str | None]:
    """The row of the file to read, and the task whose lines to keep (None: all)."""
    node = target.node(which.node_id, which.node_ip)
    if which.filename is not None:
        named = target.files(node, [("name", "=", which.filename)])[0]
        return _one_file(named, which.filename), None
    if which.pid is not None:
        of_pid = target.files(node, [("pid", "=", which.pid)])[0]
        return _one_file(of_pid, f"pid {which.pid}"), None
    if which.actor_id is not None:
        hosts = target.files(node, [("actor_id", "=", which.actor_id)])[0]
        return _one_file(hosts, f"actor {which.actor_id}"), None
    assert which.task_id is not None
    return _task_file(target, node, which.task_id, which.attempt_number), which.task_id


def _task_file(target: _Target, node: bytes | None, task_id: str, attempt: int) -> dict[str, Any]:
    """The log of the worker that ran the task, from the task's state row."""
    result = target.query("tasks", [("task_id", "=", task_id)], LIST_LIMIT, detail=True)
    rows = [r for r in result.rows if r.get("attempt_number", 0) == attempt]
    rows = [r for r in rows if r.get("node_id") and (r.get("worker_id") or r.get("worker_pid"))]
    if not rows:
        raise ValueError(
            f"no worker is known to have run task {task_id} (attempt {attempt}): it has not "
            "started yet, or its record was dropped (`ember list tasks` shows what is known)"
        )
    row = rows[-1]
    where = bytes.fromhex(row["node_id"])
    if node is not None and node != where:
        raise ValueError(f"task {task_id} ran on node {where.hex()}, not on the node given")
    worker = (
        ("worker_id", "=", row["worker_id"])
        if row.get("worker_id")
        else ("pid", "=", row["worker_pid"])
    )
    return _one_file(target.files(where, [worker])[0], f"task {task_id}")


def _hex_id(value: str, what: str) -> str:
    try:
        bytes.fromhex(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an id in hex, got {value!r}") from None
    return value.lower()


def _read_lines(
    target: _Target,
    which: _Which,
    follow: bool,
    tail: int,
    interval: float,
    decoding: tuple[str | None, str],
    filter_ansi: bool,
) -> Iterator[Any]:
    found, task = _find(target, which)
    keep = TaskLines(task)
    encoding, errors = decoding

    def out(line: bytes) -> Any:
        if filter_ansi:
            line = _ANSI.sub(b"", line)
        return line if encoding is None else line.decode(encoding, errors)

    # A task's lines are picked from its whole file; any other file's tail is found by its node.
    from_end = tail > 0 and task is None
    node, name = found["node_id"], found["name"]
    chunk = target.read(node, name, 0, tail if from_end else 0)
    offset, pending = chunk.offset, b""
    last: collections.deque[bytes] | None = collections.deque(maxlen=tail) if tail > 0 else None
    while True:
        offset += len(chunk.data)
        caught_up = offset >= chunk.size
        lines, pending = log_files.complete_lines(pending, chunk.data)
        if caught_up and not follow and pending:  # (the last line, unfinished: it ends here)
            lines.append(pending)
        kept = [line for line in lines if keep.keep(line)]
        if last is not None:
            last.extend(kept)
        else:
            yield from map(out, kept)
        if not caught_up:  # more was there already
            chunk = target.read(node, name, offset, 0)
            continue
        if last is not None:  # the tail is complete: from now on every line goes out
            yield from map(out, last)
            last = None
        if not follow:
            return
        time.sleep(interval)
        chunk = target.read(node, name, offset, 0)
