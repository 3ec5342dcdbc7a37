"""The reactor over a real socket pair: ordering, large messages, failing handlers, close."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading

import psutil
import pytest

from ember._protocol import messages as m
from ember._transport import reactor as reactor_mod
from ember._transport.reactor import Connection, OnClose, OnMessage, Reactor
from tests._helpers import wait_until


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

    @property
    def handler(self) -> tuple[OnMessage[None], OnClose[None]]:
        return self.on_message, self.on_close

    def wait_for(self, n: int) -> list[m.Message]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= n, timeout=10)
            return list(self.got)


def _pair(handler: _Collect) -> tuple[Reactor, Connection, socket.socket]:
    reactor = Reactor("test")
    reactor.start()
    a, b = socket.socketpair()
    conn = Connection(a, reactor, *handler.handler)
    reactor.adopt(conn)
    return reactor, conn, b


def test_messages_arrive_in_order_and_large_ones_whole():
    handler = _Collect()
    reactor, _, peer = _pair(handler)
    sender = Connection(peer, reactor, *_Collect().handler)
    reactor.adopt(sender)
    big = b"x" * (3 << 20)
    for i in range(100):
        sender.send(m.Reply(rid=i, value=big if i == 50 else i))
    got = handler.wait_for(100)
    assert [g.rid for g in got] == list(range(100))
    assert got[50].value == big
    reactor.stop()


def test_a_failing_handler_does_not_stop_the_loop(capfd):
    handler = _Collect(fail_first=True)
    reactor, _, peer = _pair(handler)
    sender = Connection(peer, reactor, *_Collect().handler)
    reactor.adopt(sender)
    sender.send(m.Reply(rid=1))
    sender.send(m.Reply(rid=2))
    assert [g.rid for g in handler.wait_for(1)] == [2]
    assert "a handler bug" in capfd.readouterr().err
    reactor.stop()


def test_peer_close_is_reported():
    handler = _Collect()
    reactor, _, peer = _pair(handler)
    peer.close()
    assert handler.closed.wait(10)
    reactor.stop()


def _listening(token: str | None) -> tuple[Reactor, _Collect, str]:
    reactor = Reactor("test")
    reactor.start()
    server = _Collect()
    address = reactor.listen("tcp:127.0.0.1:0", server.on_message, server.on_close, token=token)
    return reactor, server, address


def test_a_tcp_listener_with_a_token_serves_only_peers_that_show_it(capfd):
    reactor, server, address = _listening("s3cret")
    try:
        good = reactor.connect(address, *_Collect().handler, token="s3cret")
        good.send(m.Reply(rid=1, value="hello"))
        assert [g.value for g in server.wait_for(1)] == ["hello"]
        for token in (None, "wrong"):  # nothing first, or the wrong token: closed unread
            client = _Collect()
            bad = reactor.connect(address, client.on_message, client.on_close, token=token)
            bad.send(m.Reply(rid=2, value="should not arrive"))
            assert client.closed.wait(10)
        assert [g.value for g in server.got] == ["hello"]
        assert "did not present the cluster's token" in capfd.readouterr().err
    finally:
        reactor.stop()


def test_a_file_crosses_a_detached_connection(tmp_path):
    import os

    from ember._transport.bulk import FileReceiver, FileSender

    source = tmp_path / "source"
    payload = os.urandom(5 << 20)
    source.write_bytes(payload)
    reactor = Reactor("test")
    reactor.start()
    try:
        a, b = socket.socketpair()
        done = threading.Event()
        results: list[bool] = []

        def finished(ok: bool) -> None:
            results.append(ok)
            done.set()

        dest = str(tmp_path / "dest")
        # The file's first bytes travel as the sender's "head" (output a connection had not
        # flushed when it was detached); the receiver already read some (its "leftover").
        FileSender(reactor, a, payload[:10], os.open(source, os.O_RDONLY), len(payload)).start()
        leftover = b.recv(1000, socket.MSG_WAITALL)
        FileReceiver(reactor, b, leftover, dest, len(payload) + 10, finished).start()
        assert done.wait(10) and results == [True]
        with open(dest, "rb") as f:
            got = f.read()
        assert got == payload[:10] + payload
    finally:
        reactor.stop()


def test_a_large_transfer_leaves_room_for_the_loop_s_other_work(tmp_path):
    """A receiver used to read until the whole object was in whenever the sender kept up, so
    a node pulling 1 GB sent no heartbeats for seconds and was declared dead. Each wake-up
    now does at most a slice of the work (the selector wakes it again for the rest)."""
    import select

    from ember._transport import bulk
    from ember._transport.bulk import FileReceiver

    size = 8 * bulk._SLICE
    a, b = socket.socketpair()
    stop = threading.Event()

    def firehose() -> None:  # a peer that always has more bytes ready
        chunk = b"x" * (1 << 20)
        with contextlib.suppress(OSError):
            while not stop.is_set():
                a.sendall(chunk)

    writer = threading.Thread(target=firehose, daemon=True)
    writer.start()
    reactor = Reactor("test")
    receiver = FileReceiver(reactor, b, b"", str(tmp_path / "dest"), size, lambda ok: None)
    try:
        assert select.select([b], [], [], 10)[0]
        receiver.on_event(True, False)
        assert 0 < receiver.got <= bulk._SLICE + bulk._PIPE < size
    finally:
        receiver.abort()
        stop.set()
        a.close()
        b.close()
        writer.join(10)


def test_a_peer_without_the_token_cannot_make_the_listener_buffer_much(capfd):
    reactor, server, address = _listening("s3cret")
    try:
        host, port = address[4:].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            # The header of a 1 GiB binary, then bytes: without the token, refused at 4 KiB.
            sock.sendall(b"\xc6" + (1 << 30).to_bytes(4, "big") + b"x" * 8192)
            sock.settimeout(5)
            assert sock.recv(100) == b""
        assert server.got == []
        assert "did not present the cluster's token" in capfd.readouterr().err
    finally:
        reactor.stop()


_TOKEN = "0123456789abcdef" * 2  # as long as a real one
_STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} test: refused", re.M)


def _raw_peer(address: str) -> socket.socket:
    host, port = address[4:].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _closed_by_peer(sock: socket.socket) -> bool:
    """Without waiting: has the other end closed (EOF or reset)?"""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.parametrize(
    "header",
    [
        b"\xc6\xff\xff\xff\xff",  # a 4 GB binary
        b"\x92" + bytes([m.Auth.CODE]) + b"\xdb\xff\xff\xff\xff",  # Auth with a 4 GB token
    ],
)
def test_a_huge_length_header_is_refused_at_once(capfd, monkeypatch, header):
    """A few KiB behind a 4 GB length header used to be held open, waiting for the rest:
    the right Auth is a few dozen bytes, so a first message longer than that is refused."""
    monkeypatch.setattr(reactor_mod, "AUTH_SECONDS", 60.0)  # not what closes it here
    reactor, server, address = _listening(_TOKEN)
    try:
        with _raw_peer(address) as sock:
            sock.sendall(header + b"x" * 3000)
            assert sock.recv(100) == b""  # (a hang fails on the socket's timeout)
        assert server.got == []
        err = capfd.readouterr().err
        assert "did not present the cluster's token" in err and _STAMPED.search(err)
    finally:
        reactor.stop()


@pytest.mark.parametrize("slow", [False, True])
def test_a_peer_that_does_not_authenticate_in_time_is_closed(capfd, monkeypatch, slow):
    """A silent peer, or one sending a byte at a time (slowloris), used to keep its
    connection for ever."""
    monkeypatch.setattr(reactor_mod, "AUTH_SECONDS", 0.5)
    reactor, server, address = _listening(_TOKEN)
    try:
        with _raw_peer(address) as sock:
            auth = reactor_mod._packb(m.Auth(token=_TOKEN).encode())
            sock.settimeout(0.1 if slow else 10)
            sent = 0
            while True:
                try:
                    if sock.recv(1) == b"":
                        break
                except TimeoutError:  # (slow: a byte every 0.1 s while the peer waits)
                    sock.sendall(auth[sent : sent + 1])
                    sent += 1
                assert sent < len(auth) - 1, "the listener waited for all of Auth"
        assert server.got == []
        err = capfd.readouterr().err
        assert "did not present the cluster's token within 0.5 s" in err and _STAMPED.search(err)
    finally:
        reactor.stop()


def _listening_later(token: str | None) -> tuple[Reactor, _Collect, str]:
    """A listener whose loop is not running yet: connections made meanwhile wait in its
    backlog (with whatever they sent), and the loop finds them all at once when started."""
    reactor = Reactor("test")
    server = _Collect()
    address = reactor.listen("tcp:127.0.0.1:0", server.on_message, server.on_close, token=token)
    return reactor, server, address


def _authenticated_peer(address: str, text: str) -> socket.socket:
    """A peer that sends Auth and a message with its first bytes, as Ember's processes do."""
    sock = _raw_peer(address)
    pack = reactor_mod._packb
    sock.sendall(pack(m.Auth(token=_TOKEN).encode()) + pack(m.Reply(rid=1, value=text).encode()))
    return sock


def test_few_connections_may_wait_to_authenticate_at_once(capfd, monkeypatch):
    """Past the cap, the oldest waiting connection is closed; a peer that shows the token
    with its connection is served and never waits."""
    monkeypatch.setattr(reactor_mod, "MAX_UNAUTHENTICATED", 4)
    reactor, server, address = _listening_later(_TOKEN)
    silent = [_raw_peer(address) for _ in range(10)]
    good = _authenticated_peer(address, "hello")
    try:
        reactor.start()
        # Accepted after all the silent ones (in order), so they were all accepted first:
        # 10 - 4 were closed, oldest first.
        assert [g.value for g in server.wait_for(1)] == ["hello"]
        assert [_closed_by_peer(s) for s in silent] == [True] * 6 + [False] * 4
        assert not _closed_by_peer(good)
        err = capfd.readouterr().err
        assert err.count("connections were waiting to authenticate") == 6
        assert _STAMPED.search(err)
    finally:
        reactor.stop()
        for s in [*silent, good]:
            s.close()


def test_a_burst_of_silent_connections_does_not_push_out_a_peer_that_showed_the_token(
    monkeypatch,
):
    """The loop accepted until nothing was left and closed the oldest waiting connection as
    it went: a peer accepted just before a burst of silent ones was closed before its Auth,
    already in its socket, was read. It is read as the peer is accepted now."""
    monkeypatch.setattr(reactor_mod, "MAX_UNAUTHENTICATED", 4)
    reactor, server, address = _listening_later(_TOKEN)
    good = _authenticated_peer(address, "hello")
    silent = [_raw_peer(address) for _ in range(10)]
    try:
        reactor.start()
        assert [g.value for g in server.wait_for(1)] == ["hello"]
        assert not _closed_by_peer(good)
    finally:
        reactor.stop()
        for s in [good, *silent]:
            s.close()


def test_a_flood_of_connections_leaves_the_loop_time_for_its_timers(monkeypatch):
    """The loop used to accept until the backlog was empty: a peer opening connections as
    fast as it could kept it there, its timers (heartbeats) stopped and its node was
    declared dead. It accepts a bounded number per wake-up and looks at the rest again."""
    monkeypatch.setattr(reactor_mod, "AUTH_SECONDS", 600.0)
    accepted: list[int] = []
    timer_saw: list[int] = []
    server = _Collect()
    reactor = Reactor("test")

    await_auth = reactor._await_auth

    def accept(conn: Connection) -> None:  # (each of the flood, silent, waits for its Auth)
        accepted.append(1)
        if len(accepted) == 1:  # a timer due at once, while the rest still wait
            reactor.call_later(0, lambda: timer_saw.append(len(accepted)))
        await_auth(conn)

    monkeypatch.setattr(reactor, "_await_auth", accept)
    address = reactor.listen("tcp:127.0.0.1:0", server.on_message, server.on_close, token=_TOKEN)
    flood = [_raw_peer(address) for _ in range(100)]
    try:
        reactor.start()
        good = reactor.connect(address, *_Collect().handler, token=_TOKEN)
        good.send(m.Reply(rid=1, value="hello"))
        server.wait_for(1)  # (after every one of the flood was accepted)
        assert timer_saw and timer_saw[0] <= 2 * reactor_mod.ACCEPTS_PER_WAKEUP, timer_saw
    finally:
        reactor.stop()
        for s in flood:
            s.close()


def test_refusals_under_a_flood_are_logged_at_a_bounded_rate(capfd, monkeypatch):
    """Each refused connection wrote a line, however many came: a flood filled the log, which
    lives on tmpfs (memory). Past a few per interval they are counted in one line."""
    monkeypatch.setattr(reactor_mod, "REFUSAL_LOG_INTERVAL", 2.0)
    reactor, server, address = _listening_later(_TOKEN)
    flood = []
    for _ in range(60):  # each sends something else than Auth: refused at once
        flood.append(_raw_peer(address))
        flood[-1].sendall(b"\x00" * 40)
    try:
        reactor.start()
        good = reactor.connect(address, *_Collect().handler, token=_TOKEN)
        good.send(m.Reply(rid=1, value="hello"))
        assert [g.value for g in server.wait_for(1)] == ["hello"]
        for s in flood:
            s.settimeout(10)
            assert s.recv(1) == b""  # every one refused
        err = ""

        def stderr() -> str:
            nonlocal err
            err += capfd.readouterr().err
            return err

        # the interval's count, at its end
        wait_until(stderr, 10, "the count of refusals", until=lambda t: "more connections" in t)
        assert err.count("refused a connection from") == reactor_mod.REFUSALS_LOGGED
        assert f"refused {60 - reactor_mod.REFUSALS_LOGGED} more connections" in err
    finally:
        reactor.stop()
        for s in flood:
            s.close()


def test_peers_that_have_not_authenticated_cost_little_memory(monkeypatch):
    """Each accepted connection had a 256 KiB receive buffer and an unpacker from the start:
    3,000 idle connections took a process from 19 MB to 900 MB. Now they share the loop's
    buffer and get an unpacker once they authenticate."""
    monkeypatch.setattr(reactor_mod, "MAX_UNAUTHENTICATED", 10_000)  # to measure each one
    monkeypatch.setattr(reactor_mod, "AUTH_SECONDS", 600.0)
    reactor, server, address = _listening(_TOKEN)
    peers: list[socket.socket] = []
    try:
        me = psutil.Process()
        before = me.memory_info().rss
        for _ in range(500):
            peers.append(_raw_peer(address))
            peers[-1].sendall(b"\x92")
        good = reactor.connect(address, *_Collect().handler, token=_TOKEN)
        good.send(m.Reply(rid=1, value="hello"))
        server.wait_for(1)  # so every one of them was accepted and read (see above)
        grown = me.memory_info().rss - before
        assert grown < 500 * 16 * 1024, f"{grown / 500 / 1024:.0f} KiB per connection"
        assert len(reactor._unauthenticated) == 500
    finally:
        reactor.stop()
        for s in peers:
            s.close()


def test_a_receiver_that_cannot_start_leaves_nothing_behind(tmp_path):
    """It raises, and neither its file nor any descriptor is left (the pull then fails)."""
    import os

    import pytest

    from ember._transport.bulk import FileReceiver

    a, b = socket.socketpair()
    reactor = Reactor("test")
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError):  # a size the file cannot take
        FileReceiver(reactor, b, b"", str(tmp_path / "dest"), -1, lambda ok: None)
    assert len(os.listdir("/proc/self/fd")) == before
    assert not (tmp_path / "dest").exists()
    reactor.stop()
    a.close()
    b.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to listen as another user")
def test_a_local_socket_served_by_another_user_is_not_talked_to():
    """Anyone may bind an abstract name (a dead worker's, say): the caller checks who
    listens before sending anything."""
    address = f"unix:@ember-test-{os.getpid()}/squatted"
    bound_r, bound_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # as nobody: listen on the name until the test is done
        try:
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind(reactor_mod.parse_address(address)[1])
                sock.listen(1)
                os.write(bound_w, b"!")
                os.read(done_r, 1)
        finally:
            os._exit(0)
    try:
        assert os.read(bound_r, 1) == b"!"
        with pytest.raises(PermissionError, match="another user's process"):
            reactor_mod.connect_socket(address)
    finally:
        os.write(done_w, b"!")
        os.waitpid(pid, 0)
        for fd in (bound_r, bound_w, done_r, done_w):
            os.close(fd)


def test_local_sockets_have_paths_only_where_there_are_no_abstract_names(monkeypatch, tmp_path):
    """Linux: an abstract name, whatever TMPDIR's length. Elsewhere a path in the session's
    folder, and one too long says which variable to change."""
    session = tmp_path / ("s" * 150)
    assert reactor_mod.local_address(str(session), "node").startswith("unix:@ember-")
    monkeypatch.setattr(reactor_mod, "ABSTRACT_SOCKETS", False)
    with pytest.raises(OSError, match="set TMPDIR to a shorter folder"):
        reactor_mod.local_address(str(session), "node")
    short = tmp_path / "s"
    short.mkdir()
    monkeypatch.setattr(reactor_mod, "_SUN_PATH_MAX", 4096)  # whatever TMPDIR this test has
    assert reactor_mod.local_address(str(short), "node") == f"unix:{short}/sockets/node"
    assert oct((short / "sockets").stat().st_mode & 0o777) == "0o700"


_SIGNAL_INSIDE_CALL_SOON = """
import collections, os, signal
from ember._transport.reactor import Reactor

reactor = Reactor("t")
signal.signal(signal.SIGUSR1, lambda *_: reactor.call_soon(reactor.stop))


class Interrupted(collections.deque):
    # The worst moment for a stop signal: while call_soon is queueing a callback.
    def append(self, fn):
        super().append(fn)
        if fn != reactor.stop:
            os.kill(os.getpid(), signal.SIGUSR1)
            sum(range(10))  # (Python code, where the handler runs)


reactor._pending = Interrupted()
reactor.call_soon(lambda: None)
reactor.run()
print("stopped")
"""


def test_a_signal_handler_may_call_call_soon_while_the_loop_s_thread_is_in_it():
    """A node's SIGTERM handler queues its shutdown with call_soon on the loop's own thread,
    which the signal may interrupt inside call_soon: a lock there deadlocked the node (it
    was killed at shutdown, its logs left behind)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _SIGNAL_INSIDE_CALL_SOON], capture_output=True, text=True, timeout=30
    )
    assert out.stdout.strip() == "stopped", out.stderr
