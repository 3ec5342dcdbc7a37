"""Requests and replies (``Calls``) over a real socket pair and reactor."""

from __future__ import annotations

import socket
import threading

import pytest

from ember._protocol import messages as m
from ember._transport.reactor import Connection, Reactor
from ember._transport.rpc import Calls, RemoteError


class _Client:
    """A connection's handler as a client has it: replies and the close go to ``calls``."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.closed = threading.Event()

    def on_message(self, conn: Connection, msg: m.Message) -> None:
        if isinstance(msg, m.Reply):
            self.calls.on_reply(msg)

    def on_close(self, conn: Connection) -> None:
        self.calls.on_close(conn)
        self.closed.set()


def _closed_connection(reactor: Reactor, calls: Calls) -> Connection:
    a, b = socket.socketpair()
    handler = _Client(calls)
    conn = Connection(a, reactor, handler.on_message, handler.on_close)
    reactor.adopt(conn)
    b.close()
    assert handler.closed.wait(10)  # its on_close (and so calls.on_close) has run
    return conn


def test_a_call_on_a_connection_that_closed_just_before_is_answered():
    """A thread could register a call in the gap after the loop had failed the connection's
    calls (``on_close``) and before the client's own close handling ran: nothing ever
    answered it. It is answered ConnectionLost, on the loop like any reply."""
    calls = Calls()
    reactor = Reactor("test")
    reactor.start()
    try:
        conn = _closed_connection(reactor, calls)
        answered = threading.Event()
        got: list[tuple[m.Reply, bool]] = []

        def on_reply(reply: m.Reply) -> None:
            got.append((reply, reactor.in_reactor()))
            answered.set()

        calls.call(conn, lambda rid: m.ClusterInfo(rid=rid), on_reply)
        assert answered.wait(10)
        [(reply, on_loop)] = got
        assert reply.kind is m.ErrorKind.CONNECTION_LOST
        assert on_loop
        assert calls._waiting == {}
    finally:
        reactor.stop()


def test_a_future_on_a_closed_connection_fails_even_once_the_loop_has_stopped():
    calls = Calls()
    reactor = Reactor("test")
    reactor.start()
    conn = _closed_connection(reactor, calls)
    reactor.stop()
    fut = calls.future(conn, lambda rid: m.ClusterInfo(rid=rid))
    error = fut.exception(timeout=10)
    assert isinstance(error, RemoteError) and error.kind is m.ErrorKind.CONNECTION_LOST


def test_a_request_that_cannot_be_sent_leaves_no_call_waiting():
    """Encoding happens in ``send``, after the rid is registered: a request msgpack cannot
    encode raises there and must not stay waiting for an answer that never comes."""
    calls = Calls()
    reactor = Reactor("test")
    reactor.start()
    a, b = socket.socketpair()
    try:
        conn = Connection(a, reactor, _Client(calls).on_message, _Client(calls).on_close)
        reactor.adopt(conn)

        def bad(rid: int) -> m.Message:
            return m.StateQuery(rid=rid, kind="tasks", filters=[["name", "=", object()]])

        with pytest.raises(TypeError):
            calls.call(conn, bad, lambda reply: None)
        assert calls._waiting == {}
    finally:
        reactor.stop()
        b.close()
