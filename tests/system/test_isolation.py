"""What others can reach: peers without the token (what they cost a listener, for how long)."""

from __future__ import annotations

import os
import re
import socket
from typing import Any

import psutil
import pytest

import ember
from ember._protocol import messages as m
from ember._runtime import admin
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
            assert ask(sock, token, m.ClusterInfo(1))[0] is not None

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
        refusals = [line for line in f if "refused" in line]
    assert len(refusals) == n and all(_STAMPED.match(line) for line in refusals), refusals[:3]
    assert "did not present the cluster's token within" in refusals[0]
