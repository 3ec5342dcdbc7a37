"""User metrics (``ember.util.metrics``): what a process records, and what its node keeps.

Theory of operation
-------------------
A process records into its ``MetricsBuffer``: a dict update per call, under the series'
key (name, tags). A series holds its totals since the process started (a counter's sum, a
gauge's last value, a histogram's bucket counts and sum), so a report is the state of the
series that changed since the last one, not a delta: one sent twice, or lost before the
next, changes nothing at the node. The client sends the buffer's changes to its node every
second or so, off the path of any call.

The node's ``MetricsTable`` keeps each series per process, as the process last reported it,
and sums them when asked (counters and histograms), or takes the value set last (gauges).
When a process ends, what its counters and histograms counted stays, folded into the
series' retired part; its gauges go with it, as in Ray, where a gauge no process reports
any more ages out. A restarted process is a new process with totals of its own, so nothing
is counted twice.

Both are bounded: a buffer keeps at most ``max_series`` series, a table at most
``max_series`` series and ``max_entries`` (series, process) pairs; a point that finds no
room, or that contradicts how its name was first reported (another kind, other
boundaries), is dropped and counted.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from ember._protocol.messages import MetricPoint

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"

Tags = tuple[tuple[str, str], ...]  # sorted by key
SeriesKey = tuple[str, Tags]

MAX_PROCESS_SERIES = 10_000
MAX_NODE_SERIES = 10_000
MAX_NODE_ENTRIES = 50_000


class _Series:
    """One series as a process has it."""

    __slots__ = ("kind", "description", "boundaries", "value", "counts")

    def __init__(self, kind: str, description: str, boundaries: tuple[float, ...]) -> None:
        self.kind = kind
        self.description = description
        self.boundaries = boundaries
        self.value = 0.0
        self.counts = [0] * (len(boundaries) + 1) if kind == HISTOGRAM else []


class MetricsBuffer:
    """The series one process recorded; not thread-safe (its owner holds a lock)."""

    def __init__(self, max_series: int = MAX_PROCESS_SERIES) -> None:
        self.max_series = max_series
        self._series: dict[SeriesKey, _Series] = {}
        self._changed: set[SeriesKey] = set()
        self.dropped = 0  # points with no room, or of another kind than their series
        self._dropped_reported = 0

    def _get(
        self, key: SeriesKey, kind: str, description: str, boundaries: tuple[float, ...] = ()
    ) -> _Series | None:
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= self.max_series:
                self.dropped += 1
                return None
            series = self._series[key] = _Series(kind, description, boundaries)
        elif series.kind != kind or series.boundaries != boundaries:
            self.dropped += 1
            return None
        self._changed.add(key)
        return series

    def inc(self, name: str, description: str, tags: Tags, value: float) -> None:
        series = self._get((name, tags), COUNTER, description)
        if series is not None:
            series.value += value

    def set(self, name: str, description: str, tags: Tags, value: float) -> None:
        series = self._get((name, tags), GAUGE, description)
        if series is not None:
            series.value = value

    def observe(
        self, name: str, description: str, boundaries: tuple[float, ...], tags: Tags, value: float
    ) -> None:
        series = self._get((name, tags), HISTOGRAM, description, boundaries)
        if series is not None:
            series.value += value
            series.counts[bisect_left(boundaries, value)] += 1

    def take(self) -> tuple[list[MetricPoint], int]:
        """The series that changed since the last call, and the drops since then."""
        points = []
        for key in self._changed:
            s = self._series[key]
            points.append(
                MetricPoint(
                    s.kind, key[0], s.description, key[1], s.value, s.boundaries, s.counts[:]
                )
            )
        self._changed.clear()
        dropped, self._dropped_reported = self.dropped - self._dropped_reported, self.dropped
        return points, dropped

    def clear(self) -> None:
        """Forget every series: the next session starts from zero."""
        self._series.clear()
        self._changed.clear()


class _Entry:
    """One series at the node: each live process's last report, and what the processes
    that ended had counted (counters and histograms)."""

    __slots__ = ("kind", "description", "boundaries", "live", "retired", "retired_counts")

    def __init__(self, point: MetricPoint) -> None:
        self.kind = point.kind
        self.description = point.description
        self.boundaries = tuple(point.boundaries)
        self.live: dict[bytes, tuple[int, MetricPoint]] = {}  # process -> (arrival, point)
        self.retired = 0.0
        self.retired_counts = [0] * len(point.counts)


class _Name:
    """What a name was first reported as, and how many series it has."""

    __slots__ = ("kind", "boundaries", "series")

    def __init__(self, kind: str, boundaries: tuple[float, ...]) -> None:
        self.kind = kind
        self.boundaries = boundaries
        self.series = 0


class MetricsTable:
    """A node's user metrics, per series and process; see the module docstring."""

    def __init__(
        self, max_series: int = MAX_NODE_SERIES, max_entries: int = MAX_NODE_ENTRIES
    ) -> None:
        self.max_series = max_series
        self.max_entries = max_entries
        self._series: dict[SeriesKey, _Entry] = {}
        self._names: dict[str, _Name] = {}
        self._by_process: dict[bytes, set[SeriesKey]] = {}
        self._entries = 0
        self._arrivals = 0
        self.dropped = 0

    def report(self, process: bytes, points: Sequence[MetricPoint], dropped: int = 0) -> None:
        self.dropped += dropped
        keys = self._by_process.setdefault(process, set())
        for point in points:
            key = (point.name, tuple((k, v) for k, v in point.tags))
            entry = self._series.get(key)
            if entry is None and self._entries < self.max_entries:
                entry = self._add(key, point)
            if (
                entry is None
                or entry.kind != point.kind
                or entry.boundaries != tuple(point.boundaries)
            ):
                self.dropped += 1
                continue
            if process not in entry.live:
                if self._entries >= self.max_entries:
                    self.dropped += 1
                    continue
                self._entries += 1
                keys.add(key)
            self._arrivals += 1
            entry.live[process] = (self._arrivals, point)

    def _add(self, key: SeriesKey, point: MetricPoint) -> _Entry | None:
        """A new series, if there is room and its name was not reported otherwise."""
        known = self._names.get(point.name)
        bounds = tuple(point.boundaries)
        if known is not None and (known.kind != point.kind or known.boundaries != bounds):
            return None
        if len(self._series) >= self.max_series:
            return None
        if known is None:
            known = self._names[point.name] = _Name(point.kind, bounds)
        known.series += 1
        entry = self._series[key] = _Entry(point)
        return entry

    def process_gone(self, process: bytes) -> None:
        """What an ended process counted stays; its gauges go."""
        for key in self._by_process.pop(process, ()):
            entry = self._series[key]
            _, point = entry.live.pop(process)
            self._entries -= 1
            if entry.kind != GAUGE:
                entry.retired += point.value
                entry.retired_counts = [
                    a + b for a, b in zip(entry.retired_counts, point.counts, strict=True)
                ]
            elif not entry.live:
                del self._series[key]
                known = self._names[key[0]]
                known.series -= 1
                if not known.series:
                    del self._names[key[0]]

    def rows(self) -> list[dict[str, Any]]:
        """Each series as one row for the node (``query("metrics")``)."""
        rows = []
        for (name, tags), entry in self._series.items():
            counts = entry.retired_counts
            if entry.kind == GAUGE:
                value = max(entry.live.values())[1].value
            else:
                value = entry.retired
                for _, point in entry.live.values():
                    value += point.value
                    if entry.kind == HISTOGRAM:
                        counts = [a + b for a, b in zip(counts, point.counts, strict=True)]
            rows.append(
                {
                    "name": name,
                    "type": entry.kind,
                    "description": entry.description,
                    "tags": dict(tags),
                    "value": value,
                    "boundaries": list(entry.boundaries),
                    "counts": counts,
                }
            )
        return rows
