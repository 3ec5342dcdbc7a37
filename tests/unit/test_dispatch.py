"""Handlers' explicit branch for a message they do not take: a request gets an UNEXPECTED
error, anything else closes the connection."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from ember._protocol import messages as m
from ember._runtime.client.core_client import CoreClient
from ember._runtime.control_store.server import ControlStore
from ember._runtime.node.actor_manager import ActorManager
from ember._runtime.node.cluster_link import ClusterLink
from ember._runtime.node.manager import NodeManager
from ember._runtime.node.object_directory import ObjectDirectory
from ember._runtime.worker.worker import Worker
from ember._transport.rpc import refuse


class _Conn:
    def __init__(self) -> None:
        self.sent: list[m.Message] = []
        self.peer: Any = None
        self.closed = False

    def send(self, msg: m.Message) -> None:
        self.sent.append(msg)

    def close(self) -> None:
        self.closed = True


def test_an_unexpected_request_is_answered_with_an_error() -> None:
    conn = _Conn()
    ControlStore().handle(conn, m.WaitObject(rid=5, object_id=b"o", owner_id=b"w"))  # type: ignore[arg-type]
    [reply] = conn.sent
    assert isinstance(reply, m.Reply) and reply.rid == 5
    assert reply.kind is m.ErrorKind.UNEXPECTED
    assert reply.error is not None and "WaitObject" in reply.error[1]
    assert not conn.closed


@pytest.mark.parametrize(
    "msg",
    [
        m.PushTask(
            task_id=b"t", fn_id=b"f", blob=b"", deps=[], num_returns=1, name="f", owner_id=b"o"
        ),
        m.Reply(rid=3, value=1),  # an answer to nothing it asked: never answered back
    ],
)
def test_an_unexpected_notice_closes_the_connection(msg: m.Message) -> None:
    conn = _Conn()
    refuse(conn, msg, "the control store")
    assert conn.sent == [] and conn.closed


@pytest.mark.parametrize(
    "dispatch",
    [
        NodeManager.handle,
        ClusterLink.gcs_message,
        ActorManager.remote_message,
        ObjectDirectory.pull_message,
        Worker.caller_message,
        Worker.on_node_message,
        CoreClient._on_node_message,
        CoreClient._on_peer_message,
    ],
    ids=lambda f: f.__qualname__,
)
def test_every_role_answers_a_request_it_does_not_take(dispatch: Callable[..., None]) -> None:
    """Each role's message method ends in the explicit branch. The node's and the client's
    dropped what no branch took: the sender of such a request waited for ever."""
    conn = _Conn()
    conn.peer = b"o"  # (a pull's connection knows its object)
    role = SimpleNamespace(extra_handler=None)  # no state: the branch taken reads none
    dispatch(role, conn, m.GetNodes(rid=7))
    [reply] = conn.sent
    assert isinstance(reply, m.Reply) and reply.rid == 7
    assert reply.kind is m.ErrorKind.UNEXPECTED
    assert not conn.closed
