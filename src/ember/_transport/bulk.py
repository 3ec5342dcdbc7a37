"""Raw transfers of object files between nodes, inside the reactor loop.

An object crosses nodes as the bytes of its store file. The sender hands the file to the kernel
with ``sendfile`` (no copy through Python); the receiver maps a new file of the right size and
``recv_into``s the mapping, so the object is never held twice in memory. Both sides are
non-blocking channels of the process's reactor, so many transfers run at once, interleaved with
the node's other work, and no thread is needed (the node manager forks workers, and forking is
only safe without threads).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import socket
from collections.abc import Callable

from ember._transport.reactor import RawChannel, Reactor

_CHUNK = 1 << 24


class FileSender(RawChannel):
    """Write ``head`` and then ``size`` bytes of the file ``fd`` to ``sock``, then close both."""

    def __init__(
        self,
        reactor: Reactor,
        sock: socket.socket,
        head: bytes,
        fd: int,
        size: int,
        on_done: Callable[[bool], None] | None = None,
    ) -> None:
        self.reactor = reactor
        self.sock = sock
        self.head = memoryview(head)
        self.fd = fd
        self.offset = 0
        self.size = size
        self.on_done = on_done
        sock.setblocking(False)

    def start(self) -> None:
        self.reactor.add_raw(self, write=True)

    def on_event(self, readable: bool, writable: bool) -> None:
        try:
            while self.head:
                n = self.sock.send(self.head)
                self.head = self.head[n:]
            while self.offset < self.size:
                n = os.sendfile(
                    self.sock.fileno(), self.fd, self.offset, min(_CHUNK, self.size - self.offset)
                )
                if n == 0:
                    raise ConnectionError("the file ended early")
                self.offset += n
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._finish(False)
            return
        self._finish(True)

    def _finish(self, ok: bool) -> None:
        os.close(self.fd)
        self.reactor.remove_raw(self)
        if self.on_done is not None:
            self.on_done(ok)


class FileReceiver(RawChannel):
    """Read exactly ``size`` bytes from ``sock`` into a new file at ``path`` (created with
    mode 0600); ``on_done(ok)`` runs in the loop when it is complete or has failed."""

    def __init__(
        self,
        reactor: Reactor,
        sock: socket.socket,
        leftover: bytes,
        path: str,
        size: int,
        on_done: Callable[[bool], None],
    ) -> None:
        self.reactor = reactor
        self.sock = sock
        self.path = path
        self.size = size
        self.on_done = on_done
        self.got = 0
        sock.setblocking(False)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
            self.map = mmap.mmap(fd, size) if size else None
        finally:
            os.close(fd)
        self.view: memoryview | None = (
            memoryview(self.map) if self.map is not None else memoryview(b"")
        )
        if leftover:
            n = min(len(leftover), size)
            self.view[:n] = leftover[:n]
            self.got = n

    def start(self) -> None:
        if self.got >= self.size:
            self.reactor.call_soon(lambda: self._finish(True))
        else:
            self.reactor.add_raw(self, write=False)

    def on_event(self, readable: bool, writable: bool) -> None:
        view = self.view
        if view is None:
            return
        try:
            while self.got < self.size:
                n = self.sock.recv_into(view[self.got : self.got + _CHUNK])
                if n == 0:
                    self._finish(False)
                    return
                self.got += n
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._finish(False)
            return
        self._finish(True)

    def abort(self) -> None:
        """Reactor thread: give up (the sending node is gone)."""
        self._finish(False)

    def _finish(self, ok: bool) -> None:
        if self.view is None:
            return
        view, self.view = self.view, None
        view.release()
        if self.map is not None:
            self.map.close()
        self.reactor.remove_raw(self)
        if not ok:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self.on_done(ok)
