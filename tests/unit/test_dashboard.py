"""The dashboard's parts with plain values: the samples and their ring, the Prometheus text,
and the web server's rules (the token, a listing's arguments) over a fake state source."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ember.dashboard import logs as dashboard_logs
from ember.dashboard import metrics, samples, server
from ember.dashboard.source import Filter, Rows
from ember.util.state.logs import without_markers


def _use(used_cpu: float = 1.0) -> dict[str, dict[str, float]]:
    """A node's entry in the control store's live table: total and available."""
    return {
        "total": {"CPU": 4.0, "memory": 1000.0, "object_store_memory": 500.0, "node:1.2.3.4": 1},
        "available": {"CPU": 4.0 - used_cpu, "memory": 400.0, "object_store_memory": 500.0},
    }


def test_resource_use_adds_up_the_nodes() -> None:
    use = samples.resource_use({"a": _use(), "b": _use(used_cpu=2)})
    assert use["cpu"] == [3.0, 8.0]
    assert use["memory"] == [1200.0, 2000.0]
    assert use["gpu"] == [0.0, 0.0]
    assert use["store_capacity"] == [1000.0]


def test_counts_by_a_field_and_by_a_count_field() -> None:
    rows = [{"state": "FINISHED"}, {"state": "FAILED"}, {"state": "FINISHED"}]
    assert samples.counts(rows, "state") == {"FINISHED": 2, "FAILED": 1}
    summary = [
        {"func_or_class_name": "f", "state": "FINISHED", "count": 5},
        {"func_or_class_name": "g", "state": "FINISHED", "count": 2},
    ]
    assert samples.counts(summary, "state", "count") == {"FINISHED": 7}


def test_store_use_splits_shared_memory_and_spilled_per_node() -> None:
    objects = [
        {"node_id": "a", "object_size": 10, "spilled": False},
        {"node_id": "a", "object_size": 5, "spilled": True},
        {"node_id": "b", "object_size": 7, "spilled": False},
        {"node_id": "b", "object_size": None, "spilled": False},  # (size not known)
    ]
    assert samples.store_use(objects) == {"a": [10, 5], "b": [7, 0]}


def test_a_sample_leaves_out_what_was_not_asked() -> None:
    point = samples.sample(1.0, {"a": _use()}, {}, None)
    assert point["store"] is None and point["tasks"] == {}
    assert point["nodes_alive"] == 1 and point["resources"]["cpu"] == [1.0, 4.0]
    point = samples.sample(2.0, {"a": _use()}, {"RUNNING": 1}, {})
    assert point["store"] == [0, 500.0, 0]


def test_the_history_keeps_the_last_samples_and_gives_what_is_new() -> None:
    history = samples.History(size=3)
    for t in range(5):
        history.add(samples.sample(float(t), {"a": _use()}, {"FINISHED": t}, None), {}, None)
    assert len(history) == 3
    assert [s["time"] for s in history.since()] == [2.0, 3.0, 4.0]
    assert [s["tasks"]["FINISHED"] for s in history.since(3.0)] == [4]
    history.add(samples.sample(5.0, {"a": _use()}, {}, {"a": [1, 2]}), {"a": _use()}, {"a": [1, 2]})
    history.add(samples.sample(6.0, {"a": _use()}, {}, None), {"a": _use()}, None)
    assert history.store == {"a": [1, 2]}  # (kept from the last sample that asked)
    assert history.usage == {"a": _use()}


def test_metrics_text_has_rays_metrics_under_embers_prefix() -> None:
    snap = metrics.Snapshot(
        usage={"n1": _use()},
        task_counts={"FINISHED": 7, "FAILED": 1},
        actor_counts={"ALIVE": 2},
        workers={"n1": 3},
        store={"n1": [600, 42]},
    )
    text = metrics.cluster_text(snap).decode()
    for line in (
        'ember_tasks{State="FINISHED"} 7.0',
        'ember_tasks{State="FAILED"} 1.0',
        'ember_actors{State="ALIVE"} 2.0',
        "ember_cluster_active_nodes 1.0",
        'ember_resources{Name="CPU",NodeId="n1",State="TOTAL"} 4.0',
        'ember_resources{Name="CPU",NodeId="n1",State="USED"} 1.0',
        'ember_object_store_memory{Location="MMAP_SHM",NodeId="n1"} 600.0',
        'ember_object_store_memory{Location="SPILLED",NodeId="n1"} 42.0',
        'ember_workers{NodeId="n1"} 3.0',
    ):
        assert line in text, line
    assert "node:1.2.3.4" not in text


class FakeSource:
    """Answers as the state API would, and remembers what it was asked."""

    address = "127.0.0.1:1"
    token = None

    def __init__(self) -> None:
        self.asked: list[tuple[str, list[Filter] | None, int, bool]] = []

    def query(
        self, kind: str, filters: list[Filter] | None = None, limit: int = 100, detail: bool = False
    ) -> Rows:
        self.asked.append((kind, filters, limit, detail))
        if kind == "task_summary":
            return Rows([{"state": "FAILED", "count": 1}], 1)
        if kind == "metrics":
            return Rows([], 0)
        return Rows([{"task_id": "t1", "state": "FAILED"}], 5, ["one node did not answer"])

    def node_usage(self) -> dict[str, dict[str, dict[str, float]]]:
        return {"n1": _use()}

    def task_counts(self) -> dict[str, int]:
        return {"FAILED": 1}

    def actor_counts(self) -> dict[str, int]:
        return {}

    def store_use(self) -> dict[str, list[int]]:
        return {"n1": [10, 0]}

    def take_sample(self, history: samples.History, watched: bool) -> None:
        store = self.store_use() if watched else None
        history.add(samples.sample(1.0, self.node_usage(), {}, store), self.node_usage(), store)


def _run(token: str | None, check: Any) -> FakeSource:
    source = FakeSource()
    board = server.Dashboard(source, samples.History(), token, lambda: True)  # type: ignore[arg-type]

    async def go() -> None:
        async with TestClient(TestServer(board.app())) as client:
            await check(client)

    asyncio.run(go())
    return source


def test_a_listing_answers_as_rays_dashboard_with_its_arguments() -> None:
    async def check(client: TestClient) -> None:
        response = await client.get(
            "/api/v0/tasks?limit=7&detail=true&filter_keys=state&filter_predicates=%3D"
            "&filter_values=FAILED"
        )
        assert response.status == 200
        body = await response.json()
        assert body["result"] is True
        result = body["data"]["result"]
        assert result["total"] == 5 and result["num_after_truncation"] == 1
        assert result["result"] == [{"task_id": "t1", "state": "FAILED"}]
        assert result["warnings"] == ["one node did not answer"]

    source = _run(None, check)
    assert source.asked == [("tasks", [("state", "=", "FAILED")], 7, True)]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("limit=x", "limit must be a number"),
        ("limit=0", "limit must be from 1"),
        ("filter_keys=state", "as many times each"),
        ("filter_keys=a&filter_predicates=~&filter_values=b", "= or !="),
    ],
)
def test_bad_listing_arguments_are_refused_by_name(query: str, says: str) -> None:
    async def check(client: TestClient) -> None:
        response = await client.get(f"/api/v0/actors?{query}")
        assert response.status == 400
        assert says in (await response.json())["msg"]

    assert _run(None, check).asked == []


def test_with_a_token_only_the_login_link_cookie_or_header_get_in() -> None:
    async def check(client: TestClient) -> None:
        assert (await client.get("/")).status == 401
        assert (await client.get("/api/v0/nodes")).status == 401
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/?token=wrong")).status == 401
        bearer = {"Authorization": "Bearer s3cret"}
        assert (await client.get("/api/v0/nodes", headers=bearer)).status == 200
        login = await client.get("/?token=s3cret", allow_redirects=False)
        assert login.status == 302 and login.headers["Location"] == "/"
        assert "HttpOnly" in login.headers["Set-Cookie"]
        assert (await client.get("/")).status == 200  # (the cookie is kept)
        assert (await client.get("/metrics")).status == 200

    _run("s3cret", check)


def test_the_page_its_files_and_metrics_are_served() -> None:
    async def check(client: TestClient) -> None:
        page = await client.get("/")
        assert page.status == 200 and "Ember dashboard" in await page.text()
        for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
            response = await client.get(f"/static/{name}")
            assert response.status == 200 and response.content_type == kind
        assert (await client.get("/static/nothing.js")).status == 404
        assert (await client.get("/static/__init__.py")).status == 404
        text = await (await client.get("/metrics")).text()
        assert 'ember_tasks{State="FAILED"} 1.0' in text
        history = await (await client.get("/api/ember/history")).json()
        assert history["usage"] == {"n1": _use()}  # (a page starting to watch: sampled now)
        assert history["store"] == {"n1": [10, 0]}

    _run(None, check)


class FakeLogs:
    """``ember.util.state.logs`` as the routes call it."""

    without_markers = staticmethod(without_markers)

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def list_log_files(self, **kwargs: Any) -> tuple[list[dict[str, Any]], list[str]]:
        self.calls.append(("list", kwargs))
        return [{"node_id": "n1", "name": "worker-ab-12.log", "category": "worker"}], []

    def read_log(self, node_id: str, filename: str, offset: int, **kwargs: Any) -> Any:
        self.calls.append(("read", node_id, filename, offset, kwargs["tail_lines"]))
        if filename == "nope.log":
            raise ValueError("no log file nope.log on node n1")
        data = b"hello\n:task_id:ab\n" if offset == 0 else b""
        return SimpleNamespace(data=data, offset=offset or 100, size=118)


def test_the_log_routes_list_files_and_read_a_tail_then_what_follows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeLogs()
    monkeypatch.setattr(dashboard_logs, "_log_api", lambda: fake)

    async def check(client: TestClient) -> None:
        listing = await (await client.get("/api/v0/logs?node_id=n1")).json()
        assert listing["data"]["result"][0]["name"] == "worker-ab-12.log"
        first = await client.get("/api/v0/logs/file?node_id=n1&filename=worker-ab-12.log")
        # (the marker line is left out; `next` is where the next read starts, in bytes)
        want = {"data": "hello\n", "offset": 100, "next": 118, "size": 118}
        assert await first.json() == want
        more = "/api/v0/logs/file?node_id=n1&filename=worker-ab-12.log&offset=118"
        assert (await client.get(more)).status == 200
        missing = await client.get("/api/v0/logs/file?node_id=n1&filename=nope.log")
        assert missing.status == 400 and "nope.log" in await missing.text()
        assert (await client.get("/api/v0/logs/file?offset=x")).status == 400

    _run(None, check)
    assert fake.calls[0] == (
        "list",
        {"node_id": "n1", "glob": "", "address": "127.0.0.1:1", "token": None, "timeout": 10.0},
    )
    assert fake.calls[1] == ("read", "n1", "worker-ab-12.log", 0, 200)  # (the tail first)
    assert fake.calls[2] == ("read", "n1", "worker-ab-12.log", 118, 0)  # (then what follows)


def test_without_log_reading_the_log_routes_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> Any:
        raise ImportError("no module named ember.util.state.logs")

    monkeypatch.setattr(dashboard_logs, "_log_api", missing)

    async def check(client: TestClient) -> None:
        response = await client.get("/api/v0/logs")
        assert response.status == 501 and "cannot read log files" in await response.text()
        assert (await client.get("/")).status == 200  # (the rest is served)

    _run(None, check)
