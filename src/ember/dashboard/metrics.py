"""``/metrics``: the cluster's state as Prometheus text, made on each scrape from the state
API's rows (nothing is counted in between, so nothing here grows or goes stale).

The names follow Ray's metrics with Ember's prefix (``ray_tasks{State=...}`` is
``ember_tasks{State=...}``), so a Grafana panel made for Ray needs only the prefix changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass
class Snapshot:
    """What one scrape shows, gathered from the state API."""

    nodes: Sequence[Mapping[str, Any]]
    task_counts: Mapping[str, int] = field(default_factory=dict)
    actor_counts: Mapping[str, int] = field(default_factory=dict)
    workers: Mapping[str, int] = field(default_factory=dict)  # node id -> worker processes
    spilled_bytes: Mapping[str, int] = field(default_factory=dict)  # node id -> bytes


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        tasks = GaugeMetricFamily("ember_tasks", "Tasks by state.", labels=["State"])
        for state, count in sorted(snap.task_counts.items()):
            tasks.add_metric([state], count)
        yield tasks
        actors = GaugeMetricFamily("ember_actors", "Actors by state.", labels=["State"])
        for state, count in sorted(snap.actor_counts.items()):
            actors.add_metric([state], count)
        yield actors
        alive = [n for n in snap.nodes if n.get("state") == "ALIVE"]
        yield GaugeMetricFamily(
            "ember_cluster_active_nodes", "Nodes alive in the cluster.", value=len(alive)
        )
        resources = GaugeMetricFamily(
            "ember_resources",
            "Resources per node: TOTAL, and USED by tasks and actors.",
            labels=["Name", "State", "NodeId"],
        )
        store = GaugeMetricFamily(
            "ember_object_store_memory",
            "Object store bytes per node: in shared memory (MMAP_SHM) and spilled to disk.",
            labels=["Location", "NodeId"],
        )
        workers = GaugeMetricFamily(
            "ember_workers", "Worker processes per node.", labels=["NodeId"]
        )
        for node in alive:
            node_id = str(node["node_id"])
            total = node.get("resources_total") or {}
            available = node.get("resources_available") or {}
            for name, amount in sorted(total.items()):
                if name.startswith("node:"):
                    continue
                used = amount - available.get(name, amount)
                resources.add_metric([name, "TOTAL", node_id], amount)
                resources.add_metric([name, "USED", node_id], used)
                if name == "object_store_memory":
                    store.add_metric(["MMAP_SHM", node_id], used)
            store.add_metric(["SPILLED", node_id], snap.spilled_bytes.get(node_id, 0))
            workers.add_metric([node_id], snap.workers.get(node_id, 0))
        yield resources
        yield store
        yield workers


def cluster_text(snapshot: Snapshot) -> bytes:
    """The Prometheus text of ``snapshot``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)
