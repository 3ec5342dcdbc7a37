"""The dashboard's memory of the last minutes: one sample of the cluster every few seconds,
in a ring of fixed size, for the overview's live charts; and the sums a sample is made of.

Everything here takes plain rows (the state API's, and the control store's node table) and
gives plain values, so it is tested without a cluster. The ring never grows: at
``SAMPLE_SECONDS`` apart, ``HISTORY`` samples cover ten minutes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

SAMPLE_SECONDS = 2.0
HISTORY = 300

Usage = Mapping[str, Mapping[str, Mapping[str, float]]]  # node -> {"total", "available"}

# The resources the overview charts: (the resource's name, the chart's key).
_CHARTED = (("CPU", "cpu"), ("GPU", "gpu"), ("memory", "memory"))


def resource_use(usage: Usage) -> dict[str, list[float]]:
    """``{chart key: [used, total]}`` summed over the nodes, and the object store's
    capacity as ``store_capacity``."""
    out = {key: [0.0, 0.0] for _, key in _CHARTED}
    capacity = 0.0
    for node in usage.values():
        total, available = node["total"], node["available"]
        for name, key in _CHARTED:
            amount = float(total.get(name, 0.0))
            out[key][0] += max(0.0, amount - float(available.get(name, amount)))
            out[key][1] += amount
        capacity += float(total.get("object_store_memory", 0.0))
    return {**out, "store_capacity": [capacity]}


def counts(rows: Iterable[Mapping[str, Any]], key: str, count: str | None = None) -> dict[str, int]:
    """How many rows have each value of ``key`` (adding up the rows' ``count`` if given)."""
    out: dict[str, int] = {}
    for row in rows:
        value = str(row.get(key))
        out[value] = out.get(value, 0) + (int(row[count]) if count else 1)
    return out


def store_use(objects: Iterable[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Per node: ``[bytes in shared memory, bytes spilled]`` of the objects' rows."""
    out: dict[str, list[int]] = {}
    for obj in objects:
        size = obj.get("object_size")
        if not isinstance(size, int) or size < 0:
            continue  # (held by reference only: its size is not known here)
        entry = out.setdefault(str(obj.get("node_id")), [0, 0])
        entry[1 if obj.get("spilled") else 0] += size
    return out


def sample(
    now: float,
    usage: Usage,
    task_counts: Mapping[str, int],
    store: Mapping[str, list[int]] | None,
) -> dict[str, Any]:
    """One point of every chart at time ``now`` (seconds since the epoch); the tasks' counts
    are empty, and the store's use None, when they were not asked (nobody watched)."""
    resources = resource_use(usage)
    capacity = resources.pop("store_capacity")[0]
    used = None
    if store is not None:
        shm, spilled = (sum(s[i] for s in store.values()) for i in (0, 1))
        used = [shm, capacity, spilled]
    return {
        "time": now,
        "nodes_alive": len(usage),
        "resources": resources,
        "store": used,
        "tasks": dict(task_counts),
    }


class History:
    """The last ``size`` samples, oldest first, and each node's resources and object store
    in use as of the last one (the store's as of the last that asked)."""

    def __init__(self, size: int = HISTORY) -> None:
        self._samples: deque[dict[str, Any]] = deque(maxlen=size)
        self.usage: Usage = {}
        self.store: Mapping[str, list[int]] = {}

    def add(
        self, point: dict[str, Any], usage: Usage, store: Mapping[str, list[int]] | None
    ) -> None:
        self._samples.append(point)
        self.usage = usage
        if store is not None:
            self.store = store

    def since(self, time: float = 0.0) -> list[dict[str, Any]]:
        """The samples taken after ``time``: a page that polls gets only what is new."""
        return [s for s in self._samples if s["time"] > time]

    def __len__(self) -> int:
        return len(self._samples)
