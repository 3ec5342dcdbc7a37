"""A Chrome trace of the tasks that ran: the JSON that chrome://tracing and Perfetto open.

Built from the nodes' "task_runs" rows (``TaskTable.runs``: one row per worker with its
tasks' runs in one flat list): one process per node and one thread per worker, named as
Ray names them ("Node <ip> <node id>", "worker <pid> (<worker id>)", ids cut short) by
metadata events, a complete event ("X") per task on its worker's row, and a flow arrow ("s" to "f")
from the task that made an ObjectRef argument to the task that took it, when both are
there. A failed run's box says so in its args. One pass building small dicts: 100,000 tasks
take a fraction of a second; the caller serializes the list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ember._core.task_events import RUN_FIELDS
from ember._protocol.ids import TASK_ID_LEN

_TASK_HEX = 2 * TASK_ID_LEN
_ID = 12  # hex digits of a node's or worker's id in a row's name


def chrome_trace(
    workers: Iterable[dict[str, Any]], node_ips: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The trace events of the runs in ``workers`` (``TaskTable.runs`` rows); ``node_ips``:
    the nodes' addresses by id (hex). Times are whole microseconds from the first start,
    which keeps the file small and quick to write."""
    node_ips = node_ips or {}
    workers = list(workers)
    starts = [worker["runs"][2::RUN_FIELDS] for worker in workers]
    origin = min((min(s) for s in starts if s), default=0.0)
    out: list[dict[str, Any]] = []
    nodes: dict[str | None, int] = {}
    spans: dict[str, tuple[int, int, int, int]] = {}  # task id: pid, tid, start, end
    wants: list[tuple[list[str], int, int, int]] = []  # arguments to draw arrows to
    for worker in workers:
        node = worker["node_id"]
        pid = nodes.get(node)
        if pid is None:
            pid = nodes[node] = len(nodes) + 1
            where = " ".join(x for x in (node_ips.get(node or ""), (node or "?")[:_ID]) if x)
            out.append(_meta("process_name", pid, 0, "name", f"Node {where}"))
            out.append(_meta("process_sort_index", pid, 0, "sort_index", pid))
        tid = worker["worker_pid"] or 0
        name = f"worker {tid} ({(worker['worker_id'] or '?')[:_ID]})"
        out.append(_meta("thread_name", pid, tid, "name", name))
        runs = worker["runs"]
        for task_id, task_name, start, end, failed, attempt, arg_ids in zip(
            *(runs[i::RUN_FIELDS] for i in range(RUN_FIELDS)), strict=True
        ):
            ts = int((start - origin) * 1e6)
            te = int((end - origin) * 1e6)
            args: dict[str, Any] = {"task_id": task_id}
            if attempt:
                args["attempt_number"] = attempt
            if failed:
                args["failed"] = True
            if arg_ids:
                args["arg_object_ids"] = arg_ids
                wants.append((arg_ids, pid, tid, ts))
            out.append(
                {
                    "name": task_name,
                    "ph": "X",
                    "pid": pid,
                    "tid": tid,
                    "ts": ts,
                    "dur": te - ts,
                    "args": args,
                }
            )
            spans[task_id] = (pid, tid, ts, te)
    flow = 0
    for arg_ids, pid, tid, ts in wants:
        for oid in arg_ids:
            made = spans.get(oid[:_TASK_HEX])
            if made is None:
                continue  # put by a process, or its maker is not in the trace
            flow += 1
            ppid, ptid, pstart, pend = made
            # The start sits inside the maker's box (so it binds to it), the end at the
            # start of the taker's.
            out.append(_flow("s", flow, ppid, ptid, max(pstart, pend - 1), oid))
            out.append(_flow("f", flow, pid, tid, ts, oid))
    return out


def _meta(kind: str, pid: int, tid: int, key: str, value: Any) -> dict[str, Any]:
    return {"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": {key: value}}


def _flow(ph: str, flow: int, pid: int, tid: int, ts: int, oid: str) -> dict[str, Any]:
    event = {"name": "object", "cat": "object", "ph": ph, "id": flow, "pid": pid, "tid": tid}
    event["ts"] = ts
    event["args"] = {"object_id": oid}
    if ph == "f":
        event["bp"] = "e"
    return event
