"""The wire format: every message survives encode -> msgpack -> decode, and anything else is
refused with ``UnknownMessage``."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from ember._protocol import messages as m
from ember._protocol import wire
from ember._transport.rpc import Calls, RemoteError


def _roundtrip(msg: m.Message) -> m.Message:
    return m.decode(msgpack.unpackb(msgpack.packb(msg.encode(), use_bin_type=True), raw=False))


_RECORD_SAMPLES: dict[str, Any] = {
    "results": [],
    "spec": None,
    "value": m.ReturnValue(m.INLINE, b"x", [], b""),
    "bundles": [m.Bundle(0, {"CPU": 1.0})],
    "actors": [m.NamedActorEntry("a", "ns")],
    "entries": [m.PlacementGroupEntry(b"p", "", [{"CPU": 1.0}], [None], "PACK", "PENDING", 0)],
    "points": [m.MetricPoint("histogram", "h", "", [["k", "v"]], 1.5, [1.0], [1, 0])],
}


def _sample(cls: type[m.Message]) -> m.Message:
    values: dict[str, Any] = {n: f"{n}-value" for n in cls.__slots__}
    values.update({n: _RECORD_SAMPLES[n] for n in cls._records})
    return cls(**values)


@pytest.mark.parametrize("cls", sorted(wire._BY_CODE.values(), key=lambda c: c.CODE))
def test_every_message_round_trips(cls: type[m.Message]) -> None:
    msg = _sample(cls)
    back = _roundtrip(msg)
    assert type(back) is cls
    assert back == msg
    assert repr(back) == repr(msg)


def test_defaults_and_keywords() -> None:
    task = m.PushTask(
        task_id=b"t", fn_id=b"f", blob=b"", deps=[], num_returns=1, name="f", owner_id=b"o"
    )
    assert task.lease_id == 0 and task.gpu_ids == () and task.resources is None
    assert _roundtrip(task).encode() == [*task.encode()[:9], [], *task.encode()[10:]]
    assert m.Reply(rid=3).encode() == [m.Reply.CODE, 3, None, None]


def test_decode_builds_without_the_constructor() -> None:
    done = m.decode([m.TaskDone.CODE, b"t", [[m.INLINE, b"x", [], b""]]])
    assert isinstance(done, m.TaskDone)
    assert done.task_id == b"t" and done.results == [(m.INLINE, b"x", [], b"")]
    assert not done.retiring


@pytest.mark.parametrize("raw", [[], [9999, 1], ["Reply", 1], [[1], 2], 5])
def test_unknown_messages_are_refused(raw: Any) -> None:
    with pytest.raises(m.UnknownMessage):
        m.decode(raw)


def test_error_kinds_travel_as_their_names() -> None:
    reply = m.error_reply(4, m.ErrorKind.OWNER_DIED, "gone", b"cause")
    assert reply.encode() == [m.Reply.CODE, 4, ["OwnerDiedError", "gone"], b"cause"]
    back = _roundtrip(reply)
    assert isinstance(back, m.Reply)
    assert back.kind is m.ErrorKind.OWNER_DIED and back.value == b"cause"
    assert m.Reply(rid=4, value=1).kind is None


def test_task_results_decode_into_records() -> None:
    stored = m.ReturnValue(m.STORED, 1 << 20, [[b"i", b"o"]], b"node")
    done = _roundtrip(m.TaskDone(task_id=b"t", results=[m.ReturnValue(m.INLINE, b"x"), stored]))
    assert isinstance(done, m.TaskDone)
    inline, back = done.results
    assert isinstance(inline, m.ReturnValue) and inline.data == b"x" and not inline.contained
    assert back.kind == m.STORED and back.node_id == b"node" and back.contained == [[b"i", b"o"]]


def test_actor_spec_travels_as_a_record() -> None:
    spec = m.ActorSpec(b"fn", b"blob", [[m.STORED, b"dep"]], b"", "Counter", 4, b"job", "ns", b"o")
    start = m.StartActor(rid=1, actor_id=b"a", spec=spec, incarnation=0, gpu_ids=[])
    back = _roundtrip(start)
    assert isinstance(back, m.StartActor)
    assert isinstance(back.spec, m.ActorSpec) and back.spec == spec
    assert back.spec.max_concurrency == 4
    pending = _roundtrip(m.ActorArgs(actor_id=b"a", spec=None, error=b"boom"))
    assert isinstance(pending, m.ActorArgs) and pending.spec is None


class _Conn:
    closed = False

    def __init__(self) -> None:
        self.sent: list[m.Message] = []

    def send(self, msg: m.Message) -> None:
        self.sent.append(msg)


def test_a_typed_answer_resolves_its_request() -> None:
    calls = Calls()
    conn = _Conn()
    fut = calls.future(conn, lambda rid: m.RequestLease(rid=rid, shape={}, owner_id=b"o"))
    [request] = conn.sent
    assert isinstance(request, m.RequestLease)
    grant = m.LeaseGranted(
        rid=request.rid,
        lease_id=7,
        worker_id=b"w",
        addr="a",
        gpu_ids=[],
        saturated=False,
        node_id=b"n",
    )
    back = _roundtrip(grant)
    assert isinstance(back, m.LeaseGranted)
    calls.on_reply(back)
    assert fut.result(timeout=0) == grant


def test_an_error_reply_fails_a_request_with_its_kind() -> None:
    calls = Calls()
    conn = _Conn()
    fut = calls.future(conn, lambda rid: m.WorkerExit(rid=rid, worker_id=b"w"))
    calls.on_reply(m.error_reply(1, m.ErrorKind.UNSCHEDULABLE, "no node has 9 GPUs"))
    error = fut.exception(timeout=0)
    assert isinstance(error, RemoteError) and error.kind is m.ErrorKind.UNSCHEDULABLE


def test_replace_copies_with_changes() -> None:
    ask = m.LookupActor(rid=1, actor_id=b"a")
    again = m.replace(ask, rid=2)
    assert again == m.LookupActor(rid=2, actor_id=b"a") and ask.rid == 1


def test_a_builder_makes_the_same_message_as_the_class() -> None:
    build = m.builder(m.TaskDone)
    done = build(task_id=b"t", results=[m.ReturnValue(m.INLINE, b"x")])
    assert type(done) is m.TaskDone
    assert done == m.TaskDone(task_id=b"t", results=[m.ReturnValue(m.INLINE, b"x")])
    assert done.retiring is False  # (defaults as the class's)
    with pytest.raises(TypeError):
        build(b"t", [])  # type: ignore[misc]  # keyword-only, as the class


def test_the_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        m.Reply(1)  # type: ignore[misc]
    assert m.Reply(rid=1).rid == 1
