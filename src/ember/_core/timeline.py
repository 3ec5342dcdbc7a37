"""A Chrome trace of the tasks that ran: the JSON that chrome://tracing and Perfetto open.

Built from the state API's detailed task rows (``_core.task_events``): one process per node
and one thread per worker (named by metadata events), a complete event ("X") per run of a
task on its worker's row, and a flow arrow ("s" to "f") from the task that made an ObjectRef
argument to the task that took it, when both are in the rows. Times are microseconds.

It is a single pass over the rows building small dicts, so 100,000 tasks take well under a
second; the caller serializes the list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ember._protocol.ids import TASK_ID_LEN
from ember._core.task_events import FAILED, FINISHED, RUNNING

_TASK_HEX = 2 * TASK_ID_LEN


def chrome_trace(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trace events of the tasks in ``rows`` that ran (detailed ``TaskState`` rows)."""
    out: list[dict[str, Any]] = []
    nodes: dict[str, int] = {}
    threads: set[tuple[int, int]] = set()
    spans: dict[str, tuple[int, int, float, float]] = {}  # task id: pid, tid, start, end
    wants: list[tuple[str, list[str], int, int, float]] = []  # args to draw arrows to
    for row in rows:
        start = end = 0.0
        state = ""
        for event in row.get("events") or ():
            s = event["state"]
            if s == RUNNING:
                start = event["created_ms"]
            elif (s == FINISHED or s == FAILED) and start:
                end, state = event["created_ms"], s
        if not end:
            continue  # never ran, or still running
        node = row.get("node_id") or "?"
        pid = nodes.get(node)
        if pid is None:
            pid = nodes[node] = len(nodes) + 1
            out.append(_meta("process_name", pid, 0, f"node {node[:12]}"))
            out.append(_sort("process_sort_index", pid, 0, pid))
        tid = row.get("worker_pid") or 0
        if (pid, tid) not in threads:
            threads.add((pid, tid))
            worker = (row.get("worker_id") or "?")[:12]
            out.append(_meta("thread_name", pid, tid, f"worker {tid} ({worker})"))
        task_id = row["task_id"]
        ts, dur = start * 1000.0, (end - start) * 1000.0
        arg_ids = row.get("arg_object_ids") or []
        out.append(
            {
                "cat": row.get("type") or "task",
                "name": row.get("name") or "",
                "ph": "X",
                "pid": pid,
                "tid": tid,
                "ts": ts,
                "dur": dur,
                "cname": "rail_response" if state == FAILED else "generic_work",
                "args": {
                    "task_id": task_id,
                    "attempt_number": row.get("attempt_number", 0),
                    "state": state,
                    "func_or_class_name": row.get("func_or_class_name"),
                    "actor_id": row.get("actor_id"),
                    "arg_object_ids": arg_ids,
                },
            }
        )
        spans[task_id] = (pid, tid, ts, ts + dur)
        if arg_ids:
            wants.append((task_id, arg_ids, pid, tid, ts))
    flow = 0
    for _, arg_ids, pid, tid, ts in wants:
        for oid in arg_ids:
            made = spans.get(oid[:_TASK_HEX])
            if made is None:
                continue  # put by a process, or its maker's row is not here
            flow += 1
            ppid, ptid, pstart, pend = made
            out.append(
                {
                    "name": "object",
                    "cat": "object",
                    "ph": "s",
                    "id": flow,
                    "pid": ppid,
                    "tid": ptid,
                    "ts": max(pstart, pend - 1.0),  # inside the maker's box, to bind to it
                    "args": {"object_id": oid},
                }
            )
            out.append(
                {
                    "name": "object",
                    "cat": "object",
                    "ph": "f",
                    "bp": "e",
                    "id": flow,
                    "pid": pid,
                    "tid": tid,
                    "ts": ts,
                }
            )
    return out


def _meta(kind: str, pid: int, tid: int, name: str) -> dict[str, Any]:
    return {"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}


def _sort(kind: str, pid: int, tid: int, index: int) -> dict[str, Any]:
    return {"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": index}}
