"""How a worker's answers reach their callers: a ``TaskDone`` that a late cancel does not stop
from going out, and errors the caller can surely read back."""

from __future__ import annotations

import os

from ember import exceptions as exc
from ember._protocol import messages as m
from ember._runtime import serialization
from ember._transport.reactor import Connection

TaskDone = m.builder(m.TaskDone)  # (once per task: see builder)


def send_through_cancels(conn: Connection, done: m.TaskDone) -> None:
    while True:
        try:
            conn.send(done)
            return
        except exc.TaskCancelledError:
            continue  # a late cancel landed here: the answer must still go out


def error_bytes(err: BaseException, name: str) -> bytes:
    """Serialize an error so that the caller can surely read it back: an exception whose
    class cannot be pickled or rebuilt (a custom ``__init__``) travels as its text."""
    try:
        data = serialization.dumps(err)
        serialization.loads(data)
        return data
    except Exception:
        tb = getattr(err, "traceback_str", "") or repr(err)
        return serialization.dumps(exc.RayTaskError(name, tb, None, os.getpid()))
