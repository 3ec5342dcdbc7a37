"""Tests for ember._transport.process: whether a process runs, with real processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ember._transport.process import process_alive


def test_this_process_runs_and_no_pid_below_one_does() -> None:
    assert process_alive(os.getpid())
    assert not process_alive(0)
    assert not process_alive(-1)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_child_that_exited_is_dead_before_and_after_it_is_reaped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # (exited, not reaped: a zombie)
    assert not process_alive(child.pid)
    child.wait(timeout=10)
    assert not process_alive(child.pid)
