"""Process names in ``ps``: ``ember::node``, ``ember::control_store``, ``ember::worker``, and
the running task's or actor's name (``ember::f``, ``ember::Counter``), as Ray names its own."""

from __future__ import annotations

import contextlib
import os
import threading

from setproctitle import setproctitle

_shown = ""


def show(title: str) -> None:
    """Name this process ``title``, if that is not its name already (a change costs about a
    microsecond)."""
    global _shown
    if title == _shown:
        return
    if not _shown:
        # The first call decides how: within the command line's own memory (SPT_NOENV), since
        # by default setproctitle moves the environment away to make room, which blanks
        # /proc/PID/environ for tools that find processes by their environment. Forked
        # workers inherit the decision.
        added = "SPT_NOENV" not in os.environ
        os.environ.setdefault("SPT_NOENV", "1")
        try:
            setproctitle(title)
        finally:
            if added:
                del os.environ["SPT_NOENV"]
    else:
        setproctitle(title)
    if threading.current_thread() is not threading.main_thread():
        # setproctitle names the calling thread; ps shows the main thread's name (whose id
        # is the process's: threading's record of it is stale in a forked worker).
        with contextlib.suppress(OSError):
            with open(f"/proc/self/task/{os.getpid()}/comm", "w") as f:
                f.write(title[:15])
    _shown = title
