"""The control store's liveness decisions, driven with plain values (no processes)."""

from __future__ import annotations

import time

from ember._runtime.control_store import ControlStore, ControlStoreServer, NodeEntry
from ember._transport.reactor import Reactor


def _server_with_a_silent_node(silent_for: float) -> tuple[ControlStoreServer, NodeEntry]:
    store = ControlStore(node_timeout=2.0, heartbeat_interval=0.2)
    entry = NodeEntry(b"n" * 16, "tcp:127.0.0.1:1", "unix:/x", "127.0.0.1", {"CPU": 1.0}, 1)
    entry.last_seen = time.monotonic() - silent_for
    store.nodes[entry.node_id] = entry
    return ControlStoreServer(store, Reactor("test")), entry


def test_a_node_silent_past_the_timeout_is_declared_dead() -> None:
    server, entry = _server_with_a_silent_node(5.0)
    server._check()
    assert not entry.alive


def test_nobody_is_declared_dead_for_the_control_store_s_own_stall() -> None:
    """A loop held up (a slow Redis write) must not expire nodes whose heartbeats wait unread
    in its sockets: they get a full timeout again."""
    server, entry = _server_with_a_silent_node(5.0)
    server._last_check = time.monotonic() - 5.0
    server._check()
    assert entry.alive
