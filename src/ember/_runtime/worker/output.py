"""A worker's stdout and stderr, forwarded line by line to the driver through the node, and
the ways the process ends that must get those lines out first."""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from ember._core.log_files import task_marker
from ember._protocol import messages as m
from ember._runtime import task_context

if TYPE_CHECKING:
    from ember._runtime.client.core_client import CoreClient

# The prefix's name for every line, once the process hosts an actor ("" while it runs tasks:
# then each line is named after the task that printed it).
OUTPUT_NAME = [""]


def short(name: str) -> str:
    """``f`` for a function or class named ``test_x.<locals>.f``, as Ray shows it."""
    return name.rpartition("<locals>.")[2]


_OUTPUTS: list[_Forwarder] = []

# The task whose marker the log file ends with (b"": lines printed outside any task), shared
# by stdout and stderr, which write to the same file; the lock keeps a marker with its lines.
_MARKED = [b""]
_FILE_LOCK = threading.Lock()


class _Forwarder(io.TextIOBase):
    """Replaces sys.stdout/stderr: whole lines go to the driver, prefixed like Ray's."""

    def __init__(self, client: CoreClient, original: Any, err: bool) -> None:
        self.client = client
        self.err = err
        self.original = original
        self.lock = threading.Lock()
        self.partial = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        with self.lock:
            text = self.partial + s
            *lines, self.partial = text.split("\n")
        if lines:
            self._emit(lines)
        return len(s)

    def flush(self) -> None:
        with self.lock:
            rest, self.partial = self.partial, ""
        if rest:
            self._emit([rest])

    def _emit(self, lines: list[str], log: bool = True) -> None:
        ctx = task_context.current.get()
        name = OUTPUT_NAME[0] or (short(ctx.name) if ctx else "worker")
        prefix = f"({name} pid={os.getpid()}) "
        out = [prefix + line for line in lines]
        if log:
            task_id = ctx.task_id if ctx else b""
            with _FILE_LOCK, contextlib.suppress(Exception):
                mark = ""
                if task_id != _MARKED[0]:  # (only in the log file: `ember logs task` reads it)
                    _MARKED[0] = task_id
                    mark = task_marker(task_id.hex()) + "\n"
                self.original.write(mark + "".join(x + "\n" for x in out))
                self.original.flush()
        if not self.client.closed:
            self.client.node.send(m.LogLines(lines=out, err=self.err))


def install_output(client: CoreClient) -> None:
    sys.stdout = _Forwarder(client, sys.stdout, False)
    sys.stderr = _Forwarder(client, sys.stderr, True)
    _OUTPUTS[:] = [sys.stdout, sys.stderr]


def send_to_driver(line: str) -> bool:
    """Send one stdout line to the driver only, not to this worker's log file: a
    ``tqdm_ray`` bar's state, for the driver to draw (False outside a worker)."""
    if not _OUTPUTS:
        return False
    _OUTPUTS[0]._emit([line], log=False)
    return True


def flush_output() -> None:
    for out in _OUTPUTS:
        out.flush()


def exit_process(code: int) -> None:
    """End the worker process with ``code`` once its lines are out (``atexit`` handlers run,
    as with Python's own exit)."""
    flush_output()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    flush_output()
    os._exit(code)


def exit_as_asked(request: SystemExit) -> None:
    """End the worker process with the status ``sys.exit()`` asked for: the node sees a
    worker die, as after a crash."""
    code = request.code
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    exit_process(code)
