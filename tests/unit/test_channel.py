"""The compiled graphs' shared-memory channel (``_transport/channel.py``): one slot, counters
in shared memory, FIFOs to wake a sleeper; in one process and between two real processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from ember._transport.channel import Channel, ChannelSpec
from ember.exceptions import RayChannelError, RayChannelTimeoutError

_fork = multiprocessing.get_context("fork")


@pytest.fixture
def spec(tmp_path: Path) -> ChannelSpec:
    return ChannelSpec.create(str(tmp_path), "c", capacity=64)


@pytest.fixture
def ends(spec: ChannelSpec) -> Iterator[tuple[Channel, Channel]]:
    writer, reader = Channel(spec, writer=True), Channel(spec, writer=False)
    yield writer, reader
    writer.detach()
    reader.detach()


def test_one_slot_in_order(ends: tuple[Channel, Channel]) -> None:
    writer, reader = ends
    assert writer.can_write() and not reader.can_read()
    writer.write(b"first")
    assert not writer.can_write() and reader.can_read()
    assert reader.read(bytes) == b"first"
    writer.write(b"second")
    assert reader.read(lambda view: view.tobytes().upper()) == b"SECOND"
    assert writer.can_write() and not reader.can_read()


def test_a_message_larger_than_the_slot_grows_it(ends: tuple[Channel, Channel]) -> None:
    writer, reader = ends
    big = bytes(range(256)) * 100
    writer.write(big)
    assert reader.read(bytes) == big
    writer.write(b"x")
    assert reader.read(bytes) == b"x"


def test_waits_time_out(ends: tuple[Channel, Channel]) -> None:
    writer, reader = ends
    with pytest.raises(RayChannelTimeoutError):
        reader.read(bytes, timeout=0.01)
    writer.write(b"a")
    with pytest.raises(RayChannelTimeoutError):
        writer.write(b"b", timeout=0.01)  # the slot still holds "a"


def test_closed_channel_raises_on_both_ends(ends: tuple[Channel, Channel]) -> None:
    writer, reader = ends
    reader.close()
    with pytest.raises(RayChannelError, match="closed"):
        writer.write(b"a", timeout=1)
    with pytest.raises(RayChannelError, match="closed"):
        reader.read(bytes, timeout=1)


def test_the_paths_can_go_once_both_ends_are_open(spec: ChannelSpec) -> None:
    writer, reader = Channel(spec, writer=True), Channel(spec, writer=False)
    spec.unlink()
    assert not any(os.path.exists(p) for p in (spec.buffer, spec.data, spec.ack))
    writer.write(b"still works")
    assert reader.read(bytes) == b"still works"
    writer.detach()
    reader.detach()


def _echo(inbound: ChannelSpec, outbound: ChannelSpec, count: int) -> None:
    source, sink = Channel(inbound, writer=False), Channel(outbound, writer=True)
    for _ in range(count):
        sink.write(source.read(bytes)[::-1], timeout=10)


def test_two_processes_ping_pong(tmp_path: Path) -> None:
    there = ChannelSpec.create(str(tmp_path), "there", 4096)
    back = ChannelSpec.create(str(tmp_path), "back", 4096)
    proc = _fork.Process(target=_echo, args=(there, back, 300))
    proc.start()
    try:
        out, into = Channel(there, writer=True), Channel(back, writer=False)
        for i in range(300):
            message = f"message {i}".encode() * (1 + i % 7)
            out.write(message, timeout=10)
            assert into.read(bytes, timeout=10) == message[::-1]
    finally:
        proc.join(10)
    assert proc.exitcode == 0


def _hold(spec: ChannelSpec, ready: multiprocessing.synchronize.Event) -> None:
    Channel(spec, writer=True)
    ready.set()
    signal.pause()


def test_a_dead_writer_is_an_error_not_a_hang(spec: ChannelSpec) -> None:
    ready = _fork.Event()
    proc = _fork.Process(target=_hold, args=(spec, ready))
    proc.start()
    try:
        assert ready.wait(10)
        reader = Channel(spec, writer=False)
        with pytest.raises(RayChannelTimeoutError):
            reader.read(bytes, timeout=0.05)  # alive, silent
        proc.kill()
        proc.join(10)
        with pytest.raises(RayChannelError, match="died"):
            reader.read(bytes, timeout=10)
        reader.detach()
    finally:
        proc.kill()
        proc.join(10)
