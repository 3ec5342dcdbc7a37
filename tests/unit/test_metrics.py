"""User metrics: a process's buffer, a node's table and the Prometheus text, with plain values."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ember._core.metrics import COUNTER, GAUGE, HISTOGRAM, MetricsBuffer, MetricsTable
from ember._protocol import messages as m
from ember._runtime import metrics as process_metrics
from ember._runtime.client.core_client import CoreClient
from ember._runtime.metrics_export import exposition

A, B = b"process-a", b"process-b"


def counter(name: str, value: float, tags: tuple[tuple[str, str], ...] = ()) -> m.MetricPoint:
    return m.MetricPoint(COUNTER, name, "help", tags, value)


def gauge(name: str, value: float, tags: tuple[tuple[str, str], ...] = ()) -> m.MetricPoint:
    return m.MetricPoint(GAUGE, name, "", tags, value)


def histogram(name: str, total: float, counts: list[int]) -> m.MetricPoint:
    return m.MetricPoint(HISTOGRAM, name, "", (), total, (1.0, 10.0), counts)


def by_name(rows: list[dict[str, Any]]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    return {(r["name"], tuple(sorted(r["tags"].items()))): r for r in rows}


# ---- the process's buffer -------------------------------------------------------------------


def test_buffer_reports_totals_of_what_changed_once() -> None:
    buf = MetricsBuffer()
    buf.inc("c", "help", (("k", "v"),), 1.0)
    buf.inc("c", "help", (("k", "v"),), 2.5)
    buf.set("g", "", (), 4.0)
    buf.set("g", "", (), -1.0)
    buf.observe("h", "", (1.0, 10.0), (), 0.5)
    buf.observe("h", "", (1.0, 10.0), (), 1.0)  # (a bound is in its own bucket, as in Prometheus)
    buf.observe("h", "", (1.0, 10.0), (), 50.0)
    points, dropped = buf.take()
    assert dropped == 0
    assert sorted(points) == [
        m.MetricPoint(COUNTER, "c", "help", (("k", "v"),), 3.5, (), []),
        m.MetricPoint(GAUGE, "g", "", (), -1.0, (), []),
        m.MetricPoint(HISTOGRAM, "h", "", (), 51.5, (1.0, 10.0), [2, 0, 1]),
    ]
    assert buf.take() == ([], 0)  # nothing changed since
    buf.inc("c", "help", (("k", "v"),), 1.0)
    assert buf.take()[0] == [m.MetricPoint(COUNTER, "c", "help", (("k", "v"),), 4.5, (), [])]


def test_buffer_is_bounded_and_counts_what_it_drops() -> None:
    buf = MetricsBuffer(max_series=2)
    for i in range(5):
        buf.inc("c", "", (("i", str(i)),), 1.0)
    buf.set("c", "", (("i", "0"),), 1.0)  # another kind under a counter's name and tags
    points, dropped = buf.take()
    assert len(points) == 2 and dropped == 4
    assert buf.take() == ([], 0)  # (each drop is reported once)


def test_a_report_is_sent_before_a_newer_one_can_be_taken() -> None:
    """The periodic report (reactor thread) and ``close()`` (user thread) both report. Were a
    report taken under the lock but sent after it, the other thread could take and send a
    newer one in between, and the node would keep the older one, which came last."""
    sent: list[tuple[float, bool]] = []

    def send(report: m.MetricsReport) -> None:
        sent.append((report.points[0].value, process_metrics.lock.locked()))

    client: Any = SimpleNamespace(node=SimpleNamespace(closed=False, send=send))
    try:
        for _ in range(2):
            with process_metrics.lock:
                process_metrics.buffer.inc("calls", "", (), 1.0)
            CoreClient.report_metrics(client)
        CoreClient.report_metrics(client)  # (nothing changed: nothing sent)
    finally:
        with process_metrics.lock:
            process_metrics.buffer.clear()
    assert sent == [(1.0, True), (2.0, True)]


# ---- the node's table -----------------------------------------------------------------------


def test_counters_add_up_over_processes_and_a_report_sent_twice_counts_once() -> None:
    table = MetricsTable()
    table.report(A, [counter("c", 2.0)])
    table.report(A, [counter("c", 2.0)])
    table.report(B, [counter("c", 5.0)])
    assert by_name(table.rows())[("c", ())]["value"] == 7.0
    table.report(A, [counter("c", 3.0)])  # (totals, not increments)
    assert by_name(table.rows())[("c", ())]["value"] == 8.0


def test_what_an_ended_process_counted_stays_and_its_gauges_go() -> None:
    table = MetricsTable()
    table.report(A, [counter("c", 2.0), gauge("g", 1.0), histogram("h", 5.0, [0, 1, 0])])
    table.report(B, [histogram("h", 100.0, [0, 0, 1])])
    table.process_gone(A)
    table.report(b"process-a-restarted", [counter("c", 1.0)])
    rows = by_name(table.rows())
    assert ("g", ()) not in rows
    assert rows[("c", ())]["value"] == 3.0
    assert rows[("h", ())]["counts"] == [0, 1, 1] and rows[("h", ())]["value"] == 105.0
    table.process_gone(B)
    assert by_name(table.rows())[("h", ())]["counts"] == [0, 1, 1]


def test_a_gauge_is_the_value_set_last_by_any_process() -> None:
    table = MetricsTable()
    table.report(A, [gauge("g", 1.0, (("k", "x"),))])
    table.report(B, [gauge("g", 2.0, (("k", "x"),))])
    table.report(A, [gauge("g", 3.0, (("k", "y"),))])
    rows = by_name(table.rows())
    assert rows[("g", (("k", "x"),))]["value"] == 2.0
    assert rows[("g", (("k", "y"),))]["value"] == 3.0
    table.process_gone(B)  # the last value set by a process still there
    assert by_name(table.rows())[("g", (("k", "x"),))]["value"] == 1.0


def test_a_name_keeps_the_kind_and_boundaries_it_was_first_reported_with() -> None:
    table = MetricsTable()
    table.report(A, [counter("x", 1.0), histogram("h", 1.0, [1, 0, 0])])
    other_bounds = m.MetricPoint(HISTOGRAM, "h", "", (("k", "v"),), 1.0, (2.0,), [1, 0])
    table.report(B, [gauge("x", 1.0, (("k", "v"),)), other_bounds])
    assert table.dropped == 2
    assert [(r["name"], r["type"]) for r in table.rows()] == [("x", COUNTER), ("h", HISTOGRAM)]


def test_the_table_is_bounded_and_counts_what_it_drops() -> None:
    table = MetricsTable(max_series=2, max_entries=3)
    table.report(A, [counter("c", 1.0, (("i", str(i)),)) for i in range(3)], dropped=5)
    assert len(table.rows()) == 2 and table.dropped == 6  # (5 the process could not keep)
    table.report(B, [counter("c", 1.0, (("i", "0"),)), counter("c", 1.0, (("i", "1"),))])
    assert table.dropped == 7  # no room for a fourth (series, process)
    table.process_gone(A)
    table.report(B, [counter("c", 2.0, (("i", "1"),))])
    assert by_name(table.rows())[("c", (("i", "1"),))]["value"] == 3.0


def test_a_gauge_series_with_no_process_left_is_forgotten_with_its_name() -> None:
    table = MetricsTable(max_series=1)
    table.report(A, [gauge("g", 1.0)])
    table.process_gone(A)
    table.report(B, [counter("g", 1.0)])  # the name is free again, and there is room
    assert [(r["name"], r["type"], r["value"]) for r in table.rows()] == [("g", COUNTER, 1.0)]
    assert table.dropped == 0


# ---- the Prometheus text --------------------------------------------------------------------


def node_rows(table: MetricsTable, node_id: str) -> list[dict[str, Any]]:
    node = {"node_id": node_id, "node_ip": "10.0.0.1", "dropped": table.dropped}
    return [{**row, **node} for row in table.rows()]


def test_exposition_parses_back_with_prefix_tags_and_node() -> None:
    one, two = MetricsTable(), MetricsTable()
    one.report(A, [counter("requests", 3.0, (("route", "/a"),)), gauge("depth", -2.0)])
    one.report(A, [histogram("latency", 12.5, [1, 1, 1])])
    two.report(B, [counter("requests", 4.0, (("route", "/a"), ("extra-key", "x")))])
    text = exposition(node_rows(one, "n1") + node_rows(two, "n2")).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == {
        "ember_requests",
        "ember_depth",
        "ember_latency",
        "ember_user_metrics_dropped",
    }

    requests = families["ember_requests"]
    assert requests.type == "counter" and requests.documentation == "help"
    samples = {(s.labels["NodeId"], s.labels["extra_key"]): s for s in requests.samples}
    assert samples[("n1", "")].value == 3.0 and samples[("n2", "x")].value == 4.0
    assert samples[("n1", "")].name == "ember_requests_total"
    assert samples[("n1", "")].labels["route"] == "/a"
    assert samples[("n1", "")].labels["NodeAddress"] == "10.0.0.1"

    assert [s.value for s in families["ember_depth"].samples] == [-2.0]
    latency = {(s.name, s.labels.get("le")): s.value for s in families["ember_latency"].samples}
    assert latency == {
        ("ember_latency_bucket", "1.0"): 1.0,
        ("ember_latency_bucket", "10.0"): 2.0,
        ("ember_latency_bucket", "+Inf"): 3.0,
        ("ember_latency_count", None): 3.0,
        ("ember_latency_sum", None): 12.5,
    }


def test_exposition_keeps_one_kind_per_name_across_nodes() -> None:
    one, two = MetricsTable(), MetricsTable()
    one.report(A, [counter("x", 1.0)])
    two.report(B, [gauge("x", 9.0)])
    text = exposition(node_rows(one, "n1") + node_rows(two, "n2")).decode()
    x, dropped = text_string_to_metric_families(text)
    assert x.type == "counter" and [s.value for s in x.samples] == [1.0]
    assert {s.labels["NodeId"]: s.value for s in dropped.samples} == {"n1": 0.0, "n2": 0.0}


def test_exposition_of_nothing_is_empty() -> None:
    assert exposition([]) == b""


@pytest.mark.parametrize("kind", [COUNTER, GAUGE])
def test_exposition_of_a_series_without_tags(kind: str) -> None:
    table = MetricsTable()
    table.report(A, [m.MetricPoint(kind, "plain", "", (), 1.0)])
    family, _ = text_string_to_metric_families(exposition(node_rows(table, "n")).decode())
    assert family.type == kind


def test_exposition_shows_what_each_node_dropped() -> None:
    table = MetricsTable(max_series=1)
    table.report(A, [counter("a", 1.0), counter("b", 1.0)], dropped=2)
    families = {
        f.name: f
        for f in text_string_to_metric_families(exposition(node_rows(table, "n")).decode())
    }
    [sample] = families["ember_user_metrics_dropped"].samples
    assert sample.name == "ember_user_metrics_dropped_total" and sample.value == 3.0
