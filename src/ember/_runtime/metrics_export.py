"""User metrics as Prometheus text: the rows of ``query("metrics")`` rendered for the
dashboard's ``/metrics``.

Names get the ``ember_`` prefix, as Ray puts ``ray_`` before its users' metrics: it keeps
them apart from the system metrics and from a Ray cluster's scraped by the same
Prometheus. Each series is labelled with its tags and its node (``NodeAddress``, Ray's
label, and ``NodeId``, which tells apart the nodes of one host); each node's count of
dropped points is ``ember_user_metrics_dropped_total``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

PREFIX = "ember_"
_NOT_IN_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")


def exposition(rows: Sequence[dict[str, Any]]) -> bytes:
    """The Prometheus text exposition of ``rows`` (``query("metrics").rows``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RowsCollector(rows))
    return generate_latest(registry)


def _label_name(key: str) -> str:
    name = _NOT_IN_LABEL_NAME.sub("_", key)
    return f"_{name}" if name[:1].isdigit() else name


def _labels(row: dict[str, Any]) -> dict[str, str]:
    labels = {_label_name(k): v for k, v in row["tags"].items()}
    labels.setdefault("NodeAddress", row["node_ip"])
    labels.setdefault("NodeId", row["node_id"])
    return labels


_FAMILIES: dict[str, type[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]] = {
    "counter": CounterMetricFamily,
    "gauge": GaugeMetricFamily,
    "histogram": HistogramMetricFamily,
}


class _RowsCollector(Collector):
    """One metric family per name (of the kind its first row has); a series without a label
    another of its family has gets it empty, which Prometheus reads as absent."""

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[Metric]:
        by_name: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows:
            same = by_name.get(row["name"])
            if same is None:
                by_name[row["name"]] = [row]
            elif same[0]["type"] == row["type"]:  # (a node that took the name otherwise)
                same.append(row)
        for name, rows in by_name.items():
            labelled = [(_labels(row), row) for row in rows]
            keys = sorted({key for labels, _ in labelled for key in labels})
            make = _FAMILIES[rows[0]["type"]]
            family = make(PREFIX + name, rows[0]["description"], labels=keys)
            for labels, row in labelled:
                values = [labels.get(key, "") for key in keys]
                if isinstance(family, HistogramMetricFamily):
                    family.add_metric(values, _buckets(row), row["value"])
                else:
                    family.add_metric(values, row["value"])
            yield family
        dropped = CounterMetricFamily(
            PREFIX + "user_metrics_dropped",
            "User metric points dropped: no room under a cap of their process or node, or "
            "of another kind (or histogram boundaries) than their name first had.",
            labels=["NodeAddress", "NodeId"],
        )
        nodes = {(row["node_ip"], row["node_id"]): row["dropped"] for row in self.rows}
        for node, count in nodes.items():
            dropped.add_metric(node, count)
        if nodes:
            yield dropped


def _buckets(row: dict[str, Any]) -> list[tuple[str, float]]:
    """Cumulative counts per upper bound, as Prometheus wants them, ending at +Inf."""
    bounds = [*(repr(float(b)) for b in row["boundaries"]), "+Inf"]
    out, total = [], 0
    for bound, count in zip(bounds, row["counts"], strict=True):
        total += count
        out.append((bound, float(total)))
    return out
