"""What others can reach: peers without the token (what they cost a listener, for how long),
where the cluster's token is (not in any environment user code inherits), who may open the
session's folders, and who may connect to the local sockets."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
from typing import Any

import msgpack
import psutil
import pytest

import ember
from ember._protocol import messages as m
from ember._runtime.launch import admin, cluster_files
from ember._transport.reactor import REFUSALS_LOGGED
from ember._transport.rpc import ask

pytestmark = pytest.mark.ember_only

_STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ember-\w+: refused", re.M)


def _tcp(address: str) -> tuple[str, int]:
    host, port = address.removeprefix("tcp:").rsplit(":", 1)
    return host, int(port)


@ember.remote
def _ping() -> str:
    return "pong"


def test_peers_without_the_token_cost_a_listener_little_and_not_for_long(
    make_cluster: Any,
) -> None:
    """Each accepted TCP connection got a 256 KiB receive buffer before showing the token
    (3,000 idle ones took a node from 19 MB to 900 MB, still held after they closed), and
    one that never showed it was kept for ever."""
    cluster = make_cluster({"num_cpus": 1})
    assert ember.get(_ping.remote()) == "pong"  # the node has loaded all it ever loads
    head, token = cluster.head, cluster.token

    def node_answers() -> None:
        with socket.create_connection(_tcp(head.address), timeout=10) as sock:
            assert ask(sock, token, m.ClusterInfo(rid=1))[0] is not None

    def store_answers() -> None:
        admin.nodes(cluster.address, token)

    # Each listener, its process, and a request it answers: a connection made after the
    # others is accepted after them, so once it is answered they were accepted and read.
    listeners = [
        (head.address, psutil.Process(head.pid), node_answers),
        (cluster.address, psutil.Process(cluster.control.proc.pid), store_answers),
    ]
    n = 100  # below the cap on connections waiting to authenticate: each one counts
    before = [proc.memory_info().rss for _, proc, _ in listeners]

    def kib_each() -> list[int]:
        for _, _, answered in listeners:
            answered()
        now = [proc.memory_info().rss for _, proc, _ in listeners]
        return [(rss - was) // n // 1024 for rss, was in zip(now, before, strict=True)]

    peers = [
        socket.create_connection(_tcp(a), timeout=30) for a, _, _ in listeners for _ in range(n)
    ]
    try:
        for sock in peers:
            sock.sendall(b"\x92")  # the start of a message, and no more
        assert max(kib_each()) < 32, "KiB per connection"
        for sock in peers:  # each is closed a few seconds after it connected
            assert sock.recv(1) == b""
        assert max(kib_each()) < 32, "KiB per closed connection still held"
    finally:
        for sock in peers:
            sock.close()
    with open(os.path.join(head.record["session_dir"], "logs", "node.log")) as f:
        refusals = [line for line in f if "refused a connection" in line]
    # The first few one by one (the rest are counted in a line at the end of the interval).
    assert len(refusals) == REFUSALS_LOGGED, refusals[:3]
    assert all(_STAMPED.match(line) for line in refusals), refusals[:3]
    assert "did not present the cluster's token within" in refusals[0]


def _environ(proc: psutil.Process) -> bytes:
    """What ``ps e`` shows: the environment the process was started with."""
    with open(f"/proc/{proc.pid}/environ", "rb") as f:
        return f.read()


@ember.remote
def _task_environment() -> tuple[dict[str, str], str, int]:
    child = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout
    return dict(os.environ), child, os.getpid()


def test_the_token_is_in_no_environment_user_code_inherits(
    make_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers found the token in $EMBER_TOKEN, so every task and every program a task
    started could read it; and a token set in the user's shell reached every process."""
    token = cluster_files.new_token()
    monkeypatch.setenv("EMBER_TOKEN", token)  # the user's shell has it
    monkeypatch.setattr(cluster_files, "new_token", lambda: token)
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    env, child_env, worker_pid = ember.get(_task_environment.remote())
    assert "EMBER_TOKEN" not in env and token not in env.values()
    assert "EMBER_TOKEN" not in child_env and token not in child_env
    ours = [psutil.Process(cluster.control.proc.pid)]
    for node in cluster.nodes:
        ours += [psutil.Process(node.pid), *psutil.Process(node.pid).children(recursive=True)]
    assert worker_pid in {p.pid for p in ours}
    for proc in ours:
        shown = _environ(proc)
        assert b"EMBER_TOKEN" not in shown and token.encode() not in shown, proc


def _mode(path: str) -> str:
    return oct(stat.S_IMODE(os.stat(path).st_mode))


def test_the_session_s_folders_are_this_user_s_alone(make_cluster: Any) -> None:
    """The shared-memory folder was created readable by everyone (0755)."""
    cluster = make_cluster({"num_cpus": 1})
    record = cluster.head.record
    folders = [record["shm_dir"], os.path.join(record["shm_dir"], "pool")]
    folders += [record["session_dir"], record["spill_dir"], f"{record['session_dir']}/logs"]
    folders.append(os.path.dirname(os.path.dirname(cluster.control.log)))  # its own session
    assert {f: _mode(f) for f in folders} == {f: "0o700" for f in folders}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to connect as another user")
def test_another_user_cannot_use_the_local_sockets(ray: Any) -> None:
    """Local sockets have abstract names, which carry no file permissions: the node checks
    who connects."""
    from ember._api import session

    node = session._node
    assert node is not None
    hello = msgpack.packb(
        m.Hello(
            rid=1,
            kind="driver",
            client_id=b"x" * 12,
            pid=1,
            job_id=b"",
            listen_addr=None,
            log_to_driver=False,
        ).encode()
    )
    for address in (node.node_address, node.control_address):
        assert address.startswith("unix:@")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # as nobody: connect, say hello, report what came back
            try:
                os.setgid(65534)
                os.setuid(65534)
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.settimeout(10)
                    sock.connect("\0" + address.removeprefix("unix:@"))
                    sock.sendall(hello)
                    os.write(write, b"closed" if sock.recv(100) == b"" else b"answered")
            except OSError as e:
                os.write(write, type(e).__name__.encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as f:
            got = f.read()
        os.waitpid(pid, 0)
        # (closed before, while or after it spoke: all refusals)
        assert got in (b"closed", b"ConnectionResetError", b"BrokenPipeError"), got
    with open(os.path.join(node.session_dir, "logs", "node.log")) as f:  # (written first)
        refused = [line for line in f if "refused a local connection" in line]
    assert len(refused) == 2 and all("uid 65534" in line for line in refused), refused
    assert ember.get(_ping.remote()) == "pong"  # still serving
