"""The control store's liveness decisions, driven with plain values (no processes)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ember._protocol.messages import ErrorKind
from ember._runtime.control_store.server import (
    NODE_TIMEOUT,
    ControlStore,
    ControlStoreServer,
    NodeEntry,
)
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


class _Sent:
    """Stands for a connection: keeps what is sent on it."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, msg: Any) -> None:
        self.sent.append(msg)


def test_a_lookup_of_an_actor_not_registered_yet_waits_for_its_registration() -> None:
    """A handle can reach another node before its actor is registered; that node's lookup
    used to be answered "unknown or gone", and the call failed with ActorDiedError."""
    store = ControlStore()
    home = NodeEntry(b"h" * 16, "tcp:127.0.0.1:1", "unix:/x", "127.0.0.1", {"CPU": 1.0}, 1)
    store.nodes[home.node_id] = home
    asker = _Sent()
    store.lookup_actor(asker, 7, b"a" * 12, now=100.0)  # type: ignore[arg-type]
    assert asker.sent == []
    store.register_actor(b"a" * 12, None, "ns", b"", False, home.node_id)
    assert [(r.rid, r.error) for r in asker.sent] == [(7, None)]
    assert asker.sent[0].value["node_id"] == home.node_id


def test_a_lookup_of_an_ended_or_never_registered_actor_fails() -> None:
    store = ControlStore()
    asker = _Sent()
    store.actor_dead(b"d" * 12)
    store.lookup_actor(asker, 1, b"d" * 12, now=100.0)  # type: ignore[arg-type]
    assert asker.sent[0].kind is ErrorKind.ACTOR_DIED
    store.lookup_actor(asker, 2, b"n" * 12, now=100.0)  # type: ignore[arg-type]
    store.expire_lookups(100.0 + store.registration_wait / 2)
    assert len(asker.sent) == 1
    store.expire_lookups(100.0 + store.registration_wait + 0.1)
    assert [(r.rid, r.kind) for r in asker.sent[1:]] == [(2, ErrorKind.ACTOR_DIED)]


@pytest.mark.parametrize(
    ("node_timeout", "wait"), [(1.0, 2.0), (30.0, 60.0), (float("inf"), 2 * NODE_TIMEOUT)]
)
def test_a_lookup_waits_for_a_registration_as_long_as_the_configured_node_timeout_asks(
    node_timeout: float, wait: float
) -> None:
    """The wait was two default node timeouts (10 s) whatever the cluster's node_timeout:
    a lookup of an actor whose creator died failed long after, or before, that node could
    be declared dead. It is two of the store's own (and finite on one machine, where nodes
    never time out)."""
    store = ControlStore(node_timeout=node_timeout)
    asker = _Sent()
    store.lookup_actor(asker, 1, b"n" * 12, now=100.0)  # type: ignore[arg-type]
    store.expire_lookups(100.0 + wait - 0.1)
    assert asker.sent == []
    store.expire_lookups(100.0 + wait + 0.1)
    assert [(r.rid, r.kind) for r in asker.sent] == [(1, ErrorKind.ACTOR_DIED)]
