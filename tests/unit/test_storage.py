"""Tests for ember._runtime.control_store.storage and the control store written through it to a
real Redis.

The Redis tests use the ``redis_server`` fixture (a ``redis-server`` on a loopback port, in
memory only); they skip when Redis is not installed. A restart of the control store is a
second ``ControlStore`` over a new ``RedisStorage`` of the same URL.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from ember._protocol import messages as m
from ember._protocol.messages import ErrorKind
from ember._runtime.control_store.server import ControlStore, NameTaken
from ember._runtime.control_store.storage import RedisStorage, Storage, open_storage

NODE = b"\x01" * 16
ACTOR = b"\x02" * 16
OTHER_ACTOR = b"\x03" * 16
FN = b"\x04" * 16
FN_DATA = b"\x80\x05\xff\x00 not utf-8 \xfe"  # pickled bytes are not text
META = b"\x00meta\xff"


class FakeConn:
    """Stands in for a transport Connection: records what is sent to it."""

    def __init__(self) -> None:
        self.sent: list[m.Message] = []
        self.peer: Any = None
        self.closed = False

    def send(self, msg: m.Message) -> None:
        self.sent.append(msg)

    def close(self) -> None:
        self.closed = True


def redis_store(url: str) -> ControlStore:
    return ControlStore(storage=RedisStorage(url))


def register_node(store: ControlStore, node_id: bytes = NODE) -> FakeConn:
    conn = FakeConn()
    msg = m.RegisterNode(
        rid=1,
        node_id=node_id,
        address="tcp:127.0.0.1:7001",
        local_address="unix:/tmp/ember-node",
        host="host-a",
        total={"CPU": 2.0},
        pid=4242,
    )
    store.register_node(conn, msg, now=100.0)  # type: ignore[arg-type]
    return conn


def register_actor(
    store: ControlStore,
    actor_id: bytes = ACTOR,
    name: str | None = "counter",
    get_if_exists: bool = False,
) -> bytes:
    return store.register_actor(actor_id, name, "ns", META, get_if_exists, NODE)


# ---------------------------------------------------------------------- open_storage


@pytest.mark.parametrize("url", [None, ""])
def test_open_storage_without_url_is_in_memory(url: str | None) -> None:
    storage = open_storage(url)
    assert type(storage) is Storage
    storage.put("actors", "k", "v")
    storage.delete("actors", "k")
    assert storage.load("actors") == {}


@pytest.mark.parametrize("url", ["postgres://127.0.0.1/ember", "127.0.0.1:6379", "file:/tmp/x"])
def test_open_storage_rejects_other_schemes(url: str) -> None:
    with pytest.raises(ValueError, match="redis://"):
        open_storage(url)


def test_open_storage_redis_url(redis_server: str) -> None:
    storage = open_storage(redis_server)
    assert isinstance(storage, RedisStorage)
    assert storage.load("actors") == {}


def test_redis_storage_unreachable_server_is_a_clear_error() -> None:
    # A loopback port that is bound but not listening: the connection is refused at once.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(RuntimeError, match="cannot reach the Redis server"):
            RedisStorage(f"redis://127.0.0.1:{port}")


# ---------------------------------------------------------------------- RedisStorage


def test_redis_storage_round_trip(redis_server: str) -> None:
    storage = RedisStorage(redis_server)
    storage.put("functions", FN.hex(), FN_DATA)
    storage.put("actors", "a1", json.dumps({"name": "x"}))
    storage.put("actors", "a2", "second")
    storage.put("nodes", "n1", "node")

    functions = storage.load("functions")
    assert functions == {FN.hex(): FN_DATA}
    assert isinstance(functions[FN.hex()], bytes)  # functions keep their bytes
    actors = storage.load("actors")
    assert actors == {"a1": '{"name": "x"}', "a2": "second"}  # other tables decode to str
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in actors.items())
    assert storage.load("nodes") == {"n1": "node"}

    storage.delete("actors", "a1")
    storage.delete("actors", "missing")  # deleting what is not there is fine
    assert storage.load("actors") == {"a2": "second"}

    # Another client of the same server sees the same tables, under the ember: prefix.
    again = RedisStorage(redis_server)
    assert again.load("actors") == {"a2": "second"}
    assert again.load("functions") == {FN.hex(): FN_DATA}
    assert sorted(k.decode() for k in again.client.keys("*")) == [
        "ember:actors",
        "ember:functions",
        "ember:nodes",
    ]


def test_redis_storage_put_overwrites(redis_server: str) -> None:
    storage = RedisStorage(redis_server)
    storage.put("nodes", "n1", "old")
    storage.put("nodes", "n1", "new")
    assert RedisStorage(redis_server).load("nodes") == {"n1": "new"}


# ---------------------------------------------------------------------- ControlStore durability


def test_control_store_reloads_actors_functions_and_nodes(redis_server: str) -> None:
    first = redis_store(redis_server)
    register_node(first)
    assert register_actor(first) == ACTOR
    exporter = FakeConn()
    first.handle(exporter, m.ExportFunction(fn_id=FN, data=FN_DATA))  # type: ignore[arg-type]
    assert exporter.sent == []

    second = redis_store(redis_server)  # the control store restarted

    assert second.names == {("ns", "counter"): ACTOR}
    info = second.actors[ACTOR]
    assert info == {"name": "counter", "namespace": "ns", "handle_meta": META, "home": NODE}
    assert second.functions == {FN: FN_DATA}
    node = second.nodes[NODE]
    assert (node.address, node.local_address, node.host, node.pid) == (
        "tcp:127.0.0.1:7001",
        "unix:/tmp/ember-node",
        "host-a",
        4242,
    )
    assert node.total == {"CPU": 2.0}
    assert node.available == {"CPU": 2.0}
    assert node.alive and node.conn is None

    # And it serves them: the function by id, the actor by name.
    fetcher = FakeConn()
    second.handle(fetcher, m.FetchFunction(rid=7, fn_id=FN))  # type: ignore[arg-type]
    assert fetcher.sent == [m.Reply(rid=7, value=FN_DATA)]
    asker = FakeConn()
    second.handle(asker, m.GetNamedActor(rid=8, name="counter", namespace="ns"))  # type: ignore[arg-type]
    assert asker.sent == [m.NamedActor(rid=8, actor_id=ACTOR, handle_meta=META, home=NODE)]


def test_control_store_unnamed_actor_is_reloaded_without_a_name(redis_server: str) -> None:
    first = redis_store(redis_server)
    register_actor(first, OTHER_ACTOR, name=None)
    second = redis_store(redis_server)
    assert second.actors[OTHER_ACTOR]["name"] is None
    assert second.names == {}


def test_dead_actor_name_is_gone_after_reload(redis_server: str) -> None:
    first = redis_store(redis_server)
    register_node(first)
    register_actor(first)
    first.actor_dead(ACTOR)
    assert first.names == {}

    second = redis_store(redis_server)
    assert second.names == {}
    assert ACTOR not in second.actors
    # The name is free again.
    assert register_actor(second, OTHER_ACTOR) == OTHER_ACTOR


def test_name_taken_survives_reload(redis_server: str) -> None:
    first = redis_store(redis_server)
    register_node(first)
    register_actor(first)

    second = redis_store(redis_server)
    with pytest.raises(NameTaken, match="counter") as raised:
        register_actor(second, OTHER_ACTOR)
    assert isinstance(raised.value, ValueError)
    assert OTHER_ACTOR not in second.actors
    # get_if_exists hands back the actor registered before the restart.
    assert register_actor(second, OTHER_ACTOR, get_if_exists=True) == ACTOR


def test_dead_node_and_its_actors_are_gone_after_reload(redis_server: str) -> None:
    first = redis_store(redis_server)
    conn = register_node(first)
    register_actor(first)
    first.node_dead(NODE, "test")
    assert conn.closed

    second = redis_store(redis_server)
    assert NODE not in second.nodes
    assert second.actors == {} and second.names == {}


def test_a_lookup_of_an_actor_that_ended_before_a_restart_fails_at_once(redis_server: str) -> None:
    """The ids of ended actors were kept in memory only: after a restart, a lookup of one
    waited for its registration (as for an actor not registered yet) until it gave up."""
    first = redis_store(redis_server)
    register_node(first)
    register_actor(first)
    first.actor_dead(ACTOR)

    second = redis_store(redis_server)
    asker = FakeConn()
    second.lookup_actor(asker, 9, ACTOR, now=100.0)  # type: ignore[arg-type]
    assert [(r.rid, r.kind) for r in asker.sent] == [(9, ErrorKind.ACTOR_DIED)]
    second.actor_dead(OTHER_ACTOR)  # (numbered after those it found)
    assert list(second.gone_actors.items()) == [(ACTOR, 0), (OTHER_ACTOR, 1)]


def test_in_memory_control_store_keeps_nothing() -> None:
    first = ControlStore()
    register_node(first)
    register_actor(first)
    second = ControlStore()
    assert second.nodes == {} and second.actors == {} and second.names == {}


def test_reloaded_jobs_whose_drivers_do_not_come_back_are_forgotten(redis_server: str) -> None:
    first = redis_store(redis_server)
    for job_id, pid in ((b"\x05" * 4, 11), (b"\x06" * 4, 12)):
        first.handle(
            FakeConn(), m.JobStarted(job_id=job_id, namespace="ns", host="host-a", pid=pid)
        )  # type: ignore[arg-type]

    second = redis_store(redis_server)  # restarted while both drivers were away
    assert set(second.jobs) == {b"\x05" * 4, b"\x06" * 4}
    second.handle(
        FakeConn(), m.JobStarted(job_id=b"\x05" * 4, namespace="ns", host="host-a", pid=11)
    )  # type: ignore[arg-type]
    second.forget_unclaimed_jobs(second.loaded_at + 1.0)  # within the node timeout: kept
    assert len(second.jobs) == 2
    second.forget_unclaimed_jobs(second.loaded_at + second.node_timeout + 1)
    assert set(second.jobs) == {b"\x05" * 4}  # the driver that came back stays
    assert set(redis_store(redis_server).jobs) == {b"\x05" * 4}
