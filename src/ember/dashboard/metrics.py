"""``/metrics``: the cluster's state as Prometheus text, made on each scrape from the state
API's rows (nothing is counted in between, so nothing here grows or goes stale).

The names follow Ray's metrics with Ember's prefix (``ray_tasks{State=...}`` is
``ember_tasks{State=...}``), so a Grafana panel made for Ray needs only the prefix changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ember.dashboard.samples import Usage


@dataclass
class Snapshot:
    """What one scrape shows, gathered from the state API (node ids in hex)."""

    usage: Usage  # live node -> its resources' total and available
    task_counts: Mapping[str, int] = field(default_factory=dict)
    actor_counts: Mapping[str, int] = field(default_factory=dict)
    workers: Mapping[str, int] = field(default_factory=dict)  # node -> worker processes
    store: Mapping[str, Sequence[int]] = field(default_factory=dict)  # node -> [shm, spilled]


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
        yield GaugeMetricFamily(
            "ember_cluster_active_nodes", "Nodes alive in the cluster.", value=len(snap.usage)
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
        for node_id, use in sorted(snap.usage.items()):
            total, available = use["total"], use["available"]
            for name, amount in sorted(total.items()):
                if name.startswith("node:"):
                    continue
                resources.add_metric([name, "TOTAL", node_id], amount)
                resources.add_metric([name, "USED", node_id], amount - available.get(name, amount))
            shm, spilled = snap.store.get(node_id, (0, 0))
            store.add_metric(["MMAP_SHM", node_id], shm)
            store.add_metric(["SPILLED", node_id], spilled)
            workers.add_metric([node_id], snap.workers.get(node_id, 0))
        yield resources
        yield store
        yield workers


def cluster_text(snapshot: Snapshot) -> bytes:
    """The Prometheus text of ``snapshot``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)
