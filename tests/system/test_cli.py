"""The ``ember`` command (start, stop, status) run for real, as subprocesses.

Every command runs with its own ``TMPDIR`` (this test's ``tmp_path``), so the node records it
reads and writes (``<TMPDIR>/ember/nodes-<uid>/``) are this test's alone, and on a free port.
The ``ember_cli`` fixture remembers every process that ``ember start`` left running (from the
records and their children, and any process with this test's ``TMPDIR``, so an unrecorded
orphan too) and, whatever happens in the test, runs ``ember stop`` at the end and kills by pid
whatever is still left, then fails if anything was.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests._helpers import wait_until

pytestmark = pytest.mark.ember_only

CLI = [sys.executable, "-m", "ember.cli.main"]
COMMAND_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class EmberCLI:
    """Runs ``ember ...`` and drivers with ``TMPDIR`` set to one folder; tracks what started."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = dict(os.environ, TMPDIR=str(tmp))
        for name in ("EMBER_TOKEN", "EMBER_ADDRESS"):
            self.env.pop(name, None)
        self.seen: dict[int, psutil.Process] = {}

    @property
    def records_dir(self) -> Path:
        return self.tmp / f"ember-{os.getuid()}" / "nodes"

    def session_dirs(self) -> list[Path]:
        return sorted((self.tmp / f"ember-{os.getuid()}").glob("s-*"))

    def run(
        self, *args: str, command: list[str] | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [*(command or CLI), *args],
                env=self.env,
                cwd=self.tmp,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        finally:
            self.track()

    def driver(
        self, code: str, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        script = self.tmp / f"driver_{time.monotonic_ns()}.py"
        script.write_text(code)
        return self.run(str(script), command=[sys.executable], timeout=timeout)

    def start_head(self, *extra: str) -> tuple[int, subprocess.CompletedProcess[str]]:
        """``ember start --head`` on a free port (another one if it was taken meanwhile)."""
        for _attempt in range(3):
            port = _free_port()
            out = self.run(
                "start", "--head", "--port", str(port), "--num-cpus", "1",
                "--node-ip-address", "127.0.0.1", *extra,
            )  # fmt: skip
            if out.returncode == 0 or "Address already in use" not in out.stderr:
                return port, out
        return port, out

    def join(self, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1",
            "--node-ip-address", "127.0.0.1", *extra,
        )  # fmt: skip

    def records(self) -> list[dict[str, Any]]:
        if not self.records_dir.is_dir():
            return []
        out = []
        for path in sorted(self.records_dir.glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return out

    def processes(self) -> list[psutil.Process]:
        """The running processes of the recorded nodes (node, control store, workers), and
        any other process started with this test's ``TMPDIR`` (an unrecorded node)."""
        found: dict[int, psutil.Process] = {p.pid: p for p in self.strays()}
        for record in self.records():
            for pid in (record.get("pid"), record.get("control_pid")):
                if not pid:
                    continue
                try:
                    proc = psutil.Process(pid)
                    found[pid] = proc
                    for child in proc.children(recursive=True):
                        found[child.pid] = child
                except psutil.NoSuchProcess:
                    continue
        return [p for p in found.values() if not _gone(p)]

    def strays(self) -> list[psutil.Process]:
        """Processes (other than the commands ``run`` waits for) with this test's ``TMPDIR``."""
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.environ().get("TMPDIR") == str(self.tmp):
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def track(self) -> None:
        for proc in self.processes():
            self.seen.setdefault(proc.pid, proc)


@pytest.fixture
def ember_cli(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EmberCLI]:
    # (Parametrized indirectly, TMPDIR is that folder below tmp_path.)
    tmp = tmp_path / getattr(request, "param", "")
    tmp.mkdir(parents=True, exist_ok=True)
    cli = EmberCLI(tmp)
    try:
        yield cli
    finally:
        cli.track()
        try:
            cli.run("stop", "--grace", "5")
        except Exception:  # whatever happened, kill the leftovers below
            pass
        _, still = psutil.wait_procs([p for p in cli.seen.values() if not _gone(p)], timeout=10)
        left = [p for p in still if not _gone(p)]
        for proc in left:
            try:
                proc.kill()  # psutil refuses if the pid now belongs to another process
            except psutil.Error:
                pass
        psutil.wait_procs(left, timeout=5)
        assert not left, f"processes left after `ember stop`: {[p.pid for p in left]}"


def _started_cluster(cli: EmberCLI) -> int:
    """A head and one node with ``{"x": 1}``; returns the head's port."""
    port, head = cli.start_head()
    assert head.returncode == 0, head.stderr
    node = cli.join(port, "--resources", '{"x": 1}')
    assert node.returncode == 0, node.stderr
    return port


# ---------------------------------------------------------------------------------- help


@pytest.mark.parametrize(
    ("sub", "mentions"),
    [
        ([], ["start", "stop", "status"]),
        (
            ["start"],
            ["--head", "--address", "--port", "--num-cpus", "--num-gpus", "--resources"]
            + ["--node-ip-address", "--token", "--object-store-memory", "--node-timeout"],
        ),
        (["stop"], ["--grace"]),
        (["status"], ["--address", "--token"]),
        (["logs"], ["cluster", "worker", "actor", "task"]),
        (["logs", "task"], ["--id", "--follow", "--tail", "--node-id", "--address"]),
    ],
    ids=["ember", "start", "stop", "status", "logs", "logs-task"],
)
@pytest.mark.parametrize("how", ["module", "script"])
def test_help(tmp_path: Path, sub: list[str], mentions: list[str], how: str) -> None:
    command = CLI
    if how == "script":
        script = shutil.which("ember")
        if script is None:
            pytest.skip("the `ember` console script is not installed (pip install -e .)")
        command = [script]
    out = EmberCLI(tmp_path).run(*sub, "--help", command=command)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: ember"), out.stdout
    for word in mentions:
        assert word in out.stdout, f"{word} missing from `ember {' '.join(sub)} --help`"


# ------------------------------------------------------------------------------ start


def test_head_prints_the_join_command_and_keeps_its_token_private(ember_cli: EmberCLI) -> None:
    port, out = ember_cli.start_head()
    assert out.returncode == 0, out.stderr
    found = re.search(r"ember start --address=(\S+) --token=([0-9a-f]+)", out.stdout)
    assert found, out.stdout
    assert found.group(1) == f"127.0.0.1:{port}"
    token = found.group(2)
    assert len(token) >= 32
    assert "ember.init(address='auto')" in out.stdout and "ember stop" in out.stdout

    (record,) = ember_cli.records()
    assert record["token"] == token and record["is_head"] and record["origin"] == "cli"
    assert record["address"] == f"127.0.0.1:{port}"
    folder = ember_cli.records_dir
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = list(folder.iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    # The node and the control store both run, named for `ps`.
    node, store = psutil.Process(record["pid"]), psutil.Process(record["control_pid"])
    assert (node.name(), node.cmdline()[0]) == ("ember::node", "ember::node")
    assert (store.name(), store.cmdline()[0]) == ("ember::control_store",) * 2


def test_the_records_folder_is_private_even_if_it_was_there_before(ember_cli: EmberCLI) -> None:
    """A records folder found with looser permissions (or another owner) must not be used
    as it is: others could read the records' names, or plant and replace records."""
    ember_cli.records_dir.mkdir(parents=True, mode=0o755)
    ember_cli.records_dir.chmod(0o755)
    _, out = ember_cli.start_head()
    folder = ember_cli.records_dir
    assert out.returncode == 1 or stat.S_IMODE(folder.stat().st_mode) == 0o700, (
        f"records written into a folder with mode {oct(stat.S_IMODE(folder.stat().st_mode))}"
    )


def test_the_token_is_not_on_any_command_line(ember_cli: EmberCLI) -> None:
    """The records are 0600 in a 0700 folder, but /proc/PID/cmdline is readable by every
    user of the host: a token passed there is visible to anyone who runs `ps`."""
    _started_cluster(ember_cli)
    token = ember_cli.records()[0]["token"]
    shown = {}
    for proc in ember_cli.processes():
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if token in cmdline:
            shown[proc.pid] = cmdline[:80]
    assert not shown, f"the cluster's token is on the command line of {shown}"


def test_a_node_joins_with_the_token_of_the_heads_record(ember_cli: EmberCLI) -> None:
    port, head = ember_cli.start_head()
    assert head.returncode == 0, head.stderr
    out = ember_cli.join(port, "--resources", '{"x": 1}')
    assert out.returncode == 0, out.stderr
    assert f"Started a node of the Ember cluster at 127.0.0.1:{port}" in out.stdout
    records = ember_cli.records()
    assert len(records) == 2
    (joined,) = [r for r in records if not r["is_head"]]
    (first,) = [r for r in records if r["is_head"]]
    assert joined["token"] == first["token"] and joined["address"] == first["address"]
    assert joined["control_pid"] is None


def test_status_lists_the_nodes_and_their_resources(ember_cli: EmberCLI) -> None:
    port = _started_cluster(ember_cli)
    out = ember_cli.run("status")
    assert out.returncode == 0, out.stderr
    assert f"Ember cluster at 127.0.0.1:{port}: 2 node(s) alive, 0 dead" in out.stdout
    for record in ember_cli.records():
        assert re.search(
            rf"node {record['node_id'][:12]} at tcp:127\.0\.0\.1:\d+ .*alive", out.stdout
        )
    assert out.stdout.count("CPU: 0/1 in use") == 2
    assert out.stdout.count("x: 0/1 in use") == 1
    # An explicit address (and the token from the records) gives the same table.
    again = ember_cli.run("status", "--address", f"127.0.0.1:{port}")
    assert again.returncode == 0, again.stderr
    assert "2 node(s) alive" in again.stdout


def _status(cli: EmberCLI) -> str:
    out = cli.run("status")
    assert out.returncode == 0, out.stderr
    return out.stdout


WAITING = """
import time
import ember

ember.init(address="auto")

@ember.remote(num_cpus=1)
def hold():
    time.sleep(120)

@ember.remote(num_gpus=1)
class NeedsGPU:
    pass

refs = [hold.remote() for _ in range(3)]
actor = NeedsGPU.remote()
print("SUBMITTED", flush=True)
time.sleep(120)
"""


def test_status_tells_what_waits_by_kind_and_shape(ember_cli: EmberCLI) -> None:
    """Tasks and actors waiting for resources, grouped by what they ask for (in the words
    of someone who submitted tasks, not of the lease protocol)."""
    _, head = ember_cli.start_head()  # 1 CPU, no GPU: one task runs, the rest waits
    assert head.returncode == 0, head.stderr
    script = ember_cli.tmp / "waiting.py"
    script.write_text(WAITING)
    driver = subprocess.Popen(
        [sys.executable, str(script)],
        env=ember_cli.env,
        cwd=ember_cli.tmp,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert driver.stdout is not None
        assert select.select([driver.stdout], [], [], COMMAND_TIMEOUT)[0], "the driver hung"
        assert driver.stdout.readline().strip() == "SUBMITTED"
        waiting = re.compile(r"^    (\d+)\+? tasks? waiting for \{CPU: 1\}$", re.M)
        # the node reports what waits with its next heartbeat
        status = wait_until(
            lambda: _status(ember_cli),
            30,
            "the waiting tasks and actor in the status",
            until=lambda text: (
                waiting.search(text) and "    1 actor waiting for {GPU: 1}\n" in text
            ),
        )
        tasks = waiting.search(status)
        assert tasks is not None
        assert 1 <= int(tasks.group(1)) <= 2  # (a task may queue behind the running one)
        assert "lease" not in status
    finally:
        driver.kill()
        driver.wait()


DRIVER = """
import json
import ember

ember.init(address="auto")

@ember.remote(resources={"x": 1}, num_cpus=0)
def square(n):
    return n * n, ember.get_runtime_context().get_node_id()

out = ember.get([square.remote(n) for n in range(10)], timeout=60)
print("RESULT " + json.dumps(out))
"""


def _result(out: subprocess.CompletedProcess[str]) -> Any:
    assert out.returncode == 0, f"driver failed:\n{out.stdout}\n{out.stderr}"
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, out.stdout
    return json.loads(lines[-1][len("RESULT ") :])


def test_a_driver_runs_a_pinned_task_and_the_cluster_outlives_it(ember_cli: EmberCLI) -> None:
    port = _started_cluster(ember_cli)
    records = ember_cli.records()
    (x_node,) = [r["node_id"] for r in records if not r["is_head"]]
    nodes = {r["pid"] for r in records} | {r["control_pid"] for r in records if r["control_pid"]}

    results = _result(ember_cli.driver(DRIVER))
    assert [value for value, _ in results] == [n * n for n in range(10)]
    assert {node for _, node in results} == {x_node}

    # The driver is gone; the cluster is not.
    assert nodes <= {p.pid for p in ember_cli.processes()}

    def status() -> str:
        text = _status(ember_cli)
        assert f"127.0.0.1:{port}: 2 node(s) alive, 0 dead" in text
        return text

    # the driver's leases go back when it disconnects
    wait_until(status, 15, "x to be free", until=lambda text: "x: 0/1 in use" in text)
    # ... and another driver can use it.
    assert _result(ember_cli.driver(DRIVER)) == results


LABELS_DRIVER = """
import json
import ember

ember.init(address="auto")

@ember.remote(label_selector={"zone": "a", "disk": "!hdd"})
def one():
    return 1

(node,) = ember.nodes()
out = [node["Labels"], node["Resources"]["memory"], ember.get(one.remote())]
print("RESULT " + json.dumps(out))
"""


def test_start_gives_the_node_labels_and_memory(ember_cli: EmberCLI) -> None:
    _, head = ember_cli.start_head("--labels", "zone=a, disk=ssd", "--memory", str(1 << 30))
    assert head.returncode == 0, head.stderr
    labels, memory, one = _result(ember_cli.driver(LABELS_DRIVER))
    assert {k: v for k, v in labels.items() if "/" not in k} == {"zone": "a", "disk": "ssd"}
    assert memory == 1 << 30 and one == 1


@pytest.mark.parametrize(
    ("labels", "says"),
    [("zone", "key=value"), ("{bad json", "JSON"), ('{"zone": "not ok"}', "zone")],
)
def test_bad_labels_are_refused_before_anything_starts(
    ember_cli: EmberCLI, labels: str, says: str
) -> None:
    _, head = ember_cli.start_head("--labels", labels)
    assert head.returncode == 1 and says in head.stderr
    assert ember_cli.records() == []


# ------------------------------------------------------------------------------- stop

DETACHED = """
import os
import ember

ember.init(address="auto", namespace="cli-test")

@ember.remote(resources={"x": 1})
class Keeper:
    def pid(self):
        return os.getpid()

keeper = Keeper.options(name="keeper", lifetime="detached").remote()
print("RESULT", ember.get(keeper.pid.remote(), timeout=60))
"""


def test_stop_ends_exactly_what_start_started(
    ember_cli: EmberCLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _started_cluster(ember_cli)
    # A detached actor keeps a worker of the x node running after its driver is gone.
    actor_pid = _result(ember_cli.driver(DETACHED))
    records = ember_cli.records()
    started = ember_cli.processes()
    pids = {p.pid for p in started}
    recorded = {r["pid"] for r in records} | {r["control_pid"] for r in records}
    assert recorded - {None} <= pids
    assert actor_pid in pids
    shm_dirs = [r["shm_dir"] for r in records]
    assert all(os.path.isdir(d) for d in shm_dirs)

    # Not started by `ember start`: a plain process of ours, and a test cluster recorded in
    # the same folder (origin "testing").
    bystander = subprocess.Popen(["sleep", "60"])
    from ember.testing import Cluster

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # its record goes to our folder
    other = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        other_procs = [psutil.Process(other.head.pid), psutil.Process(other.control.proc.pid)]
        assert len(ember_cli.records()) == 3

        out = ember_cli.run("stop")
        assert out.returncode == 0, out.stderr
        assert "Stopped 2 node(s)" in out.stdout
        _, alive = psutil.wait_procs(started, timeout=15)
        assert not [p.pid for p in alive if not _gone(p)], "`ember stop` left these running"
        assert not any(os.path.exists(d) for d in shm_dirs)
        assert bystander.poll() is None
        assert not any(_gone(p) for p in other_procs)
        assert [r["node_id"] for r in ember_cli.records()] == [other.head.node_id]
        # With nothing started any more, stop has nothing to do and status says so.
        again = ember_cli.run("stop")
        assert again.returncode == 0 and "Stopped 0 node(s)" in again.stdout
    finally:
        other.shutdown()
        bystander.kill()
        bystander.wait()
    status = ember_cli.run("status")
    assert status.returncode == 1
    assert "Could not find a running Ember cluster" in status.stderr
    assert "ember start --head" in status.stderr


def test_stop_removes_the_sessions_and_keeps_the_logs_asked_for(ember_cli: EmberCLI) -> None:
    port, head = ember_cli.start_head()
    assert head.returncode == 0, head.stderr
    assert "(removed by `ember stop`; --log-dir keeps them)" in head.stdout
    kept = ember_cli.tmp / "kept"
    node = ember_cli.join(port, "--log-dir", str(kept))
    assert node.returncode == 0, node.stderr
    assert f"logs in {kept}/session_" in node.stdout and "(kept after `ember stop`)" in node.stdout
    # the head's (with its control store's log) and the node's (its sockets)
    assert len(ember_cli.session_dirs()) == 2

    assert ember_cli.run("stop").returncode == 0
    assert ember_cli.session_dirs() == []
    (logs,) = kept.iterdir()
    names = {p.name for p in logs.iterdir()}
    assert "node.log" in names and any(n.startswith("worker-") for n in names), names


def test_a_node_that_crashed_keeps_its_log_for_stop(ember_cli: EmberCLI) -> None:
    """`ember stop` ends nodes and their sessions; one that crashed before (killed: out of
    memory, say) is not stopped by it: its shared memory and spilled objects go, and its log
    stays for whoever looks into it, as stop says."""
    _started_cluster(ember_cli)
    (crashed,) = [r for r in ember_cli.records() if not r["is_head"]]
    victims = [psutil.Process(crashed["pid"]), *psutil.Process(crashed["pid"]).children()]
    os.killpg(crashed["pid"], signal.SIGKILL)  # the node and its workers
    psutil.wait_procs(victims, timeout=COMMAND_TIMEOUT)
    assert os.path.isdir(crashed["shm_dir"])
    out = ember_cli.run("stop")
    assert out.returncode == 0
    assert f"died; its logs are in {crashed['log_dir']}" in out.stderr
    assert not os.path.exists(crashed["shm_dir"])
    assert ember_cli.session_dirs() == [Path(crashed["session_dir"])]
    assert os.listdir(crashed["session_dir"]) == ["logs"]
    assert (Path(crashed["log_dir"]) / "node.log").is_file()


def test_stop_removes_what_a_node_it_had_to_kill_leaves(ember_cli: EmberCLI) -> None:
    """A node that does not end within the grace period is killed: it cleans nothing up, so
    `ember stop` removes its shared memory (real memory) and session folder."""
    port, head = ember_cli.start_head()
    assert head.returncode == 0, head.stderr
    (record,) = ember_cli.records()
    os.kill(record["pid"], signal.SIGSTOP)  # (a stopped node does not act on SIGTERM)
    out = ember_cli.run("stop", "--grace", "0.2")
    assert out.returncode == 0, out.stderr
    assert not os.path.exists(record["shm_dir"])
    assert ember_cli.session_dirs() == []


def test_stop_leaves_a_process_that_took_a_nodes_pid(ember_cli: EmberCLI) -> None:
    """The pid of a node that died went to another Ember process of this user: `ember stop`
    tells them apart by the start time, and leaves that one alone."""
    code = "import setproctitle, time; setproctitle.setproctitle('ember::node'); time.sleep(60)"
    other = subprocess.Popen([sys.executable, "-c", code])
    try:
        wait_until(
            lambda: Path(f"/proc/{other.pid}/cmdline").read_bytes().startswith(b"ember::node"),
            COMMAND_TIMEOUT,
            "the process to take its title",
        )
        session = ember_cli.tmp / "s-dead"
        (session / "logs").mkdir(parents=True)
        record = {
            "node_id": "ab" * 16,
            "pid": other.pid,
            "pid_started": psutil.Process(other.pid).create_time() - 60,  # (the dead node's)
            "control_pid": None,
            "origin": "cli",
            "address": "127.0.0.1:1",
            "token": "t",
            "shm_dir": str(ember_cli.tmp / "shm-dead"),
            "spill_dir": str(session / "spill"),
            "session_dir": str(session),
            "log_dir": str(session / "logs"),
        }
        ember_cli.records_dir.mkdir(parents=True, exist_ok=True)
        (ember_cli.records_dir / f"{record['node_id']}.json").write_text(json.dumps(record))
        out = ember_cli.run("stop")
        assert out.returncode == 0, out.stderr
        assert "Stopped 0 node(s)" in out.stdout
        assert other.poll() is None
        assert ember_cli.records() == []
    finally:
        other.kill()
        other.wait()


def test_head_serves_the_dashboard_to_its_login_link_and_stop_ends_it(
    ember_cli: EmberCLI,
) -> None:
    board_port = _free_port()
    _, out = ember_cli.start_head("--dashboard-port", str(board_port))
    assert out.returncode == 0, out.stderr
    (record,) = ember_cli.records()
    login = f"http://127.0.0.1:{board_port}/?token={record['token']}"
    assert login in out.stdout, out.stdout
    board = psutil.Process(record["dashboard_pid"])

    def status(path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", board_port, timeout=60)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        finally:
            conn.close()

    assert status("/") == 401
    assert status(f"/?token={record['token']}") == 302
    assert ember_cli.run("stop").returncode == 0
    psutil.wait_procs([board], timeout=10)
    assert _gone(board)


def test_a_dashboard_port_in_use_is_refused_before_anything_starts(ember_cli: EmberCLI) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        _, out = ember_cli.start_head("--dashboard-port", str(port))
    assert out.returncode == 1
    assert f"the dashboard cannot listen on 127.0.0.1:{port}" in out.stderr, out.stderr
    assert "--dashboard-port" in out.stderr
    assert not ember_cli.records() and not ember_cli.seen
    joined = ember_cli.run("start", "--address", "127.0.0.1:1", "--dashboard-port", "1")
    assert "--dashboard-port belongs to the head" in joined.stderr


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--resources", "{x: 1}"], "--resources is not valid JSON"),
        (["--resources", '["x"]'], "--resources must be a JSON object"),
        (["--resources", '{"x": "one"}'], "--resources: 'x' must be a non-negative number"),
        (["--num-cpus", "-1"], "--num-cpus must be a non-negative number"),
        # The way to give CPUs here is --num-cpus (not init()'s num_cpus=...).
        (["--resources", '{"CPU": 2}'], "--num-cpus"),
        (["--port", "99999"], "--port 99999 is not a port number"),
        # (an address of the documentation range, TEST-NET-2: on no host)
        (["--node-ip-address", "198.51.100.7"], "--node-ip-address 198.51.100.7 is not an"),
        (["--dashboard-port", "99999"], "--dashboard-port must be a port number"),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "not-a-number",
        "negative-cpus",
        "cpu-in-resources",
        "port-out-of-range",
        "not-this-hosts-address",
        "dashboard-port-out-of-range",
    ],
)
def test_bad_start_arguments_are_refused(ember_cli: EmberCLI, args: list[str], says: str) -> None:
    out = ember_cli.run(
        "start", "--head", "--port", str(_free_port()), "--node-ip-address", "127.0.0.1", *args
    )
    assert out.returncode == 1
    assert out.stderr.startswith("ember start: ") and says in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "pick another port" not in out.stderr
    assert not ember_cli.records() and not ember_cli.seen


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["start", "--address", "127.0.0.1"], "--address 127.0.0.1 is not HOST:PORT"),
        (["status", "--address", "127.0.0.1"], "--address 127.0.0.1 is not HOST:PORT"),
        (
            ["status", "--address", "127.0.0.1:{port}"],
            "no Ember cluster at 127.0.0.1:{port}: nothing",
        ),
    ],
    ids=["start-without-port", "status-without-port", "status-of-nothing"],
)
def test_bad_addresses_are_named(ember_cli: EmberCLI, args: list[str], says: str) -> None:
    port = str(_free_port())
    out = ember_cli.run(*[a.format(port=port) for a in args])
    assert out.returncode == 1
    assert out.stderr.startswith(f"ember {args[0]}: "), out.stderr
    assert says.format(port=port) in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "Errno" not in out.stderr


def test_status_with_two_clusters_asks_for_address(ember_cli: EmberCLI) -> None:
    """A CLI user names a cluster with --address, not with ember.init(...)."""
    for _ in range(2):
        _, head = ember_cli.start_head()
        assert head.returncode == 0, head.stderr
    out = ember_cli.run("status")
    assert out.returncode == 1
    assert "Several Ember clusters" in out.stderr and "--address" in out.stderr, out.stderr
    assert "init(" not in out.stderr


def test_version(ember_cli: EmberCLI) -> None:
    import importlib.metadata

    import ember

    out = ember_cli.run("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"ember, version {ember.__version__}"
    assert ember.__version__ == importlib.metadata.version("ember")


@pytest.mark.parametrize("listening", [True, False], ids=["no-token", "nothing-there"])
def test_client_mode_errors_speak_to_python_users(ember_cli: EmberCLI, listening: bool) -> None:
    """``init("ember://...")`` is Python: no advice about command-line flags."""
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(_other_server(None)) if listening else _free_port()
        out = ember_cli.driver(f'import ember\nember.init("ember://127.0.0.1:{port}")\n')
    assert out.returncode == 1
    says = "EMBER_TOKEN" if listening else f"no Ember cluster at 127.0.0.1:{port}"
    assert says in out.stderr, out.stderr
    assert "--token" not in out.stderr


@contextlib.contextmanager
def _other_server(answer: bytes | None) -> Iterator[int]:
    """A TCP server on a free loopback port that is not Ember: it takes connections and
    answers whatever comes first with ``answer`` (an HTTP error, say) or, with None, says
    nothing and keeps the connection open. Yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            held.append(conn)
            if answer is not None:
                with contextlib.suppress(OSError):
                    conn.recv(4096)
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in held:
            conn.close()
        thread.join(timeout=5)


_HTTP_ERROR = b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"


def test_joining_without_a_token_is_refused(ember_cli: EmberCLI) -> None:
    with _other_server(None) as port:  # something listens, so a token is what is missing
        out = ember_cli.join(port)
    assert out.returncode == 1
    assert f"no token for the cluster at 127.0.0.1:{port}" in out.stderr, out.stderr
    assert "--token" in out.stderr and "EMBER_TOKEN" in out.stderr
    assert "Traceback" not in out.stderr
    assert not ember_cli.records() and not ember_cli.seen


def test_joining_where_nothing_listens_says_so_not_no_token(ember_cli: EmberCLI) -> None:
    port = _free_port()
    out = ember_cli.join(port)
    assert out.returncode == 1
    assert f"no Ember cluster at 127.0.0.1:{port}: nothing listens there" in out.stderr
    assert "token" not in out.stderr, out.stderr
    assert not ember_cli.records() and not ember_cli.seen


@pytest.mark.parametrize("problem", ["wrong token", "nothing listening", "not Ember"])
def test_a_node_that_cannot_join_is_reported(ember_cli: EmberCLI, problem: str) -> None:
    """`ember start --address` must not say "Started a node of the cluster" (exit 0) when
    the node never became part of it; it says why, at once, and leaves no process (nor an
    orphan that `ember stop` cannot see) and no session folder behind."""
    with contextlib.ExitStack() as stack:
        if problem == "wrong token":
            port, head = ember_cli.start_head()
            assert head.returncode == 0, head.stderr
            says = "closed the connection: the cluster's token is wrong"
        elif problem == "nothing listening":
            port = _free_port()
            says = f"no Ember cluster at 127.0.0.1:{port}: nothing listens there"
        else:
            port = stack.enter_context(_other_server(_HTTP_ERROR))
            says = f"no Ember cluster at 127.0.0.1:{port}: another kind of server listens there"
        sessions = set(ember_cli.session_dirs())
        out = ember_cli.join(port, "--token", "0" * 32)
    assert out.returncode == 1, f"exit 0 for a node that did not join:\n{out.stdout}"
    assert out.stderr.startswith("ember start: ") and says in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and not out.stderr.rstrip().endswith(":")
    assert not [r for r in ember_cli.records() if not r["is_head"]]
    heads = {r.get(k) for r in ember_cli.records() for k in ("pid", "control_pid", "dashboard_pid")}
    left = [p for p in ember_cli.strays() if p.pid not in heads and p.ppid() not in heads]
    assert not left, f"the failed join left processes running: {left}"
    assert set(ember_cli.session_dirs()) == sessions


def test_a_driver_with_a_wrong_token_gets_authentication_error(ember_cli: EmberCLI) -> None:
    port, head = ember_cli.start_head()
    assert head.returncode == 0, head.stderr
    ember_cli.env["EMBER_TOKEN"] = "0" * 32
    out = ember_cli.driver(
        "import ember\n"
        "try:\n"
        f"    ember.init(address='ember://127.0.0.1:{port}')\n"
        "except ember.exceptions.AuthenticationError as e:\n"
        "    print('refused:', e)\n"
    )
    assert out.returncode == 0 and "refused:" in out.stdout, out.stderr
    assert "EMBER_TOKEN" in out.stdout
    del ember_cli.env["EMBER_TOKEN"]
    assert ember_cli.run("stop").returncode == 0


def test_init_auto_without_a_cluster_says_how_to_start_one(ember_cli: EmberCLI) -> None:
    out = ember_cli.driver('import ember\nember.init(address="auto")\n')
    assert out.returncode == 1
    assert "ConnectionError" in out.stderr
    assert "ember start --head" in out.stderr, out.stderr
    status = ember_cli.run("status")
    assert status.returncode == 1 and "ember start --head" in status.stderr


AFTER_INIT = """
import json
import ember
from ember.util.scheduling_strategies import NodeAffinitySchedulingStrategy

mine = NodeAffinitySchedulingStrategy(ember.get_runtime_context().get_node_id(), soft=False)

@ember.remote
def where(n):
    return n * n, ember.get_runtime_context().get_node_id()

@ember.remote
class Echo:
    def echo(self, x):
        return x

echo = Echo.remote()
out = {
    "here": ember.get([where.options(scheduling_strategy=mine).remote(n) for n in range(4)]),
    "there": ember.get(where.options(resources={"x": 1}).remote(5)),
    "actor": ember.get([echo.echo.remote(i) for i in range(3)]),
}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.parametrize("ember_cli", ["d" * 80 + "/" + "e" * 80], indirect=True)
def test_a_long_tmpdir_works(ember_cli: EmberCLI) -> None:
    """Unix sockets in the session's folder broke init() and `ember start` with a TMPDIR of
    about 70 characters or more (`OSError: AF_UNIX path too long`)."""
    assert len(str(ember_cli.tmp)) >= 150

    def run(init_args: str) -> Any:
        return _result(ember_cli.driver(f"import ember\nember.init({init_args})\n{AFTER_INIT}"))

    alone = run("num_cpus=1, resources={'x': 1}")
    assert [v for v, _ in alone["here"]] == [0, 1, 4, 9] and alone["actor"] == [0, 1, 2]
    _started_cluster(ember_cli)
    (head,) = [r["node_id"] for r in ember_cli.records() if r["is_head"]]
    (x_node,) = [r["node_id"] for r in ember_cli.records() if not r["is_head"]]
    clustered = run("address='auto'")
    assert clustered["here"] == [[n * n, head] for n in range(4)]  # (pushed over Unix sockets)
    assert clustered["there"] == [25, x_node] and clustered["actor"] == [0, 1, 2]
    assert ember_cli.run("status").returncode == 0
    assert ember_cli.run("stop").returncode == 0 and not ember_cli.records()


COUNTER = """
import ember

ember.init(address="auto", namespace="cli-test")

@ember.remote
class Counter:
    def __init__(self):
        self.n = 0

    def add(self):
        self.n += 1
        return self.n

try:
    counter = ember.get_actor("counter")
except ValueError:
    counter = Counter.options(name="counter", lifetime="detached").remote()
print("RESULT", ember.get(counter.add.remote(), timeout=60))
"""


def test_a_dead_control_store_is_started_again_by_the_head(
    ember_cli: EmberCLI, redis_server: str
) -> None:
    """With --storage, the head's node starts the control store again if it dies; the
    cluster's state (here a named detached actor) comes back, and `ember stop` ends the new
    process too."""
    _, out = ember_cli.start_head("--storage", redis_server)
    assert out.returncode == 0, out.stderr
    assert _result(ember_cli.driver(COUNTER)) == 1
    assert _result(ember_cli.driver(COUNTER)) == 2
    (head,) = ember_cli.records()
    os.kill(head["control_pid"], signal.SIGKILL)

    wait_until(
        lambda: ember_cli.records()[0]["control_pid"],
        15,
        "the control store to be started again",
        until=lambda pid: pid != head["control_pid"],
    )
    store = psutil.Process(ember_cli.records()[0]["control_pid"])
    assert store.ppid() == head["pid"]  # started by the head's node
    assert _result(ember_cli.driver(COUNTER)) == 3  # the same actor, found again
    assert ember_cli.run("stop").returncode == 0
    _, left = psutil.wait_procs([store], timeout=10)
    assert not left, "`ember stop` left the new control store running"
