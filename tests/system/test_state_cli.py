"""``ember list``, ``get``, ``summary`` and ``memory`` run as subprocesses against an
``init()`` session of this test's process (found through its session record) and against a
cluster named by ``--address``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.ember_only

CLI = [sys.executable, "-m", "ember.cli.main"]


def ember_cli(
    *args: str, ok: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, env=env or dict(os.environ)
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize("command", ["list", "get", "summary", "memory"])
def test_each_command_has_help(command: str) -> None:
    out = ember_cli(command, "--help").stdout
    assert "--address" in out


def test_list_nodes_finds_the_init_session(ray: Any) -> None:
    nodes = json.loads(ember_cli("list", "nodes", "--format", "json").stdout)
    assert [n["node_id"] for n in nodes] == [ray.get_runtime_context().get_node_id()]
    assert nodes[0]["state"] == "ALIVE"
    table = ember_cli("list", "nodes").stdout
    assert "NODE_ID" in table and nodes[0]["node_id"] in table
    limited = ember_cli("list", "workers", "--limit", "1")
    assert "warning: Limit last 1 entries" in limited.stderr and "UserWarning" not in limited.stderr


class Shown:
    def ready(self) -> bool:
        return True


def test_list_get_and_summarize_actors(ray: Any) -> None:
    import yaml

    a = ray.remote(Shown).remote()
    ray.get(a.ready.remote())
    listed = yaml.safe_load(
        ember_cli("list", "actors", "--filter", "class_name=Shown", "--format", "yaml").stdout
    )
    assert [x["actor_id"] for x in listed] == [a._actor_id.hex()]
    shown = yaml.safe_load(ember_cli("get", "actors", a._actor_id.hex()).stdout)
    assert shown["state"] == "ALIVE" and shown["num_restarts"] == 0
    summary = ember_cli("summary", "actors").stdout
    assert "Shown" in summary and "ALIVE: 1" in summary
    missing = ember_cli("get", "actors", "00" * 16, ok=False)
    assert missing.returncode == 1 and "no actor" in missing.stderr


def test_memory_shows_objects_and_holders(ray: Any) -> None:
    ref = ray.put(b"x" * (3 << 20))
    out = ember_cli("memory").stdout
    line = next(line for line in out.splitlines() if line.startswith(ref.hex()))
    assert "3.000 MiB" in line and "LOCAL_REFERENCE" in line and str(os.getpid()) in line
    assert "spilled to disk" in out


def test_a_bad_filter_is_refused(ray: Any) -> None:
    done = ember_cli("list", "nodes", "--filter", "bogus=1", ok=False)
    assert done.returncode == 1 and "bogus" in done.stderr and "not supported" in done.stderr
    done = ember_cli("list", "nodes", "--filter", "state", ok=False)
    assert done.returncode == 1 and "KEY=VALUE" in done.stderr


def test_address_names_a_cluster(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    nodes = json.loads(
        ember_cli("list", "nodes", "--address", cluster.address, "--format", "json").stdout
    )
    assert len(nodes) == 2
    workers = json.loads(
        ember_cli("list", "workers", "--address", cluster.address, "--format", "json").stdout
    )
    assert {w["node_id"] for w in workers} <= {n["node_id"] for n in nodes}


def test_a_cluster_with_no_record_here_is_asked_with_its_token(make_cluster: Any, tmp_path) -> None:
    cluster = make_cluster({"num_cpus": 1})
    elsewhere = {k: v for k, v in os.environ.items() if k not in ("EMBER_TOKEN", "EMBER_ADDRESS")}
    elsewhere["TMPDIR"] = str(tmp_path)  # (no record of the cluster in this one)
    refused = ember_cli("list", "nodes", "--address", cluster.address, ok=False, env=elsewhere)
    assert refused.returncode == 1 and "--token" in refused.stderr
    listed = ember_cli(
        "list",
        "nodes",
        "--address",
        cluster.address,
        "--token",
        cluster.token,
        "--format",
        "json",
        env=elsewhere,
    )
    assert len(json.loads(listed.stdout)) == 1


def test_bad_input_is_refused_by_name(ray: Any) -> None:
    done = ember_cli("list", "nodes", "--address", "foo", ok=False)
    assert done.returncode == 1 and "not HOST:PORT" in done.stderr
    done = ember_cli("list", "nodes", "--limit", str(2**70), ok=False)
    assert done.returncode == 1 and "limit must be" in done.stderr
    assert "KEY>=VALUE" in ember_cli("list", "--help").stdout


def test_an_actor_handle_has_no_size_and_totals_say_when_limited(ray: Any) -> None:
    a = ray.remote(Shown).remote()
    ray.get(a.ready.remote())
    refs = [ray.put(b"x" * (1 << 20)) for _ in range(3)]  # (in the store, not inline)
    listed = ember_cli("list", "objects", "--filter", "reference_type=ACTOR_HANDLE").stdout
    line = next(line for line in listed.splitlines() if "ACTOR_HANDLE" in line)
    assert "-1" not in line and " - " in line
    limited = ember_cli("memory", "--limit", "2").stdout
    assert "of the 2 listed" in limited
    del refs


def test_a_slow_node_is_named_and_a_slow_cluster_said_to_be_slow(make_cluster: Any) -> None:
    import signal

    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1}, node_timeout=60)
    stopped = cluster.nodes[1]
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        done = ember_cli("list", "workers", "--address", cluster.address, "--timeout", "2")
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    assert stopped.node_id in done.stderr and "did not answer" in done.stderr
    store = cluster.control.proc.pid
    os.kill(store, signal.SIGSTOP)
    try:
        done = ember_cli("list", "nodes", "--address", cluster.address, "--timeout", "1", ok=False)
    finally:
        os.kill(store, signal.SIGCONT)
    assert done.returncode == 1 and "too slowly" in done.stderr and "1 s" in done.stderr
