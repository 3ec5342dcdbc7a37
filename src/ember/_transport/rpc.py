"""Request/answer over a Connection: numbered requests, answers (any ``Answer``: a ``Reply`` or
a typed one) matched by ``rid``."""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack

from ember._protocol.messages import (
    Answer,
    Auth,
    ErrorKind,
    Message,
    Reply,
    decode,
    error_reply,
)
from ember._transport.reactor import _log

if TYPE_CHECKING:
    from concurrent.futures import Future

ReplyCallback = Callable[[Answer], None]


class RemoteError(Exception):
    """An error the peer answered with."""

    def __init__(self, kind: ErrorKind | str, message: str) -> None:
        super().__init__(message)
        self.kind = ErrorKind(kind)


class Calls:
    """Outstanding requests of one process, across all its connections."""

    def __init__(self) -> None:
        self._rids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[Any, ReplyCallback]] = {}

    def call(self, conn: Any, make: Callable[[int], Message], on_reply: ReplyCallback) -> int:
        """Send a request; ``on_reply`` gets its answer on the reactor thread, or a
        ConnectionLost error once the connection closes first."""
        rid = next(self._rids)
        with self._lock:
            self._waiting[rid] = (conn, on_reply)
        try:
            conn.send(make(rid))
        except BaseException:  # (a request that cannot be encoded, say: nothing will answer)
            with self._lock:
                self._waiting.pop(rid, None)
            raise
        if conn.closed:
            # Closed before this was registered: its ``on_close`` ran already and nothing
            # will answer. Answered from the loop like any reply, not here: the caller may
            # hold its lock and not have recorded the rid yet.
            with self._lock:
                entry = self._waiting.pop(rid, None)
            if entry is not None:
                lost = error_reply(rid, ErrorKind.CONNECTION_LOST, "the connection was closed")
                conn.reactor.call_soon_or_now(lambda: on_reply(lost))
        return rid

    def future(self, conn: Any, make: Callable[[int], Message]) -> Future[Any]:
        """The answer as a future: a Reply's value (a RemoteError for an error), or the
        typed answer itself."""
        from concurrent.futures import Future  # only clients wait on futures, not the node

        fut: Future[Any] = Future()

        def done(reply: Answer) -> None:
            if not isinstance(reply, Reply):
                fut.set_result(reply)  # a typed answer is its own result
            elif reply.error is None:
                fut.set_result(reply.value)
            else:
                fut.set_exception(RemoteError(reply.error[0], reply.error[1]))

        self.call(conn, make, done)
        return fut

    def cancel(self, rid: int) -> None:
        with self._lock:
            self._waiting.pop(rid, None)

    def on_reply(self, reply: Answer) -> None:
        with self._lock:
            entry = self._waiting.pop(reply.rid, None)
        if entry is not None:
            entry[1](reply)

    def on_close(self, conn: Any) -> None:
        with self._lock:
            lost = [(rid, cb) for rid, (c, cb) in self._waiting.items() if c is conn]
            for rid, _ in lost:
                del self._waiting[rid]
        for rid, cb in lost:
            cb(
                error_reply(
                    rid, ErrorKind.CONNECTION_LOST, "the connection closed before an answer came"
                )
            )


def refuse(conn: Any, msg: Message, where: str) -> None:
    """The explicit branch of a handler for a message it does not take: a request is answered
    with an UNEXPECTED error; anything else is logged, and the connection closed (the peer
    does not speak the protocol as this process does, and may wait for what never comes)."""
    rid = getattr(msg, "rid", None)
    if isinstance(rid, int) and not isinstance(msg, Answer):
        text = f"{where} does not take {type(msg).__name__}"
        conn.send(error_reply(rid, ErrorKind.UNEXPECTED, text))
        return
    _log(f"{where}: closing a connection that sent a message it does not take: {msg!r:.200}")
    conn.close()


def ask(sock: socket.socket, token: str | None, message: Message) -> tuple[Answer | None, Any]:
    """Blocking, for processes without a reactor: authenticate on ``sock`` (unless
    ``token`` is None: a local socket, which checks the peer's uid instead), send ``message``
    (whose rid is 1) and read its reply; None if the peer closed first. The returned msgpack
    unpacker holds whatever bytes came after the reply."""
    pack = msgpack.Packer(use_bin_type=True).pack
    auth = pack(Auth(token=token).encode()) if token is not None else b""
    sock.sendall(auth + pack(message.encode()))
    unpacker = msgpack.Unpacker(raw=False)
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return None, unpacker
        unpacker.feed(data)
        for raw in unpacker:
            reply = decode(raw)
            if isinstance(reply, Answer) and reply.rid == 1:
                return reply, unpacker
