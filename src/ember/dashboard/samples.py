"""The dashboard's memory of the last minutes: one sample of the cluster every few seconds,
in a ring of fixed size, for the overview's live charts.

A sample is made from the state API's rows (nodes, and the tasks' counts by state): plain
values in, plain values out, so it is tested without a cluster. The ring never grows: at
``SAMPLE_SECONDS`` apart, ``HISTORY`` samples cover ten minutes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

SAMPLE_SECONDS = 2.0
HISTORY = 300

# The resources the overview charts: (the resource's name, the chart's key).
_CHARTED = (("CPU", "cpu"), ("GPU", "gpu"), ("memory", "memory"), ("object_store_memory", "store"))


def resource_use(nodes: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """``{chart key: [used, total]}`` over the live nodes (``resources_total`` and, where a
    row has it, ``resources_available``: a row without it counts as idle)."""
    out = {key: [0.0, 0.0] for _, key in _CHARTED}
    for node in nodes:
        if node.get("state") != "ALIVE":
            continue
        total = node.get("resources_total") or {}
        available = node.get("resources_available")
        for name, key in _CHARTED:
            amount = float(total.get(name, 0.0))
            free = amount if available is None else float(available.get(name, 0.0))
            out[key][0] += max(0.0, amount - free)
            out[key][1] += amount
    return out


def sample(
    now: float, nodes: Iterable[Mapping[str, Any]], task_counts: Mapping[str, int]
) -> dict[str, Any]:
    """One point of every chart at time ``now`` (seconds since the epoch)."""
    nodes = list(nodes)
    return {
        "time": now,
        "nodes_alive": sum(1 for n in nodes if n.get("state") == "ALIVE"),
        "resources": resource_use(nodes),
        "tasks": dict(task_counts),
    }


class History:
    """The last ``size`` samples, oldest first."""

    def __init__(self, size: int = HISTORY) -> None:
        self._samples: deque[dict[str, Any]] = deque(maxlen=size)

    def add(self, point: dict[str, Any]) -> None:
        self._samples.append(point)

    def since(self, time: float = 0.0) -> list[dict[str, Any]]:
        """The samples taken after ``time``: a page that polls gets only what is new."""
        return [s for s in self._samples if s["time"] > time]

    def __len__(self) -> int:
        return len(self._samples)
