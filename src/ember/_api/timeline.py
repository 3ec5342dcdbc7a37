"""``ember.timeline``: the tasks that ran, as a Chrome trace (``_core/timeline.py``), from
the nodes' "task_runs" rows (their task tables' runs, per worker)."""

from __future__ import annotations

import gc
import json
from typing import Any

from ember._api.state import query
from ember._core.timeline import chrome_trace
from ember._runtime import state

# Every worker's row (each node keeps at most task_events_max_num_task_in_gcs tasks).
_ALL = 1 << 62


def timeline(filename: str | None = None, *, address: str | None = None) -> list[Any] | None:
    """The trace events of the tasks that ran (one row per worker, a box per task, arrows
    from a task to those that took its results), as Ray's ``ray.timeline``: written to
    ``filename`` as JSON (open it in chrome://tracing or https://ui.perfetto.dev) and None
    returned, or returned as a list without one. ``address``: a cluster's control store,
    to ask it from outside (as ``ember timeline --address`` does)."""
    rt = state.current()
    if address is None and rt is not None:
        flush = getattr(rt, "flush_events", None)
        if flush is not None:  # this process's latest events first
            flush()
    rows = query("task_runs", address=address, limit=_ALL).rows
    nodes = query("nodes", address=address, limit=_ALL).rows
    node_ips = {node["node_id"]: node["node_ip"] for node in nodes}
    # The trace is a dict or two per task, all kept: the cyclic garbage collector would
    # scan the growing heap again and again while they are made, for nothing to free.
    paused = gc.isenabled()
    gc.disable()
    try:
        events = chrome_trace(rows, node_ips)
        if filename is None:
            return events
        text = json.dumps(events, separators=(",", ":"))
    finally:
        if paused:
            gc.enable()
    with open(filename, "w") as f:
        f.write(text)
    return None
