"""Logs of real processes: ``ember.util.state.get_log`` / ``list_logs`` and ``ember logs``.

Each test prints from tasks and actors and reads the lines back through the control store
and the node that has the file; the CLI runs as a subprocess against a cluster of two nodes.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from typing import Any

import pytest

import ember
from ember.util.state import get_log, list_logs
from tests._helpers import wait_until

pytestmark = pytest.mark.ember_only  # (Ray reads logs through its dashboard's HTTP server)

CLI = [sys.executable, "-m", "ember.cli.main"]
WAIT = 30.0


@ember.remote
def say(text: str) -> tuple[str, int]:
    print(text)
    return ember.get_runtime_context().get_task_id(), os.getpid()


@ember.remote
class Talker:
    def say(self, text: str) -> int:
        print(text, flush=True)
        return os.getpid()


def _lines(**where: Any) -> list[str]:
    return [line.rstrip("\n") for line in get_log(**where)]


def _task_lines(task_id: str) -> list[str] | None:
    """The task's lines, or None while no record says which worker ran it (records reach
    their node in batches)."""
    try:
        return _lines(task_id=task_id)
    except ValueError as e:
        if "no worker is known to have run" not in str(e):
            raise
        return None


def test_a_task_shows_only_its_own_lines(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1})  # (one worker runs both tasks)
    first, pid = ember.get(say.remote("first task's line"))
    _, same_pid = ember.get(say.remote("second task's line"))
    assert pid == same_pid
    lines = wait_until(lambda: _task_lines(first), WAIT, "the task's record and its line")
    assert lines == [f"(say pid={pid}) first task's line"]
    assert [line.split(") ", 1)[1] for line in _lines(pid=pid)] == [
        "first task's line",
        "second task's line",
    ]
    by_cli = _cli(cluster, "task", "--id", first)
    assert (by_cli.returncode, by_cli.stdout) == (0, f"(say pid={pid}) first task's line\n")


def test_an_actor_and_a_worker_by_pid_with_tail(start_ember: Any) -> None:
    start_ember(num_cpus=1)
    talker = Talker.remote()
    pid = ember.get([talker.say.remote(f"line {i}") for i in range(5)])[-1]
    actor_id = talker._actor_id.hex()
    lines = _lines(actor_id=actor_id)
    assert [line.split(") ", 1)[1] for line in lines] == [f"line {i}" for i in range(5)]
    assert _lines(pid=pid, tail=2) == lines[-2:]
    groups = list_logs()
    assert "node.log" in groups["node"]
    assert any(name.endswith(f"-{pid}.log") for name in groups["worker"]), groups
    with pytest.raises(ValueError, match="no log file of nothing.log on any live node"):
        list(get_log(filename="nothing.log"))
    # The command finds this init() session on its own, as `ember list` does.
    by_cli = subprocess.run(
        [*CLI, "logs", "actor", "--id", actor_id, "--tail", "2"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert (by_cli.returncode, by_cli.stdout.splitlines()) == (0, lines[-2:]), by_cli.stderr


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ({"filename": "../../etc/passwd"}, "outside the log folder"),
        ({"filename": "/etc/passwd"}, "absolute path"),
        ({"filename": "node.log", "pid": 1}, "exactly one of"),
        ({"actor_id": "not hex"}, "actor_id must be an id in hex"),
        ({"pid": "12x"}, "pid must be a process id"),
        ({"filename": "node.log", "tail": 0}, "tail must be"),
    ],
)
def test_bad_requests_are_refused_at_the_call(where: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        get_log(**where)  # (before anything is asked of a cluster: none runs here)


# ------------------------------------------------------------------ the CLI on a cluster


def _cli(cluster: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "logs", *args, "--address", cluster.address, "--token", cluster.token],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


def test_cli_lists_each_node_and_reads_a_file_on_the_second(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"far": 1}})
    far_node = cluster.nodes[1].node_id
    talker = Talker.options(resources={"far": 1}).remote()
    pid = ember.get(talker.say.remote("printed on the second node"))

    listing = _cli(cluster)
    assert listing.returncode == 0, listing.stderr
    for node in cluster.nodes:
        assert f"node {node.node_id}:" in listing.stdout
    assert "control_store.log" in listing.stdout
    assert f"-{pid}.log  (actor {talker._actor_id.hex()})" in listing.stdout

    by_actor = _cli(cluster, "actor", "--id", talker._actor_id.hex())
    assert by_actor.returncode == 0, by_actor.stderr
    assert by_actor.stdout == f"(Talker pid={pid}) printed on the second node\n"
    by_pid = _cli(cluster, "worker", "--pid", str(pid), "--node-id", far_node[:8])
    assert by_pid.stdout == by_actor.stdout

    bad = _cli(cluster, "../../etc/passwd")
    assert bad.returncode == 1
    assert "outside the log folder" in bad.stderr
    missing = _cli(cluster, "worker", "--pid", "1")
    assert missing.returncode == 1
    assert "no log file of pid 1" in missing.stderr


def test_cli_follow_prints_lines_written_later(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1})
    talker = Talker.remote()
    ember.get(talker.say.remote("before following"))
    follow = subprocess.Popen(
        [*CLI, "logs", "actor", "--id", talker._actor_id.hex(), "-f", "--interval", "0.05"]
        + ["--address", cluster.address, "--token", cluster.token],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in follow.stdout or ()])
    reader.start()
    try:
        assert lines.get(timeout=WAIT).endswith("before following\n")
        ember.get(talker.say.remote("after following began"))
        assert lines.get(timeout=WAIT).endswith("after following began\n")
    finally:
        follow.terminate()
        follow.wait(timeout=WAIT)
        reader.join(timeout=WAIT)
