"""The dashboard's life as a process: started by ``init()`` (and a test cluster's head) without
slowing it, at the URL it returns, on the port asked for; refused without the token on a
cluster; ended by ``shutdown()``; and its crash leaves the node running."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

import ember
from ember.testing import Cluster
from tests._helpers import wait_until

pytestmark = pytest.mark.ember_only


def _get(url: str, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    """One GET (redirects not followed); the response is read in full."""
    where = urlsplit(url if "://" in url else f"http://{url}")
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=60)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    conn.close()
    return response


def _json(url: str, path: str, headers: dict[str, str] | None = None) -> Any:
    response = _get(url, path, headers)
    assert response.status == 200, (response.status, response.body)  # type: ignore[attr-defined]
    return json.loads(response.body)  # type: ignore[attr-defined]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dashboards() -> list[psutil.Process]:
    """This test's dashboard processes (children of this process)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            command = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "ember::dashboard" in command or "ember.dashboard" in command:
            found.append(proc)
    return found


def test_init_serves_the_dashboard_at_the_url_it_returns(start_ember: Callable[..., Any]) -> None:
    ctx = ember.init(num_cpus=1)
    url = ctx.dashboard_url
    assert url and ctx.address_info["webui_url"] == url
    assert url.startswith("127.0.0.1:"), url

    @ember.remote
    def double(x: int) -> int:
        return 2 * x

    assert ember.get(double.remote(21)) == 42
    page = wait_until(lambda: _get(url, "/"), 30, "the dashboard to answer", until=lambda r: r)
    assert page.status == 200 and b"Ember dashboard" in page.body  # type: ignore[attr-defined]
    assert _get(url, "/static/app.js").status == 200
    nodes = _json(url, "/api/v0/nodes")["data"]["result"]
    assert nodes["total"] == 1 and nodes["result"][0]["state"] == "ALIVE"
    assert nodes["result"][0]["resources_total"]["CPU"] == 1
    history = wait_until(
        lambda: _json(url, "/api/ember/history")["samples"], 10, "a sample of the cluster"
    )
    assert history[-1]["resources"]["cpu"][1] == 1
    metrics = _get(url, "/metrics").body.decode()  # type: ignore[attr-defined]
    assert "ember_cluster_active_nodes 1.0" in metrics
    assert 'ember_resources{Name="CPU"' in metrics
    # The timeline draws each worker's finished runs ("task_runs"), not detailed tasks.
    wait_until(
        lambda: _json(url, "/api/ember/task_runs")["data"]["result"]["result"],
        20,
        "the run of double for the timeline",
        until=lambda workers: any(str(x).endswith(".double") for w in workers for x in w["runs"]),
    )
    bad = _get(url, "/api/v0/tasks?limit=0")
    assert bad.status == 400 and b"limit" in bad.body  # type: ignore[attr-defined]
    assert _get(url, "/static/../__main__.py").status == 404


def test_dashboard_port_given_is_used_or_refused(start_ember: Callable[..., Any]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"127.0.0.1:{port}.*dashboard_port"):
            ember.init(num_cpus=1, dashboard_port=port)
    assert not ember.is_initialized()
    port = _free_port()
    ctx = ember.init(num_cpus=1, dashboard_port=port)
    assert ctx.dashboard_url == f"127.0.0.1:{port}"
    assert _get(ctx.dashboard_url, "/").status == 200


def test_default_port_taken_falls_back_to_a_free_one(start_ember: Callable[..., Any]) -> None:
    """As Ray's init(): 8265, or the next free port (here 8265 is held, by us or another)."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        holder.bind(("127.0.0.1", 8265))
        holder.listen(1)
    except OSError:
        pass  # taken already: the same test
    try:
        ctx = ember.init(num_cpus=1)
    finally:
        holder.close()
    port = int(ctx.dashboard_url.rsplit(":", 1)[1])
    assert 8265 < port < 8265 + 100
    assert _get(ctx.dashboard_url, "/").status == 200


def test_include_dashboard_false_starts_none(start_ember: Callable[..., Any]) -> None:
    ctx = ember.init(num_cpus=1, include_dashboard=False)
    assert ctx.dashboard_url == "" and not _dashboards()


def test_dashboard_options_refused_where_they_mean_nothing() -> None:
    with pytest.raises(ValueError, match="local_mode"):
        ember.init(local_mode=True, include_dashboard=True)
    with pytest.raises(ValueError, match="dashboard_port"):
        ember.init(address="127.0.0.1:1", dashboard_port=8265)
    with pytest.raises(ValueError, match="dashboard_port must be a port number"):
        ember.init(num_cpus=1, dashboard_port=70000)
    # (an address of the documentation range, TEST-NET-2: on no host)
    with pytest.raises(ValueError, match="198.51.100.7:.*an address of this host"):
        ember.init(num_cpus=1, dashboard_host="198.51.100.7")
    assert not ember.is_initialized()


def test_shutdown_ends_the_dashboard(start_ember: Callable[..., Any]) -> None:
    ember.init(num_cpus=1)
    (board,) = _dashboards()
    ember.shutdown()
    assert not board.is_running()


def test_a_crashed_dashboard_leaves_the_node_running(start_ember: Callable[..., Any]) -> None:
    ctx = ember.init(num_cpus=1)
    assert _get(ctx.dashboard_url, "/").status == 200  # (its web server loaded)
    (board,) = _dashboards()
    os.kill(board.pid, signal.SIGKILL)
    board.wait(timeout=10)

    @ember.remote
    def one() -> int:
        return 1

    assert ember.get([one.remote() for _ in range(4)], timeout=30) == [1] * 4


def test_a_dashboard_ends_with_its_node() -> None:
    """A head killed outright takes its dashboard with it (it watches the node)."""
    with Cluster(initialize_head=True, head_node_args={"include_dashboard": True}) as cluster:
        assert cluster.head is not None
        board = cluster.head.node.dashboard
        assert board is not None
        cluster.head._signal(signal.SIGKILL)
        board.proc.wait(timeout=30)


def test_cluster_dashboard_asks_for_the_token() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"include_dashboard": True})
    try:
        login = cluster.dashboard_url
        assert login.endswith(f"/?token={cluster.token}")
        base = login.split("/?")[0]
        for path in ("/", "/api/v0/nodes", "/metrics", "/static/app.js"):
            refused = _get(base, path)
            assert refused.status == 401, path
            assert b"token" in refused.body  # type: ignore[attr-defined]
        wrong = _get(base, "/", {"Cookie": "ember_dashboard_token=nottheone"})
        assert wrong.status == 401
        assert _get(base, "/?token=nottheone").status == 401
        # The login link keeps the token as a cookie and takes it out of the address bar.
        redirect = _get(base, f"/?token={cluster.token}")
        assert redirect.status == 302 and redirect.getheader("Location") == "/"
        cookie = redirect.getheader("Set-Cookie") or ""
        assert cookie.startswith(f"ember_dashboard_token={cluster.token}")
        assert "HttpOnly" in cookie
        page = _get(base, "/", {"Cookie": cookie.split(";")[0]})
        assert page.status == 200
        nodes = _json(base, "/api/v0/nodes", {"Authorization": f"Bearer {cluster.token}"})
        assert nodes["data"]["result"]["result"][0]["is_head_node"]
        # A driver that joins the cluster on the head's host is told where its dashboard is.
        assert cluster.connect().dashboard_url == base.removeprefix("http://")
        board = cluster.head.node.dashboard if cluster.head else None
        assert board is not None
    finally:
        cluster.shutdown()
    assert board.proc.poll() is not None


def test_the_logs_page_reads_a_workers_lines_without_markers_by_byte_offset(
    start_ember: Callable[..., Any],
) -> None:
    url = ember.init(num_cpus=1).dashboard_url

    @ember.remote
    def say(text: str) -> None:
        print(text)

    ember.get(say.remote("héllo from a task"))

    def worker_file() -> Any:
        rows = _json(url, "/api/v0/logs?glob=worker-*")["data"]["result"]
        return next((r for r in rows if r["size"] > 0), None)

    row = wait_until(worker_file, 30, "the worker's log file")
    query = f"node_id={row['node_id']}&filename={row['name']}&offset=-1"
    piece = wait_until(
        lambda: _json(url, f"/api/v0/logs/file?{query}"),
        30,
        "the task's line in its worker's log",
        until=lambda p: "héllo from a task" in p["data"],
    )
    assert ":task_id:" not in piece["data"]  # (the markers are for `ember logs task`)
    # The page reads on from `next`, in bytes: "é" is two bytes but one character.
    assert piece["next"] == piece["size"] and piece["next"] > piece["offset"]
    follow = f"node_id={row['node_id']}&filename={row['name']}&offset={piece['next']}"
    assert _json(url, f"/api/v0/logs/file?{follow}")["data"] == ""
