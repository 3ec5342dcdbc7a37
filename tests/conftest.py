"""Shared fixtures: every test that starts Ember ends every process it started, and leaves
no session folder behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests._helpers import wait_until


def _descendants() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _session_dirs() -> set[str]:
    """Ember's session folders in this user's temp folder (none when running against Ray)."""
    folder = os.path.join(tempfile.gettempdir(), f"ember-{os.getuid()}")
    try:
        return {os.path.join(folder, n) for n in os.listdir(folder) if n.startswith("s-")}
    except FileNotFoundError:
        return set()


def _node_log_tail(folder: str, lines: int = 60) -> str:
    """The end of a kept session's node log: why its node did not stop cleanly."""
    try:
        text = Path(folder, "logs", "node.log").read_text(errors="replace")
    except OSError:
        return f"\n{folder}: no node log"
    return f"\n--- {folder}/logs/node.log (end) ---\n" + "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def start_ember() -> Iterator[Callable[..., Any]]:
    """Call as ``ray = start_ember(num_cpus=2)``; shuts down and checks for leaks afterwards
    (processes, and session folders)."""
    import ember

    before = {p.pid for p in _descendants()}
    sessions = _session_dirs()

    def start(**kwargs: Any) -> Any:
        kwargs.setdefault("num_cpus", 2)
        ember.init(**kwargs)
        return ember

    try:
        yield start
    finally:
        ember.shutdown()
        leaked = [p for p in _descendants() if p.pid not in before]
        for p in leaked:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(leaked, timeout=5)
        assert not leaked, f"processes left after shutdown(): {[p.pid for p in leaked]}"
        left = sorted(_session_dirs() - sessions)
        logs = "".join(_node_log_tail(folder) for folder in left)
        for folder in left:
            shutil.rmtree(folder, ignore_errors=True)
        assert not left, f"session folders left after shutdown(): {left}{logs}"


@pytest.fixture
def ray(start_ember: Callable[..., Any]) -> Any:
    """Ember started with 2 CPUs, under the name Ray programs use."""
    return start_ember(num_cpus=2)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _up(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Redis answers, or it exited (most likely the port was taken)."""
    return proc.poll() is not None or _answers_ping(port)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A real ``redis-server`` on a free loopback port, in memory only; yields its URL and
    stops it afterwards. Skips when Redis is not installed (``apt-get install redis-server``)."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    for _attempt in range(3):  # the free port may be taken before Redis binds it
        port = _free_port()
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--daemonize", "no", "--dir", str(tmp_path)],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(partial(_up, proc, port), 10, f"redis-server on port {port} to answer PING")
            if proc.poll() is not None:  # exited: most likely the port was taken
                continue
            yield f"redis://127.0.0.1:{port}"
            return
        finally:
            _stop(proc)
    raise RuntimeError("redis-server did not start after 3 attempts")
