"""Starting a single-machine node in the background for ``ember.init()``.

The node manager runs as a child process in its own session (so Ctrl-C in the driver's
terminal reaches only the driver), watches the driver's pid, and exits with it. ``init()``
returns as soon as the node listens; the node starts its first workers meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Any

from ember._protocol import ids

_SHM = "/dev/shm"


@dataclass
class LocalNode:
    proc: subprocess.Popen[bytes]
    node_address: str
    control_address: str
    session_dir: str
    shm_dir: str
    spill_dir: str
    node_id: bytes
    resources: dict[str, float]

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)


def total_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _store_dirs(name: str, wanted: int | None) -> tuple[str, int]:
    """Where objects live, and the store's capacity in bytes."""
    capacity = wanted if wanted is not None else int(total_memory() * 0.3)
    if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK):
        st = os.statvfs(_SHM)
        free = st.f_bavail * st.f_frsize
        if free < capacity:
            warnings.warn(
                f"{_SHM} has only {free / 2**30:.1f} GiB free, less than the object store's "
                f"{capacity / 2**30:.1f} GiB: objects beyond that spill to disk, which is "
                "slower. In a container, give it more shared memory (docker run --shm-size=...).",
                stacklevel=4,
            )
            capacity = max(1, int(free * 0.9))
        return os.path.join(_SHM, f"ember-{name}"), capacity
    warnings.warn(
        f"{_SHM} is not available: the object store uses a folder in {tempfile.gettempdir()}, "
        "so large objects are slower to share.",
        stacklevel=4,
    )
    return os.path.join(tempfile.gettempdir(), "ember", f"objects-{name}"), capacity


@dataclass
class SpawnedNode:
    """A node manager that was started and may not listen yet; ``wait()`` for it."""

    proc: subprocess.Popen[bytes]
    read_fd: int
    config: dict[str, Any]

    def wait(self, timeout: float = 30.0) -> LocalNode:
        config = self.config
        session_dir = config["session_dir"]
        try:
            line = _read_line(self.read_fd, timeout=timeout, proc=self.proc)
        finally:
            os.close(self.read_fd)
        if not line:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(
                "The Ember node manager did not start. Its log says:\n"
                + _tail(os.path.join(session_dir, "logs", "node.log"))
            )
        ready = json.loads(line)
        return LocalNode(
            self.proc,
            ready["node"],
            ready["control"],
            session_dir,
            config["shm_dir"],
            config["spill_dir"],
            bytes.fromhex(config["node_id"]),
            config["resources"],
        )


def spawn_node(
    *,
    resources: dict[str, float],
    object_store_memory: int | None,
    prestart_workers: int,
) -> SpawnedNode:
    """Start the node manager and return at once, so the caller can work while it boots."""
    name = ids.random_id(4).hex()
    session_dir = os.path.join(tempfile.gettempdir(), "ember", f"s-{name}")
    for sub in ("logs", "sockets", "spill"):
        os.makedirs(os.path.join(session_dir, sub), exist_ok=True)
    shm_dir, capacity = _store_dirs(name, object_store_memory)
    os.makedirs(os.path.join(shm_dir, "pool"), mode=0o700, exist_ok=True)
    node_id = ids.random_id(16)
    read_fd, write_fd = os.pipe()
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = [package_parent] + [p for p in sys.path if p and os.path.isdir(p)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    config: dict[str, Any] = {
        "node_id": node_id.hex(),
        "session_dir": session_dir,
        "shm_dir": shm_dir,
        "spill_dir": os.path.join(session_dir, "spill"),
        "object_store_memory": capacity,
        "resources": resources,
        "ready_fd": write_fd,
        "owner_pid": os.getpid(),
        "prestart_workers": prestart_workers,
        "cwd": os.getcwd(),
    }
    log = open(os.path.join(session_dir, "logs", "node.log"), "ab")  # noqa: SIM115
    with log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ember._runtime.node", json.dumps(config)],
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    os.close(write_fd)
    return SpawnedNode(proc, read_fd, config)


def _read_line(fd: int, timeout: float, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
            return ""
        if select.select([fd], [], [], min(left, 0.5))[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""
            data += chunk
    return data.decode()


def _tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"
