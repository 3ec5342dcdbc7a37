"""Tests for the node's memory readings (ember._runtime.memory), on this machine."""

from __future__ import annotations

import os
import sys

import psutil
import pytest

from ember._runtime.memory import cgroup_usage, machine_usage, process_used

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def test_the_machine_s_usage_is_its_total_less_what_is_available() -> None:
    usage = machine_usage()
    assert usage is not None
    mem = psutil.virtual_memory()
    assert usage.total == mem.total
    # (other processes change it between the two readings)
    assert abs(usage.used - (mem.total - mem.available)) < mem.total // 10


def test_a_cgroup_reading_is_within_its_limit() -> None:
    usage = cgroup_usage()
    if usage is not None:
        assert 0 <= usage.used and usage.total > 0


def test_a_process_s_own_memory_grows_with_what_it_allocates() -> None:
    before = process_used(os.getpid())
    block = bytearray(b"\x01") * (64 << 20)
    assert process_used(os.getpid()) >= before + (60 << 20)
    del block
    assert process_used(2**22 + 12345) == 0  # (no such process)
