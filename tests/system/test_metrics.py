"""User metrics (``ember.util.metrics``): Ray's API and errors, and what the nodes keep of
what drivers, tasks and actors recorded."""

from __future__ import annotations

from typing import Any

import pytest

from ember.util.metrics import Counter, Gauge, Histogram
from tests._helpers import wait_until

# ---- Ray's arguments and errors (no cluster needed) -----------------------------------------


def test_a_metric_needs_a_name_and_a_tuple_of_str_tag_keys():
    with pytest.raises(ValueError, match="Empty name is not allowed"):
        Counter("")
    with pytest.raises(TypeError, match="tag_keys should be a tuple type"):
        Counter("c", tag_keys=["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Tag keys must be str"):
        Gauge("g", tag_keys=(1,))  # type: ignore[arg-type]


def test_a_name_prometheus_refuses_is_a_warning_and_the_metric_records_nothing():
    with pytest.warns(UserWarning, match="Invalid metric name: 1st"):
        metric = Counter("1st")
    metric.inc()  # (discarded)


def test_default_tags_name_declared_keys_with_str_values():
    counter = Counter("requests", description="d", tag_keys=("route",))
    with pytest.raises(ValueError, match="Unrecognized tag key other."):
        counter.set_default_tags({"other": "x"})
    with pytest.raises(TypeError, match="Tag values must be str"):
        counter.set_default_tags({"route": 1})  # type: ignore[dict-item]
    assert counter.set_default_tags({"route": "/"}) is counter
    assert counter.info == {
        "name": "requests",
        "description": "d",
        "tag_keys": ("route",),
        "default_tags": {"route": "/"},
    }


def test_a_record_gives_every_tag_key_and_a_number():
    counter = Counter("calls", tag_keys=("a", "b"))
    with pytest.raises(ValueError, match=r"Missing value for tag key\(s\): a,b\."):
        counter.inc()
    with pytest.raises(ValueError, match=r"Missing value for tag key\(s\): b\."):
        counter.inc(tags={"a": "x"})
    with pytest.raises(TypeError, match="Tag values must be str"):
        counter.inc(tags={"a": "x", "b": 2})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="value must be >0, got 0"):
        counter.inc(0)
    with pytest.raises(TypeError, match="value must be int or float"):
        counter.inc("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value must be int or float"):
        Gauge("level").set("high")  # type: ignore[arg-type]
    Gauge("level").set(None)  # (nothing)
    counter.inc(2, tags={"a": "x", "b": "y"})


def test_a_histogram_needs_positive_boundaries():
    with pytest.raises(ValueError, match="boundaries argument should be provided"):
        Histogram("latency")
    with pytest.raises(ValueError, match="Invalid `boundaries` argument at index 1"):
        Histogram("latency", boundaries=[1.0, 0.0])
    histogram = Histogram("latency", boundaries=[0.5, 2.0], tag_keys=("k",))
    assert histogram.info["boundaries"] == [0.5, 2.0] and histogram.boundaries == [0.5, 2.0]
    with pytest.raises(ValueError, match="Missing value for tag key"):
        histogram.observe(1.0)


def test_a_bad_record_in_a_task_fails_the_task_with_rays_error(ray):
    @ray.remote
    def record():
        Counter("in_task", tag_keys=("k",)).inc()

    with pytest.raises(ValueError, match=r"Missing value for tag key\(s\): k\."):
        ray.get(record.remote())


# ---- what the nodes keep (Ember's state query) ----------------------------------------------


def metric_rows(name: str) -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
    from ember._api.state import query

    rows = query("metrics", filters=[("name", "=", name)], limit=1000).rows
    return {tuple(sorted(r["tags"].items())): r for r in rows}


@pytest.mark.ember_only
def test_driver_task_and_actor_metrics_reach_the_node_with_their_tags(ray):
    requests = Counter("requests", description="calls made", tag_keys=("where",))
    requests.set_default_tags({"where": "driver"})
    level = Gauge("level", tag_keys=("where",))
    latency = Histogram("latency", boundaries=[1.0, 10.0], tag_keys=("where",))

    @ray.remote
    def task(n):
        for _ in range(n):
            requests.inc(tags={"where": "task"})  # (default tags come along with the metric)
        latency.observe(5.0, tags={"where": "task"})

    @ray.remote
    class Recorder:
        def record(self, value):
            level.set(value, tags={"where": "actor"})
            requests.inc(2.5, tags={"where": "actor"})

    requests.inc()
    requests.inc()
    latency.observe(0.5, tags={"where": "driver"})
    latency.observe(50.0, tags={"where": "driver"})
    ray.get([task.remote(3), task.remote(4)])
    actor = Recorder.remote()
    ray.get(actor.record.remote(7))
    ray.get(actor.record.remote(-3))

    def counted(rows):
        return {tags[0][1]: row["value"] for tags, row in rows.items()}

    wait_until(
        lambda: metric_rows("requests"),
        10,
        "the requests of driver, tasks and actor",
        until=lambda rows: counted(rows) == {"driver": 2.0, "task": 7.0, "actor": 5.0},
    )
    assert {r["type"] for r in metric_rows("requests").values()} == {"counter"}
    assert next(iter(metric_rows("requests").values()))["description"] == "calls made"
    gauges = wait_until(lambda: metric_rows("level"), 10, "the actor's gauge")
    assert counted(gauges) == {"actor": -3.0}
    hist = wait_until(lambda: metric_rows("latency"), 10, "both", until=lambda rows: len(rows) == 2)
    assert hist[(("where", "driver"),)]["counts"] == [1, 0, 1]
    assert hist[(("where", "task"),)]["counts"] == [0, 2, 0]
    assert hist[(("where", "task"),)]["value"] == 10.0
    assert hist[(("where", "task"),)]["boundaries"] == [1.0, 10.0]
    node_id = ray.get_runtime_context().get_node_id()
    assert {r["node_id"] for r in hist.values()} == {node_id}


@pytest.mark.ember_only
def test_an_ended_actors_counts_stay_and_its_gauges_go(ray):
    @ray.remote
    class Recorder:
        def record(self):
            Counter("done").inc(3)
            Gauge("busy").set(1)

    actor = Recorder.remote()
    ray.get(actor.record.remote())
    wait_until(lambda: metric_rows("busy"), 10, "the actor's gauge")
    ray.kill(actor)
    wait_until(lambda: not metric_rows("busy"), 10, "the gauge gone with its actor")
    assert [r["value"] for r in metric_rows("done").values()] == [3.0]


@pytest.mark.ember_only
def test_every_nodes_metrics_in_one_answer_and_as_prometheus_text(make_cluster):
    from prometheus_client.parser import text_string_to_metric_families

    from ember._api.state import query
    from ember._runtime.metrics_export import exposition

    make_cluster({"num_cpus": 1, "resources": {"head": 1}}, {"num_cpus": 1, "resources": {"w": 1}})
    import ember

    @ember.remote
    def record(where):
        Counter("runs", tag_keys=("where",)).inc(tags={"where": where})
        return ember.get_runtime_context().get_node_id()

    nodes = ember.get(
        [
            record.options(resources={"head": 1}).remote("head"),
            record.options(resources={"w": 1}).remote("worker"),
        ]
    )
    rows = wait_until(
        lambda: query("metrics", filters=[("name", "=", "runs")]).rows,
        10,
        "a row from each node",
        until=lambda rows: len(rows) == 2,
    )
    assert {r["tags"]["where"]: r["node_id"] for r in rows} == dict(
        zip(["head", "worker"], nodes, strict=True)
    )
    families = {f.name: f for f in text_string_to_metric_families(exposition(rows).decode())}
    runs = {s.labels["where"]: s for s in families["ember_runs"].samples}
    assert runs["head"].name == "ember_runs_total" and runs["head"].value == 1.0
    assert {s.labels["NodeId"] for s in runs.values()} == set(nodes)


@pytest.mark.ember_only  # (Ray leaves the default tags behind, and the record fails there)
def test_a_metric_sent_to_a_task_keeps_its_default_tags(ray):
    sent = Counter("sent", tag_keys=("k",)).set_default_tags({"k": "v"})

    @ray.remote
    def record():
        sent.inc()

    ray.get(record.remote())
    rows = wait_until(lambda: metric_rows("sent"), 10, "the task's count")
    assert {tags: row["value"] for tags, row in rows.items()} == {(("k", "v"),): 1.0}


@pytest.mark.ember_only  # (Ray leaves the order to its exporter)
def test_histogram_boundaries_increase():
    with pytest.raises(ValueError, match="must be in increasing order"):
        Histogram("latency", boundaries=[2.0, 1.0])
