"""The reactor over a real socket pair: ordering, large messages, failing handlers, close."""

from __future__ import annotations

import socket
import threading

from ember._protocol import messages as m
from ember._transport.reactor import Connection, Reactor


class _Collect:
    def __init__(self, fail_first: bool = False) -> None:
        self.got: list[m.Message] = []
        self.fail_first = fail_first
        self.closed = threading.Event()
        self.cond = threading.Condition()

    def on_message(self, conn: Connection, msg: m.Message) -> None:
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("a handler bug")
        with self.cond:
            self.got.append(msg)
            self.cond.notify_all()

    def on_close(self, conn: Connection) -> None:
        self.closed.set()

    def wait_for(self, n: int) -> list[m.Message]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= n, timeout=10)
            return list(self.got)


def _pair(handler: _Collect) -> tuple[Reactor, Connection, socket.socket]:
    reactor = Reactor("test")
    reactor.start()
    a, b = socket.socketpair()
    conn = Connection(a, reactor, handler)
    reactor.adopt(conn)
    return reactor, conn, b


def test_messages_arrive_in_order_and_large_ones_whole():
    handler = _Collect()
    reactor, _, peer = _pair(handler)
    sender = Connection(peer, reactor, _Collect())
    reactor.adopt(sender)
    big = b"x" * (3 << 20)
    for i in range(100):
        sender.send(m.Reply(i, None, big if i == 50 else i))
    got = handler.wait_for(100)
    assert [g.rid for g in got] == list(range(100))
    assert got[50].value == big
    reactor.stop()


def test_a_failing_handler_does_not_stop_the_loop(capfd):
    handler = _Collect(fail_first=True)
    reactor, _, peer = _pair(handler)
    sender = Connection(peer, reactor, _Collect())
    reactor.adopt(sender)
    sender.send(m.Reply(1, None))
    sender.send(m.Reply(2, None))
    assert [g.rid for g in handler.wait_for(1)] == [2]
    assert "a handler bug" in capfd.readouterr().err
    reactor.stop()


def test_peer_close_is_reported():
    handler = _Collect()
    reactor, _, peer = _pair(handler)
    peer.close()
    assert handler.closed.wait(10)
    reactor.stop()
