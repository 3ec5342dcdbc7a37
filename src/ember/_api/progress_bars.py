"""The driver's side of ``tqdm_ray``: every bar of the job drawn as a real ``tqdm`` bar, and
printed lines written around the bars so that neither tears the other.

A bar's state comes either from this process (a bar made in the driver, or in a task of
local mode) or from a worker, as a forwarded line carrying ``MAGIC`` (``_core.progress_bars``).
The first state of a bar opens a ``tqdm`` bar on the line ``BarLayout`` gives it, below any
other ``tqdm`` bar this process already shows; later ones move it on; the closing one leaves
its final image above the bars still running, as a finished ``tqdm`` bar does, and the rest
move up. A bar whose final state never comes ends as it is, named with why: at once when
its process ends (its node says so), else once silent for a long time or when too many are
open (``OpenBars``). Text (a worker's forwarded lines, and ``print`` while bars are shown, which is
``safe_print`` then, as in Ray) clears every bar, is written, and the bars are drawn again.
All of it holds ``tqdm``'s own lock, which ``tqdm`` takes for its writes too.

``tqdm`` is imported when the first bar is shown, not with ``ember``.
"""

from __future__ import annotations

import builtins
import sys
import threading
import time
from typing import Any, TextIO

from ember._core.progress_bars import MAGIC, BarLayout, BarState, OpenBars, decode

_print = builtins.print


def _tqdm() -> Any:
    """``tqdm``'s bar class if it is loaded, else None (then no bar is shown: nothing to
    draw around)."""
    module = sys.modules.get("tqdm")
    return None if module is None else module.tqdm


def safe_print(*args: Any, **kwargs: Any) -> None:
    """``print`` that does not tear the progress bars: they are cleared, the text is
    printed, and they are drawn again. ``print`` itself is this while bars are shown."""
    bar_class = _tqdm()
    file = kwargs.get("file")
    if bar_class is None or file not in (None, sys.stdout, sys.stderr):
        _print(*args, **kwargs)
        return
    with bar_class.external_write_mode(file=file):
        _print(*args, **kwargs)


def write_text(text: str, stream: TextIO) -> None:
    """Write lines printed elsewhere (a worker's) to ``stream``, around the bars shown."""
    bar_class = _tqdm()
    if bar_class is None or not bar_class._instances:
        stream.write(text)
        stream.flush()
        return
    with bar_class.external_write_mode(file=stream):
        stream.write(text)
        stream.flush()


def show_lines(lines: list[str]) -> list[str]:
    """Draw the bar states among forwarded ``lines``; the lines that are text."""
    text = []
    for line in lines:
        found = decode(line) if MAGIC in line else None
        if found is None:
            text.append(line)
        elif not found[1].uuid:  # its process ended
            if _display is not None:
                _display.end_process(found[1].source)
        else:
            show(found[1], found[0])
    return text


def show(state: BarState, prefix: str = "") -> None:
    """Draw one bar's state (``prefix``: its worker's, before its description)."""
    global _display
    with _display_lock:
        if _display is None:
            import tqdm

            _display = _Display(tqdm.tqdm)
    _display.show(state, prefix)


def close_all() -> None:
    """At shutdown, once the workers' last lines are in: a bar whose final state never came
    (its worker died) ends as it is, so that the terminal is left below every bar."""
    if _display is not None:
        _display.close_all()


class _Display:
    def __init__(self, bar_class: Any) -> None:
        self.bar_class = bar_class
        self.layout = BarLayout()
        self.bars: dict[str, tuple[Any, BarState]] = {}  # uuid -> (tqdm bar, last state)
        self.open = OpenBars()

    def show(self, state: BarState, prefix: str) -> None:
        with self.bar_class.get_lock():
            shown = self.bars.get(state.uuid)
            desc = f"{prefix}{state.desc}".rstrip()
            if shown is None:
                bar = self._open(state, desc)
                self.bars[state.uuid] = (bar, state)
            else:
                bar, last = shown
                self.bars[state.uuid] = (bar, state)
                changed = False
                if desc != f"{prefix}{last.desc}".rstrip():
                    bar.set_description(desc, refresh=False)
                    changed = True
                if state.total != last.total or state.unit != last.unit:
                    bar.total, bar.unit = state.total, state.unit
                    changed = True
                if state.x != bar.n:
                    bar.update(state.x - bar.n)  # (draws, unless it drew a moment ago)
                # Drawn now (a closing bar draws its final image itself).
                if not state.closed and (changed or bar.last_print_n != bar.n):
                    bar.refresh()
            if state.closed:
                self._close(state)
            else:
                now = time.monotonic()
                self.open.seen(state.uuid, now)
                for uuid, why in self.open.due(now):
                    self._end(uuid, why)

    def close_all(self) -> None:
        with self.bar_class.get_lock():
            for _, last in list(self.bars.values()):
                self._close(last)

    def end_process(self, source: tuple[str, int]) -> None:
        """The bars left open by a process that ended."""
        with self.bar_class.get_lock():
            for uuid, (_, last) in list(self.bars.items()):
                if last.source == source:
                    self._end(uuid, "ended: its process ended")

    def _end(self, uuid: str, why: str) -> None:
        """Ends a bar whose final state will not come, as it is, saying why."""
        bar, last = self.bars[uuid]
        bar.set_postfix_str(why, refresh=False)
        self._close(last)

    def _open(self, state: BarState, desc: str) -> Any:
        self.layout.add(state.source, state.uuid, state.pos)
        lines = self._lines()
        self._move(lines)
        bar = self.bar_class(
            desc=desc,
            total=state.total,
            unit=state.unit,
            position=lines[state.uuid],
            dynamic_ncols=True,
        )
        if state.x:
            bar.update(state.x)
        if not self.bars and builtins.print is _print:
            builtins.print = safe_print
        return bar

    def _close(self, state: BarState) -> None:
        """The final image goes above the bars (a newline at their first line), so every
        other bar is drawn again, each on its line counted from the new first line."""
        bar, _ = self.bars.pop(state.uuid)
        self.open.forget(state.uuid)
        self.layout.remove(state.source, state.uuid)
        with self.bar_class.external_write_mode(file=bar.fp, nolock=True):
            bar.close()
            for uuid, line in self._lines().items():
                self.bars[uuid][0].pos = -line
        if not self.bars and builtins.print is safe_print:
            builtins.print = _print

    def _lines(self) -> dict[str, int]:
        """Each bar's line, counted below the bars of this process that are not ours."""
        ours = {id(bar) for bar, _ in self.bars.values()}
        others = [abs(b.pos) for b in self.bar_class._instances if id(b) not in ours]
        base = 1 + max(others) if others else 0
        return {uuid: base + line for uuid, line in self.layout.lines().items()}

    def _move(self, lines: dict[str, int]) -> None:
        """Bars whose line changed: all cleared first, then all drawn on their new lines."""
        moved = [
            bar
            for uuid, (bar, _) in self.bars.items()
            if uuid in lines and abs(bar.pos) != lines[uuid]
        ]
        for bar in moved:
            bar.clear(nolock=True)
        for uuid, (bar, _) in self.bars.items():
            bar.pos = -lines[uuid]
        for bar in moved:
            bar.refresh(nolock=True)


_display: _Display | None = None
_display_lock = threading.Lock()
