"""``ember.timeline``: the tasks that ran, as a Chrome trace (``_core/timeline.py``), from
the nodes' "task_runs" rows (their task tables' runs, per worker)."""

from __future__ import annotations

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
    events = chrome_trace(query("task_runs", address=address, limit=_ALL).rows)
    if filename is None:
        return events
    with open(filename, "w") as f:
        f.write(json.dumps(events, separators=(",", ":")))
    return None
