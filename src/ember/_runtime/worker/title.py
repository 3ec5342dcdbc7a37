"""The worker process's name in ``ps``: which task it runs, or which actor it hosts."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ember._runtime import proctitle
from ember._runtime.worker.output import short


class Title:
    """The process's name in ``ps``: ``ember::f`` while task ``f`` runs (the latest started,
    when several do), and ``ember::worker`` again once none runs, set by a periodic tick
    (``Worker._retitle``) rather than after each task: a rename costs about a microsecond and
    a half, and tasks pushed back to back keep the name. The tick runs only while a task's
    name is shown (``on_busy`` starts it), so an idle worker's loop sleeps. An actor's
    process is named after its class (``ember::Counter``) for its life."""

    IDLE = "ember::worker"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self._titles: dict[str, str] = {}
        self._ticking = False
        self.on_busy: Callable[[], None] | None = None  # starts the tick

    @staticmethod
    def of(name: str) -> str:
        """``ember::f`` for a task or class named ``test_x.<locals>.f``."""
        return "ember::" + short(name)

    def enter(self, name: str) -> None:
        title = self._titles.get(name)
        if title is None:
            title = self._titles[name] = self.of(name)
        with self._lock:
            self.running += 1
            start, self._ticking = not self._ticking, True
        proctitle.show(title)
        if start and self.on_busy is not None:
            self.on_busy()

    def leave(self) -> None:
        with self._lock:
            self.running -= 1

    def idle(self) -> bool:
        """Show the idle name if no task runs (and stop ticking); False if one does."""
        with self._lock:
            if self.running:
                return False
            self._ticking = False
            proctitle.show(self.IDLE)
            return True


TITLE = Title()
RETITLE_SECONDS = 0.1
