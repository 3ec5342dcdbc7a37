"""A selector loop that owns a process's sockets.

Theory of operation: one thread (the reactor) reads every socket and hands each decoded message
to the connection's handler, in order. Any thread may send: ``Connection.send`` writes straight
to the non-blocking socket, and only when the kernel buffer is full does the rest wait in an
output buffer that the reactor flushes. So the hot path (send a task, receive its result) costs
one system call on each side and no thread hand-off on the sending side.

Messages are msgpack arrays written back to back; msgpack's streaming unpacker finds the
boundaries, so there is no extra framing. Addresses are ``unix:/path``, ``unix:@name`` (an
abstract name) or ``tcp:host:port``.

TCP reaches beyond this user's files, so a TCP listener may require a token: the first message
on each accepted connection must be ``Auth`` with it, and a connection that sends anything else
first is logged (at a bounded rate) and closed before any of its data is looked at further.
Until then a peer costs little: no receive buffer or unpacker of its own, at most the length of
that ``Auth`` in bytes, ``AUTH_SECONDS`` to show it, and at most ``MAX_UNAUTHENTICATED`` such
peers at once; and the loop accepts a bounded number of connections per wake-up. Local
sockets are Linux abstract names (``unix:@name``): no path, so no length limit and nothing to
clean up, but no file permissions either, so both ends check that the other runs as this user
(or root) before anything is exchanged. Elsewhere they are paths in a folder only this user can
open. A connection can also be *detached* from the loop to carry raw bytes, such as an
object's contents (``RawChannel``).
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import hmac
import itertools
import os
import selectors
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgpack

from ember._protocol.messages import Auth, Message, decode

_READ_SIZE = 1 << 18
# A peer that must authenticate sends Auth with its first bytes, so this covers a loaded
# machine many times over, while a silent or trickling peer (one byte a second) is closed
# before it can pile up with others.
AUTH_SECONDS = 5.0
# Accepted connections waiting to authenticate, at most, per process: each costs a few KiB
# and a descriptor. Peers authenticate within a round trip, so even a large cluster's nodes
# all connecting at once stay far below it; past it the oldest waiting one is closed, so a
# flood of silent connections cannot lock legitimate peers out (and a peer whose Auth came
# with its connection is served at once, never waiting: see ``Reactor._accept``).
MAX_UNAUTHENTICATED = 128
# Connections accepted per wake-up of the loop, at most: a peer opening connections as fast
# as it can must not keep the loop from its timers (heartbeats) and other sockets.
ACCEPTS_PER_WAKEUP = 32
# Refused connections logged one by one per interval, at most; the rest are counted in one
# line at the interval's end, so that a flood neither fills the log (often on tmpfs: memory)
# nor spends the loop's time writing it.
REFUSALS_LOGGED = 10
REFUSAL_LOG_INTERVAL = 10.0
# Local sockets have Linux's abstract names there (see the module docstring); elsewhere paths.
ABSTRACT_SOCKETS = sys.platform == "linux"
_SUN_PATH_MAX = 104  # sockaddr_un's sun_path elsewhere (macOS, the BSDs), with its closing NUL
_packb = msgpack.Packer(use_bin_type=True).pack


P = TypeVar("P")


def parse_address(address: str) -> tuple[int, Any]:
    kind, _, rest = address.partition(":")
    if kind == "unix":
        return socket.AF_UNIX, "\0" + rest[1:] if rest.startswith("@") else rest
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        return socket.AF_INET, (host, int(port))
    raise ValueError(
        f"bad address {address!r}: expected 'unix:/path', 'unix:@name' or 'tcp:host:port'"
    )


def local_address(session_dir: str, name: str) -> str:
    """The address of the local socket ``name`` of the session in ``session_dir``."""
    if ABSTRACT_SOCKETS:
        # Unique per session (its folder's name is random), and the uid keeps users apart.
        return f"unix:@ember-{os.getuid()}-{os.path.basename(session_dir)}/{name}"
    folder = os.path.join(session_dir, "sockets")
    path = os.path.join(folder, name)
    if len(os.fsencode(path)) >= _SUN_PATH_MAX:
        raise OSError(
            f"the socket path {path} is longer than this system allows "
            f"({_SUN_PATH_MAX - 1} bytes): set TMPDIR to a shorter folder"
        )
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return f"unix:{path}"


def connect_socket(address: str, timeout: float = 10.0) -> socket.socket:
    family, where = parse_address(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(where)
        if family == socket.AF_UNIX and ABSTRACT_SOCKETS:
            # Anyone may bind an abstract name, e.g. a dead worker's: talk only to our own.
            pid, uid = peer_credentials(sock)
            if not _trusted(uid):
                raise PermissionError(
                    f"{address} is served by another user's process (pid {pid}, uid {uid}); "
                    "refusing to talk to it"
                )
    except OSError:
        sock.close()
        raise
    return sock


def peer_credentials(sock: socket.socket) -> tuple[int, int]:
    """(pid, effective uid) of the process at the other end of a local socket (Linux)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", creds)
    return pid, uid


def _trusted(uid: int) -> bool:
    return uid == os.geteuid() or uid == 0


class Connection(Generic[P]):
    """One socket to a peer. ``send`` is safe from any thread. ``peer`` is what the role that
    owns the connection knows of the other side (a ``P``: say its client record), once it
    does."""

    def __init__(
        self,
        sock: socket.socket,
        reactor: Reactor,
        on_message: OnMessage[P],
        on_close: OnClose[P],
        token: str | None = None,
    ) -> None:
        sock.setblocking(False)
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.reactor = reactor
        self.on_message = on_message
        self.on_close = on_close
        self.closed = False
        self.peer: P | None = None
        self.node = b""  # the node the peer runs on, when it matters (cluster failures)
        self._out = bytearray()
        self._lock = threading.Lock()
        # The reactor's receive buffer, shared by all its connections (only its thread
        # reads): recv() of a large size would allocate memory on every call, and a buffer
        # per connection cost 256 KiB each, kept after close too (freeing one raises glibc's
        # mmap threshold, so the next ones came from the heap, which seldom shrinks).
        self._inbuf = reactor._inbuf
        self._inview = reactor._inview
        self._token = token  # what an accepted peer must show before anything else
        self._pre = bytearray()  # bytes of a peer that has not authenticated yet
        if token is None:
            self._new_unpacker()  # (a peer that must authenticate gets one once it has)

    def _new_unpacker(self) -> None:
        # About 40 KiB each (its parse stack), so only for peers that may talk.
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 31)

    def send(self, msg: Message) -> None:
        self.send_raw(_packb(msg.encode()))

    def send_raw(self, data: bytes) -> None:
        with self._lock:
            if self.closed:
                return
            if self._out:
                self._out += data
                return
            try:
                n = self.sock.send(data)
            except BlockingIOError:
                n = 0
            except OSError:
                n = len(data)  # the reactor sees the broken socket and closes it
            if n < len(data):
                self._out += memoryview(data)[n:]
                self.reactor.watch_write(self)

    def close(self) -> None:
        self.reactor.call_soon(self._close)

    def sent(self) -> bool:
        """Write what is buffered, as far as the socket takes it: True when all has gone."""
        return self._flush()

    # -- reactor thread only --------------------------------------------------------------

    def _flush(self) -> bool:
        """Write buffered output; True when everything is written."""
        with self._lock:
            while self._out:
                try:
                    n = self.sock.send(self._out)
                except BlockingIOError:
                    return False
                except OSError:
                    self._out.clear()
                    return True
                del self._out[:n]
            return True

    def _read(self) -> bool:
        try:
            n = self.sock.recv_into(self._inbuf)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not n:
            return False
        data: Any = self._inview[:n]
        if self._token is not None:
            data = self._authenticate(data)
            if data is None:
                return False
            if self._token is not None:
                return True  # Auth is not complete yet
        self._unpacker.feed(data)
        on_message = self.on_message
        for raw in self._unpacker:
            try:
                on_message(self, decode(raw))
            except Exception:  # one bad message must not stop the loop
                _report(f"{self.reactor.name}: error while handling a message")
            if self.closed:
                return True
        return True

    def _authenticate(self, data: memoryview) -> bytes | None:
        """Look for ``Auth`` with the token in the first bytes a peer sends, holding no more
        than that message's length meanwhile. Returns what follows it (the peer is then
        authenticated), b"" while it is incomplete, or None to refuse."""
        token = self._token or ""
        need = len(_packb(Auth(token=token).encode()))
        self._pre += data
        probe = msgpack.Unpacker(raw=False, max_buffer_size=need)
        try:
            probe.feed(bytes(self._pre[:need]))
            raw = next(probe)
        except StopIteration:
            if len(self._pre) < need:
                return b""  # not all of it yet (AUTH_SECONDS bounds the wait)
            raw = None  # longer than the right Auth: say a 4 GB length header
        except Exception:  # not even msgpack: refused like a wrong token
            raw = None
        shown = raw[1] if isinstance(raw, list) and len(raw) == 2 and raw[0] == Auth.CODE else None
        if not (isinstance(shown, str) and hmac.compare_digest(shown.encode(), token.encode())):
            self.refuse("it did not present the cluster's token")
            return None
        self._token = None
        self.reactor._done_waiting(self)
        self._new_unpacker()
        rest = bytes(self._pre[probe.tell() :])
        self._pre = bytearray()
        return rest

    def refuse(self, why: str) -> None:
        """Reactor thread: log why a peer is not served, and close its connection."""
        if self.reactor._refusal_logged():
            try:
                who: Any = self.sock.getpeername()
            except OSError:
                who = "?"
            _log(f"{self.reactor.name}: refused a connection from {who}: {why}")
        self.reactor._done_waiting(self)
        self._close()

    def detach(self) -> tuple[socket.socket, bytes, bytes]:
        """Reactor thread: take the socket out of the loop to carry raw bytes. Returns it with
        the bytes already received past the last message and those not yet sent."""
        with self._lock:
            self.closed = True
            out = bytes(self._out)
            self._out.clear()
        self.reactor._forget(self)
        leftover = self._unpacker.read_bytes(1 << 62)
        return self.sock, leftover, out

    def _close(self) -> None:
        if self.closed:
            return
        with self._lock:
            self.closed = True
        self.reactor._forget(self)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.on_close(self)


# A connection's handler is these two callables, usually bound methods of the role that owns
# the connection: the reactor calls them directly, one call per message and no adapter.
OnMessage = Callable[[Connection[P], Message], None]
OnClose = Callable[[Connection[P]], None]
# A listening socket, with the handler of the connections it accepts and their token.
_Listener = tuple[socket.socket, OnMessage[Any], OnClose[Any], str | None]


class RawChannel:
    """A socket the loop watches for a raw transfer (see ``Connection.detach``)."""

    sock: socket.socket

    def on_event(self, readable: bool, writable: bool) -> None:
        raise NotImplementedError

    def close_in_child(self) -> None:
        """In a forked child: let go of the socket and any file the transfer holds open."""
        self.sock.close()


def _log(text: str) -> None:
    """A line for whoever reads the process's log later: it says when."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
    stream = sys.__stderr__
    if stream is not None:
        with contextlib.suppress(Exception):
            stream.write(f"{stamp} {text}\n")
            stream.flush()


def _report(what: str) -> None:
    """A bug in a handler or callback: say so on stderr and keep serving."""
    import traceback

    stream = sys.__stderr__
    if stream is None:
        return
    try:
        stream.write(f"ember: {what}:\n{traceback.format_exc()}")
        stream.flush()
    except Exception:  # nowhere left to report to
        pass


class Reactor:
    """The loop. ``run`` blocks; ``start`` runs it in a daemon thread."""

    def __init__(self, name: str = "ember-reactor") -> None:
        self.name = name
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        # A deque, not a list under a lock: ``call_soon`` may run in a signal handler (a
        # node's SIGTERM), which interrupts this very thread, perhaps inside ``call_soon``;
        # a lock held there would never be released. append and popleft are atomic.
        self._pending: collections.deque[Callable[[], object]] = collections.deque()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._listeners: dict[int, _Listener] = {}
        self._conns: set[Connection[Any]] = set()
        self._raw: set[RawChannel] = set()
        self._inbuf = bytearray(_READ_SIZE)  # what every connection reads into (see there)
        self._inview = memoryview(self._inbuf)
        # Accepted connections yet to authenticate, oldest first, with their deadlines.
        self._unauthenticated: dict[Connection[Any], float] = {}
        self._sweeping = False
        self._refusals_logged = 0  # one by one in this interval (see REFUSALS_LOGGED)
        self._refusals_unlogged = 0  # refused in this interval past those
        self._refusal_interval_ends = 0.0

    # -- any thread -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def in_reactor(self) -> bool:
        return threading.current_thread() is self._thread

    def call_soon(self, fn: Callable[[], object]) -> None:
        """Any thread, or a signal handler: ``fn`` runs on the loop."""
        self._pending.append(fn)
        self._wake()

    def call_soon_or_now(self, fn: Callable[[], None]) -> None:
        """``call_soon``, or call it now once the loop has stopped (nothing else would)."""
        if self._stopping:
            fn()
        else:
            self.call_soon(fn)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.call_soon(lambda: self._add_timer(delay, fn))

    def watch_write(self, conn: Connection[Any]) -> None:
        self.call_soon(lambda: self._set_events(conn, selectors.EVENT_READ | selectors.EVENT_WRITE))

    def listen(
        self,
        address: str,
        on_message: OnMessage[P],
        on_close: OnClose[P],
        token: str | None = None,
    ) -> str:
        """Listen on ``address``; every accepted connection is handled by ``on_message`` and
        ``on_close``. Returns the address actually bound (port 0 picks one). With a
        ``token``, peers must authenticate first (see the module docstring)."""
        family, where = parse_address(address)
        sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(where)
        sock.listen(512)
        sock.setblocking(False)
        if family == socket.AF_INET:
            host, port = sock.getsockname()[:2]
            address = f"tcp:{host}:{port}"

        # Known at once (a fork before the loop runs must be able to close it); watched from
        # the loop thread.
        self._listeners[sock.fileno()] = (sock, on_message, on_close, token)
        self.call_soon(lambda: self._sel.register(sock, selectors.EVENT_READ, sock))
        return address

    def connect(
        self,
        address: str,
        on_message: OnMessage[P],
        on_close: OnClose[P],
        timeout: float = 10.0,
        token: str | None = None,
    ) -> Connection[P]:
        """Connect to ``address``; with a ``token``, authenticate before anything else."""
        conn = Connection(connect_socket(address, timeout), self, on_message, on_close)
        if token is not None:
            conn.send(Auth(token=token))
        self.adopt(conn)
        return conn

    def connections(self) -> list[Connection[Any]]:
        """Reactor thread: the open connections."""
        return list(self._conns)

    def add_raw(self, channel: RawChannel, write: bool) -> None:
        """Watch a detached socket (any thread)."""
        events = selectors.EVENT_WRITE if write else selectors.EVENT_READ

        def register() -> None:
            self._raw.add(channel)
            self._sel.register(channel.sock, events, channel)

        self.call_soon(register)

    def remove_raw(self, channel: RawChannel) -> None:
        """Reactor thread: stop watching a raw channel and close its socket."""
        self._raw.discard(channel)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._sel.unregister(channel.sock)
        with contextlib.suppress(OSError):
            channel.sock.close()

    def adopt(self, conn: Connection[Any]) -> None:
        def register() -> None:
            if conn.closed:
                return
            self._conns.add(conn)
            self._sel.register(conn.sock, selectors.EVENT_READ, conn)

        self.call_soon(register)

    def stop(self) -> None:
        self._stopping = True
        self._wake()
        if self._thread is not None and not self.in_reactor():
            self._thread.join(timeout=5)

    def close_in_child(self) -> None:
        """In a forked child: let go of every socket the parent's loop owns."""
        for conn in list(self._conns):
            conn.closed = True
            conn.sock.close()
        for sock, *_ in self._listeners.values():
            sock.close()  # the socket file stays: it is the parent's
        for channel in self._raw:  # a transfer under way must end when the parent ends it
            channel.close_in_child()
        self._raw.clear()
        self._conns.clear()
        self._unauthenticated.clear()
        self._listeners.clear()
        self._pending.clear()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- reactor thread -------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def _add_timer(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_seq), fn))

    def _set_events(self, conn: Connection[Any], events: int) -> None:
        if not conn.closed:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.modify(conn.sock, events, conn)

    def _forget(self, conn: Connection[Any]) -> None:
        self._conns.discard(conn)
        self._unauthenticated.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._sel.unregister(conn.sock)

    def _run_pending(self) -> None:
        pending = self._pending
        for _ in range(len(pending)):  # those queued so far; later ones on the next turn
            fn = pending.popleft()
            try:
                fn()
            except Exception:
                _report(f"{self.name}: error in a scheduled callback")

    def run(self) -> None:
        if self._thread is None:
            self._thread = threading.current_thread()
        sel = self._sel
        while not self._stopping:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            for key, events in sel.select(timeout):
                obj = key.data
                if obj is None:
                    with contextlib.suppress(BlockingIOError, OSError):
                        self._wake_r.recv(4096)
                    self._run_pending()
                elif isinstance(obj, Connection):
                    if events & selectors.EVENT_WRITE and obj._flush():
                        self._set_events(obj, selectors.EVENT_READ)
                    if events & selectors.EVENT_READ and not obj.closed and not obj._read():
                        obj._close()
                elif isinstance(obj, RawChannel):
                    try:
                        obj.on_event(
                            bool(events & selectors.EVENT_READ),
                            bool(events & selectors.EVENT_WRITE),
                        )
                    except Exception:
                        _report(f"{self.name}: error in a transfer")
                        self.remove_raw(obj)
                else:
                    self._accept(obj)
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, fn = heapq.heappop(self._timers)
                try:
                    fn()
                except Exception:
                    _report(f"{self.name}: error in a timer")
            if self._pending:
                self._run_pending()
        self._teardown()

    def _accept(self, lsock: socket.socket) -> None:
        """Accept what waits, up to ``ACCEPTS_PER_WAKEUP`` (the selector reports the rest
        again on the next wake-up, after the timers and the other sockets had their turn)."""
        _, on_message, on_close, token = self._listeners[lsock.fileno()]
        local = lsock.family == socket.AF_UNIX and ABSTRACT_SOCKETS
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                sock, _ = lsock.accept()
            except OSError:  # (BlockingIOError: nothing more waits)
                return
            if local and not self._local_peer_trusted(sock):
                continue
            conn = Connection(sock, self, on_message, on_close, token)
            self._conns.add(conn)
            self._sel.register(conn.sock, selectors.EVENT_READ, conn)
            if token is None:
                continue
            # A peer sends Auth with its connection, so it is often in the socket already:
            # read it now, so that only peers that have not shown it wait, and only those can
            # be closed to make room for newer ones (a burst of silent connections accepted
            # after it in this loop would otherwise push it out before it is read).
            if not conn._read():
                conn._close()
            elif conn._token is not None and not conn.closed:
                self._await_auth(conn)

    def _local_peer_trusted(self, sock: socket.socket) -> bool:
        """An abstract socket has no file permissions: serve only this user (or root)."""
        try:
            pid, uid = peer_credentials(sock)
        except OSError:
            pid, uid = 0, -1
        if _trusted(uid):
            return True
        if self._refusal_logged():
            _log(f"{self.name}: refused a local connection from pid {pid}: it runs as uid {uid}")
        with contextlib.suppress(OSError):
            sock.close()
        return False

    def _await_auth(self, conn: Connection[Any]) -> None:
        waiting = self._unauthenticated
        waiting[conn] = time.monotonic() + AUTH_SECONDS
        while len(waiting) > MAX_UNAUTHENTICATED:
            oldest = next(iter(waiting))
            oldest.refuse(
                f"more than {MAX_UNAUTHENTICATED} connections were waiting to authenticate"
            )
        if not self._sweeping:
            self._sweeping = True
            self._add_timer(AUTH_SECONDS, self._expire_auth)

    def _done_waiting(self, conn: Connection[Any]) -> None:
        self._unauthenticated.pop(conn, None)

    def _refusal_logged(self) -> bool:
        """A connection is refused: True if it gets a line of its own in the log; else it
        is counted in the line that ends the interval."""
        now = time.monotonic()
        if now >= self._refusal_interval_ends:
            self._refusal_interval_ends = now + REFUSAL_LOG_INTERVAL
            self._refusals_logged = 0
        if self._refusals_logged < REFUSALS_LOGGED:
            self._refusals_logged += 1
            return True
        if not self._refusals_unlogged:
            self._add_timer(self._refusal_interval_ends - now, self._log_unlogged_refusals)
        self._refusals_unlogged += 1
        return False

    def _log_unlogged_refusals(self) -> None:
        n, self._refusals_unlogged = self._refusals_unlogged, 0
        _log(
            f"{self.name}: refused {n} more connection{'s' if n > 1 else ''} (not logged one "
            f"by one: at most {REFUSALS_LOGGED} are every {REFUSAL_LOG_INTERVAL:g} s)"
        )

    def _expire_auth(self) -> None:
        """Close the connections whose time to authenticate is up (oldest first: each got
        the same time), then look again when the next one's is."""
        waiting = self._unauthenticated
        now = time.monotonic()
        self._sweeping = False
        while waiting:
            conn, deadline = next(iter(waiting.items()))
            if deadline > now:
                self._sweeping = True
                self._add_timer(deadline - now, self._expire_auth)
                return
            conn.refuse(f"it did not present the cluster's token within {AUTH_SECONDS:g} s")

    def _teardown(self) -> None:
        for conn in list(self._conns):
            conn.closed = True
            with contextlib.suppress(OSError):
                conn.sock.close()
        for sock, *_ in self._listeners.values():
            with contextlib.suppress(OSError):
                name = sock.getsockname() if sock.family == socket.AF_UNIX else None
                if isinstance(name, str) and name:  # a path (an abstract name is bytes)
                    os.unlink(name)
                sock.close()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
