"""A cluster on two "hosts": two Linux network namespaces joined by a veth pair.

Each host has its own IP address (10.213.0.1 and 10.213.0.2, no route through loopback
between them) and its own temporary folder (``TMPDIR``), so its own node records and session
folders, as two machines would. The head is started with ``ember start --head`` on the first,
a node joins from the second with ``ember start --address ... --token ...``, and a driver on
the first uses the second's node for tasks, objects (both ways) and an actor. ``ember stop``
on each host then stops exactly that host's processes.

Needs root (to create namespaces) and ``ip`` (iproute2); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests._helpers import wait_until

pytestmark = pytest.mark.ember_only

SUBNET = "10.213.0"
PORT = 6390  # the namespaces are new, so nothing else listens there
T = 30  # upper bound for each command: a hang fails the test instead of stalling it


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=T)


def _must(result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(result.args)}` failed: {result.stderr.strip()}")


@dataclass
class Host:
    """A network namespace with one address and its own temporary folder."""

    ns: str
    ip: str
    tmpdir: str
    shm_dirs: set[str] = field(default_factory=set)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMBER_")}
        env["TMPDIR"] = self.tmpdir
        return env

    def run(self, *argv: str, timeout: float = T) -> subprocess.CompletedProcess[str]:
        """Run a command in this host's namespace with TMPDIR set to its folder."""
        return subprocess.run(
            ["ip", "netns", "exec", self.ns, "env", f"TMPDIR={self.tmpdir}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.tmpdir,
            env=self.env(),
            stdin=subprocess.DEVNULL,
        )

    def ember(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.run(sys.executable, "-m", "ember.cli.main", *args)
        assert result.returncode == 0, (
            f"`ember {' '.join(args)}` on {self.ip} failed ({result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
        return result

    def records(self) -> list[dict[str, Any]]:
        """The node records `ember start` wrote in this host's folder."""
        folder = Path(self.tmpdir, f"ember-{os.getuid()}", "nodes")
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                out.append(json.loads(path.read_text()))
        self.shm_dirs.update(r["shm_dir"] for r in out if r.get("shm_dir"))
        return out

    def pids(self) -> set[int]:
        """Every process in this namespace: all of them were started by this test."""
        result = _ip("netns", "pids", self.ns)
        return {int(p) for p in result.stdout.split()} if result.returncode == 0 else set()


def _kill(pids: set[int]) -> None:
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            proc.send_signal(signal.SIGKILL)
            procs.append(proc)
    psutil.wait_procs(procs, timeout=5)


@pytest.fixture
def two_hosts() -> Iterator[tuple[Host, Host]]:
    """Two namespaces joined by a veth pair; everything in them is killed and they are deleted
    afterwards, even when the test fails."""
    if not sys.platform.startswith("linux"):
        pytest.skip("network namespaces are Linux-only")
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    if shutil.which("ip") is None:
        pytest.skip("the `ip` command (iproute2) is not installed")
    tag = os.getpid()
    names = [f"ember-test-{tag}-{i}" for i in (1, 2)]
    veths = [f"embv{tag}{s}" for s in "ab"]  # interface names are at most 15 characters
    for name in names:  # left over by a killed run whose pid was the same
        _ip("netns", "del", name)
    created: list[str] = []
    hosts: list[Host] = []
    try:
        for name in names:
            result = _ip("netns", "add", name)
            if result.returncode != 0:
                pytest.skip(f"cannot create a network namespace: {result.stderr.strip()}")
            created.append(name)
        result = _ip("link", "add", veths[0], "type", "veth", "peer", "name", veths[1])
        if result.returncode != 0:
            pytest.skip(f"cannot create a veth pair: {result.stderr.strip()}")
        for i, (name, veth) in enumerate(zip(names, veths, strict=True), start=1):
            _must(_ip("link", "set", veth, "netns", name))
            _must(_ip("-n", name, "addr", "add", f"{SUBNET}.{i}/24", "dev", veth))
            _must(_ip("-n", name, "link", "set", veth, "up"))
            _must(_ip("-n", name, "link", "set", "lo", "up"))
            hosts.append(Host(name, f"{SUBNET}.{i}", tempfile.mkdtemp(prefix=f"ember-h{i}-")))
        yield hosts[0], hosts[1]
    finally:
        for host in hosts:  # ember stop ran already unless the test failed before it
            host.records()  # note the store folders of nodes still running
            _kill(host.pids())
        for name in created:
            _ip("netns", "del", name)  # deletes the veth pair with it
        _ip("link", "del", veths[0])  # in case it never moved into a namespace
        for host in hosts:
            for shm_dir in host.shm_dirs:  # only left when a node was killed
                shutil.rmtree(shm_dir, ignore_errors=True)
            shutil.rmtree(host.tmpdir, ignore_errors=True)


DRIVER = textwrap.dedent(
    """
    import json
    import socket
    import sys
    import time

    import numpy as np

    import ember as ray

    HEAD_IP, FAR_IP = sys.argv[1], sys.argv[2]
    T = 30


    def source_ip():
        # The address this process would use to reach the head: tells which host it runs on.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((HEAD_IP, 9))  # UDP: no packet is sent
            return s.getsockname()[0]


    def node_ip(node_id):
        return next(n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id)


    @ray.remote(resources={"far": 1})
    def where():
        node_id = ray.get_runtime_context().get_node_id()
        return {"node_id": node_id, "node_ip": node_ip(node_id), "source_ip": source_ip()}


    @ray.remote(resources={"far": 1})
    def big(n):
        return np.arange(n, dtype=np.float64)


    @ray.remote(resources={"far": 1})
    def total(a):
        return float(a.sum()), a.nbytes, ray.get_runtime_context().get_node_id()


    @ray.remote(resources={"far": 0.5})
    class Counter:
        def __init__(self):
            self.n = 0

        def add(self, k):
            self.n += k
            return self.n, ray.get_runtime_context().get_node_id(), source_ip()


    ray.init(address="auto")
    out = {"driver_node": ray.get_runtime_context().get_node_id(), "driver_ip": source_ip()}

    deadline = time.monotonic() + T
    while sum(n["Alive"] for n in ray.nodes()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    out["nodes"] = [
        {
            "id": n["NodeID"],
            "alive": n["Alive"],
            "ip": n["NodeManagerAddress"],
            "resources": n["Resources"],
        }
        for n in ray.nodes()
    ]

    out["where"] = ray.get(where.remote(), timeout=T)

    n = 20 * 2**20 // 8  # 20 MiB made on the far node, read here
    start = time.monotonic()
    a = ray.get(big.remote(n), timeout=T)
    out["big"] = {
        "nbytes": a.nbytes,
        "exact": bool(np.array_equal(a, np.arange(n, dtype=np.float64))),
        "seconds": round(time.monotonic() - start, 3),
    }

    rng = np.random.default_rng(7)
    mine = rng.random(2_500_000)  # 20 MB put here, summed on the far node
    s, nbytes, ran_on = ray.get(total.remote(ray.put(mine)), timeout=T)
    out["put"] = {"sum": s, "expected": float(mine.sum()), "nbytes": nbytes, "node_id": ran_on}

    counter = Counter.remote()
    out["actor"] = ray.get([counter.add.remote(k) for k in (1, 2, 3)], timeout=T)

    ray.shutdown()
    print("RESULT " + json.dumps(out))
    """
)


def test_a_cluster_across_two_network_namespaces(two_hosts: tuple[Host, Host]) -> None:
    head, far = two_hosts
    began = time.monotonic()

    # -- the head on host 1, a node joining from host 2 ----------------------------------
    out = head.ember(
        "start", "--head", "--node-ip-address", head.ip, "--port", str(PORT), "--num-cpus", "1"
    ).stdout
    assert f"{head.ip}:{PORT}" in out, out
    match = re.search(r"--token=(\S+)", out)
    assert match, f"no --token=... in the output of `ember start --head`:\n{out}"
    token = match.group(1)
    far.ember(
        "start",
        "--address",
        f"{head.ip}:{PORT}",
        "--token",
        token,
        "--node-ip-address",
        far.ip,
        "--num-cpus",
        "1",
        "--resources",
        json.dumps({"far": 1}),
    )

    # Each host keeps its own records, session folders and store.
    [head_rec], [far_rec] = head.records(), far.records()
    assert head_rec["is_head"] and not far_rec["is_head"]
    assert head_rec["host"] == head.ip and far_rec["host"] == far.ip
    assert head_rec["tcp_address"].startswith(f"tcp:{head.ip}:")
    assert far_rec["tcp_address"].startswith(f"tcp:{far.ip}:")
    assert far_rec["address"] == head_rec["address"] == f"{head.ip}:{PORT}"
    assert head_rec["session_dir"].startswith(head.tmpdir + os.sep)
    assert far_rec["session_dir"].startswith(far.tmpdir + os.sep)
    assert head_rec["shm_dir"] != far_rec["shm_dir"]
    head_pids = {head_rec["pid"], head_rec["control_pid"]}
    assert head_pids <= head.pids() and far_rec["pid"] in far.pids()

    # -- a driver on host 1 uses host 2's node ---------------------------------------------
    script = Path(head.tmpdir, "driver.py")
    script.write_text(DRIVER)
    result = head.run(sys.executable, str(script), head.ip, far.ip, timeout=60)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, (
        f"the driver failed ({result.returncode}):\n{result.stdout}{result.stderr}"
    )
    got = json.loads(lines[-1][len("RESULT ") :])
    print("driver:", json.dumps(got))  # shown when the test fails

    head_id, far_id = head_rec["node_id"], far_rec["node_id"]
    assert got["driver_node"] == head_id and got["driver_ip"] == head.ip
    nodes = {n["id"]: n for n in got["nodes"]}
    assert set(nodes) == {head_id, far_id}, got["nodes"]
    assert all(n["alive"] for n in nodes.values()), got["nodes"]
    assert nodes[head_id]["ip"] == head.ip and nodes[far_id]["ip"] == far.ip
    assert nodes[head_id]["resources"][f"node:{head.ip}"] == 1
    assert nodes[far_id]["resources"][f"node:{far.ip}"] == 1
    assert nodes[far_id]["resources"]["far"] == 1 and "far" not in nodes[head_id]["resources"]
    # The pinned task ran on host 2: its node, and the address its own process has there.
    assert got["where"] == {"node_id": far_id, "node_ip": far.ip, "source_ip": far.ip}
    assert got["big"]["exact"] and got["big"]["nbytes"] == 20 * 2**20, got["big"]
    assert got["put"]["node_id"] == far_id and got["put"]["nbytes"] == 20_000_000
    assert got["put"]["sum"] == got["put"]["expected"], got["put"]
    assert got["actor"] == [[1, far_id, far.ip], [3, far_id, far.ip], [6, far_id, far.ip]]

    # Host 2 sees the cluster through its own records.
    status = far.ember("status").stdout
    assert "2 node(s) alive" in status and far.ip in status and head.ip in status, status

    # -- `ember stop` on each host stops that host's processes, and only those ---------------
    far.ember("stop")
    wait_until(far.pids, 15, f"the processes on {far.ip} to end", until=lambda left: not left)
    assert head_pids <= head.pids(), "`ember stop` on host 2 stopped processes on host 1"
    head.ember("stop")
    wait_until(head.pids, 15, f"the processes on {head.ip} to end", until=lambda left: not left)
    for pid in head_pids | {far_rec["pid"]}:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    assert head.records() == [] and far.records() == []
    for rec in (head_rec, far_rec):
        assert not os.path.exists(rec["shm_dir"]), f"{rec['shm_dir']} was left behind"

    elapsed = time.monotonic() - began
    assert elapsed < 60, f"the test took {elapsed:.1f} s"
