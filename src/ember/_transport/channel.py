"""A one-slot shared-memory channel between two processes of one machine (compiled graphs).

A channel is a file in ``/dev/shm`` that both ends map, and two FIFOs. The file starts with a
header of 64-bit words: ``WRITTEN`` and ``READ`` count the messages put in and taken out, so the
slot holds a message when ``WRITTEN > READ`` and is free when they are equal; then the length
of the message in the slot, a closed flag, and the pid of each end. The message follows the
header; the writer grows the file when a message does not fit, and the reader maps it again
when it sees a longer message than its mapping holds.

Waiting costs little while the other end answers fast: an end first spins on the counters for
``SPIN`` seconds, yielding its CPU between looks (when the machine is busy the peer may be
waiting for that very CPU: spinning without yielding took a round trip from 10 us to 200 us
under load), and only then sleeps in ``poll`` on its FIFO. So that a sleeper
is never missed, every message is followed by a byte on the ``data`` FIFO and every taken
message by a byte on the ``ack`` FIFO (one ``write`` each, about a microsecond); a sleeper
drains its FIFO, checks the counters again and only then sleeps. A byte written after the
check wakes it, and a message counted before its byte was written is seen by the check. The
counters are plain 8-byte stores and loads, ordered as the x86 memory model orders them.

Each end opens the FIFOs read-write, so opening never blocks and never waits for the other end.
A sleeper wakes every ``PEER_CHECK`` seconds to see whether the channel was closed or the
other end's process is gone (its pid is in the header), so a dead peer is an error, not a hang.
The paths are only needed until both ends opened them: the creator removes them afterwards
(``ChannelSpec.unlink``) and nothing is left behind when a process dies.
"""

from __future__ import annotations

import mmap
import os
import select
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ember._transport.process import process_alive
from ember.exceptions import RayChannelError, RayChannelTimeoutError

_T = TypeVar("_T")

HEADER = 64
WRITTEN, READ, LENGTH, CLOSED, WRITER_PID, READER_PID = range(6)
SPIN = 50e-6  # seconds an end spins on the counters before it sleeps
PEER_CHECK = 0.5  # seconds between checks for a closed channel or a dead peer while asleep


@dataclass(frozen=True)
class ChannelSpec:
    """Where a channel's file and FIFOs are, until both ends have opened them."""

    buffer: str
    data: str
    ack: str

    @classmethod
    def create(cls, folder: str, name: str, capacity: int) -> ChannelSpec:
        spec = cls(*(os.path.join(folder, f"{name}.{part}") for part in ("buf", "data", "ack")))
        fd = os.open(spec.buffer, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, HEADER + capacity)
        finally:
            os.close(fd)
        os.mkfifo(spec.data, 0o600)
        os.mkfifo(spec.ack, 0o600)
        return spec

    def unlink(self) -> None:
        for path in (self.buffer, self.data, self.ack):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


class Channel:
    """One end of a channel: ``Channel(spec, writer=True)`` sends, ``writer=False`` receives."""

    def __init__(self, spec: ChannelSpec, *, writer: bool) -> None:
        self.writer = writer
        self._fd = os.open(spec.buffer, os.O_RDWR)
        flags = os.O_RDWR | os.O_NONBLOCK
        self._data = os.open(spec.data, flags)
        self._ack = os.open(spec.ack, flags)
        # What this end waits on and what it signals: a reader sleeps on data and wakes the
        # writer through ack, and the other way round.
        self.wait_fd, self._signal_fd = (
            (self._ack, self._data) if writer else (self._data, self._ack)
        )
        self._map()
        self._hdr[WRITER_PID if writer else READER_PID] = os.getpid()

    def _map(self) -> None:
        self._mm = mmap.mmap(self._fd, os.fstat(self._fd).st_size)
        self._hdr = memoryview(self._mm)[:HEADER].cast("Q")
        self.capacity = len(self._mm) - HEADER

    def _unmap(self) -> None:
        self._hdr.release()
        self._mm.close()

    # ------------------------------------------------------------------ state

    def can_write(self) -> bool:
        """The slot is free (the last message was taken)."""
        hdr = self._hdr
        return hdr[WRITTEN] == hdr[READ]

    def can_read(self) -> bool:
        """A message waits in the slot."""
        hdr = self._hdr
        return hdr[WRITTEN] != hdr[READ]

    @property
    def closed(self) -> bool:
        return bool(self._hdr[CLOSED])

    def check(self) -> None:
        """Raise if the channel was closed or the process at the other end is gone."""
        if self._hdr[CLOSED]:
            raise RayChannelError("Channel closed.")
        peer = self._hdr[READER_PID if self.writer else WRITER_PID]
        if peer and not process_alive(peer):
            side = "reader" if self.writer else "writer"
            raise RayChannelError(f"the {side} of this channel (process {peer}) died")

    # ------------------------------------------------------------------ messages

    def write(self, data: bytes | memoryview, timeout: float | None = None) -> None:
        """Put ``data`` in the slot once it is free; ``timeout`` (seconds) bounds the wait."""
        if self._hdr[CLOSED]:
            self.check()
        if not self.can_write():
            wait([self], self.can_write, timeout)
        n = len(data)
        if n > self.capacity:
            self._grow(n)
        self._mm[HEADER : HEADER + n] = data
        hdr = self._hdr
        hdr[LENGTH] = n
        hdr[WRITTEN] += 1
        _signal(self._signal_fd)

    def read(self, decode: Callable[[memoryview], _T], timeout: float | None = None) -> _T:
        """Take the next message: ``decode`` gets a view of it in shared memory (valid only
        during the call) and what it returns is returned."""
        if self._hdr[CLOSED]:
            self.check()
        if not self.can_read():
            wait([self], self.can_read, timeout)
        n = self._hdr[LENGTH]
        if n > self.capacity:
            self._unmap()
            self._map()
        view = memoryview(self._mm)[HEADER : HEADER + n]
        try:
            value = decode(view)
        finally:
            view.release()
        self._hdr[READ] += 1
        _signal(self._signal_fd)
        return value

    def _grow(self, n: int) -> None:
        self._unmap()
        os.ftruncate(self._fd, HEADER + max(n, 2 * self.capacity))
        self._map()

    def close(self) -> None:
        """Mark the channel closed and wake both ends: every wait on it then raises."""
        if self._fd < 0:  # detached: closed already
            return
        self._hdr[CLOSED] = 1
        _signal(self._data)
        _signal(self._ack)

    def detach(self) -> None:
        """Let go of this end's mapping and descriptors."""
        if self._fd < 0:
            return
        self._unmap()
        for fd in (self._fd, self._data, self._ack):
            os.close(fd)
        self._fd = -1


def wait(channels: Sequence[Channel], ready: Callable[[], bool], timeout: float | None) -> None:
    """Return once ``ready()``; spin a moment, then sleep on the channels' FIFOs. Raise
    ``RayChannelError`` if one of them is closed or its peer dies (and ``ready()`` is not), and
    ``RayChannelTimeoutError`` after ``timeout`` seconds."""
    now = time.perf_counter()
    spin_end = now + SPIN
    while True:
        if ready():
            return
        for ch in channels:
            if ch.closed:
                ch.check()
        if time.perf_counter() >= spin_end:
            break
        os.sched_yield()
    deadline = None if timeout is None else now + timeout
    poller = select.poll()
    for ch in channels:
        poller.register(ch.wait_fd, select.POLLIN)
    while True:
        for ch in channels:
            _drain(ch.wait_fd)
        if ready():  # before the checks: a peer may write its last message and exit
            return
        for ch in channels:
            ch.check()
        pause = PEER_CHECK
        if deadline is not None:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise RayChannelTimeoutError(
                    f"no message within {timeout} s; if the work takes longer, wait longer"
                )
            pause = min(pause, left)
        poller.poll(pause * 1000)


def _signal(fd: int) -> None:
    try:
        os.write(fd, b"\0")
    except BlockingIOError:  # the FIFO is full of wake-ups: the sleeper wakes anyway
        pass


def _drain(fd: int) -> None:
    try:
        while len(os.read(fd, 4096)) == 4096:
            pass
    except BlockingIOError:
        pass
