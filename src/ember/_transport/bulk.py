"""Raw transfers of object files between nodes, inside the reactor loop.

An object crosses nodes as the bytes of its store file. The sender hands the file to the kernel
with ``sendfile``; the receiver ``splice``s the socket's bytes through a pipe into the new file
as they come. Neither side copies the bytes through Python, and the object is never held twice
in memory. Both sides are non-blocking channels of the process's reactor, so many transfers
run at once, interleaved with the node's other work, and no thread is needed (the node manager
forks workers, and forking is only safe without threads).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Callable

from ember._transport.reactor import RawChannel, Reactor

_CHUNK = 1 << 24  # most bytes one sendfile call is asked for
_PIPE = 1 << 20  # the receiver's pipe: the kernel's default upper limit for unprivileged users
# At most this much per wake-up, so a large transfer never keeps the loop from the node's other
# work (heartbeats above all: a node busy for seconds would be declared dead).
_SLICE = 32 << 20


class _Transfer(RawChannel):
    """One file's bytes over a detached socket, a slice at a time; ``_move`` does the work."""

    reactor: Reactor
    fd: int

    def on_event(self, readable: bool, writable: bool) -> None:
        if self.fd < 0:
            return
        try:
            complete = self._move(_SLICE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._finish(False)
            return
        if complete:
            self._finish(True)

    def _move(self, budget: int) -> bool:
        """Move up to about ``budget`` bytes; True once the whole file has crossed."""
        raise NotImplementedError

    def close_in_child(self) -> None:
        super().close_in_child()
        os.close(self.fd)

    def abort(self) -> None:
        """Reactor thread: give up (the node at the other end is gone)."""
        self._finish(False)

    def _finish(self, ok: bool) -> None:
        if self.fd < 0:
            return
        os.close(self.fd)
        self.fd = -1
        self.reactor.remove_raw(self)
        self._done(ok)

    def _done(self, ok: bool) -> None:
        raise NotImplementedError


class FileSender(_Transfer):
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

    def _move(self, budget: int) -> bool:
        while self.head:
            n = self.sock.send(self.head)
            self.head = self.head[n:]
        while self.offset < self.size and budget > 0:
            n = os.sendfile(
                self.sock.fileno(), self.fd, self.offset, min(_CHUNK, self.size - self.offset)
            )
            if n == 0:
                raise ConnectionError("the file ended early")
            self.offset += n
            budget -= n
        return self.offset >= self.size

    def _done(self, ok: bool) -> None:
        if self.on_done is not None:
            self.on_done(ok)


class FileReceiver(_Transfer):
    """Read exactly ``size`` bytes from ``sock`` into the file at ``path`` (created with mode
    0600 if it is not there); ``on_done(ok)`` runs in the loop when it is complete or failed.

    The bytes move socket -> pipe -> file with ``splice``: one copy, in the kernel, where a
    buffer and ``pwrite`` make two and a shared mapping of the file faults in every page."""

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
        # No O_TRUNC: a recycled file already at ``path`` keeps its allocated pages, and
        # writing over those is several times faster than allocating new ones.
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.pipe_r = self.pipe_w = -1
        try:
            os.ftruncate(self.fd, size)
            self.pipe_r, self.pipe_w = os.pipe()
            # A larger pipe means fewer calls; past the user's pipe quota the kernel keeps the
            # default size, which is slower but works.
            with contextlib.suppress(OSError):
                fcntl.fcntl(self.pipe_w, fcntl.F_SETPIPE_SZ, _PIPE)
            data = memoryview(leftover)[:size]
            while data:
                n = os.pwrite(self.fd, data, self.got)
                self.got += n
                data = data[n:]
        except OSError:  # out of descriptors or of space: nothing is left behind
            for fd in (self.fd, self.pipe_r, self.pipe_w):
                if fd >= 0:
                    os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise

    def start(self) -> None:
        if self.got >= self.size:
            self.reactor.call_soon(lambda: self._finish(True))
        else:
            self.reactor.add_raw(self, write=False)

    def _move(self, budget: int) -> bool:
        sock = self.sock.fileno()
        while self.got < self.size and budget > 0:
            # The pipe is empty here, so only the socket can make this call wait: it is
            # non-blocking, and an empty socket raises BlockingIOError to the caller.
            n = os.splice(sock, self.pipe_w, min(_PIPE, self.size - self.got))
            if n == 0:
                raise ConnectionError("the sender closed the connection early")
            end = self.got + n
            while self.got < end:
                self.got += os.splice(self.pipe_r, self.fd, end - self.got, offset_dst=self.got)
            budget -= n
        return self.got >= self.size

    def close_in_child(self) -> None:
        super().close_in_child()
        os.close(self.pipe_r)
        os.close(self.pipe_w)

    def _finish(self, ok: bool) -> None:
        if self.fd < 0:
            return
        os.close(self.pipe_r)
        os.close(self.pipe_w)
        self.pipe_r = self.pipe_w = -1
        super()._finish(ok)

    def _done(self, ok: bool) -> None:
        if not ok:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self.on_done(ok)
