"""Progress bars drawn in tasks and actors and shown on the driver (``tqdm_ray``).

Theory of operation: a bar in a worker does not draw itself. Each time it is due (at most
once per flush interval, ``Throttle``, and always when it closes) it prints its whole state
as one stdout line: ``MAGIC`` followed by the state as JSON (``encode``). The line travels to
the driver like any other printed line, prefixed with the task's name and pid; the driver
recognises ``MAGIC`` in it (``decode``), and draws one real ``tqdm`` bar per remote bar
instead of printing the line. As the whole state travels each time, a dropped or merged
update costs nothing but smoothness.

``BarLayout`` decides the terminal line of each bar, so that bars do not overlap: the bars of
one process (``source``) stay together, in the order of their ``position``; processes are
stacked in the order their first bar arrived; a process whose bars are all closed gives its
lines back, and the processes below it move up.

A bar whose final state never comes is ended by the driver all the same, so that stale bars
do not pile up over a long run: when a worker that drew bars ends, its node sends the
drivers ``process_ended`` (killed, crashed or out of memory, the node sees its connection
close after its last line); as a backstop for a notice that never comes (its node was
lost), ``OpenBars`` ends a bar silent for ``IDLE_SECONDS``, and the bars silent longest
beyond ``MAX_OPEN_BARS``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

# What marks a printed line as a bar's state rather than text.
MAGIC = "__ember_tqdm_magic_token__"

# A bar that sends nothing for this long is ended (a step may well take minutes: this is a
# backstop for a process whose end the driver was never told, not the usual way).
IDLE_SECONDS = 600.0
# The most bars shown at once: more than a terminal has lines.
MAX_OPEN_BARS = 100


@dataclasses.dataclass
class BarState:
    """All that the driver needs to draw one bar (Ray's field names)."""

    uuid: str  # the bar, unique across the cluster
    x: float = 0  # how far it is
    total: float | None = None
    desc: str = ""
    unit: str = "it"
    pos: int = 0  # its ``position`` among its process's bars
    pid: int = 0
    node: str = ""  # the hex id of the process's node ("" outside a cluster)
    closed: bool = False

    @property
    def source(self) -> tuple[str, int]:
        """The process that draws it: its bars are kept together on the driver."""
        return (self.node, self.pid)


_FIELDS = {f.name: f.type for f in dataclasses.fields(BarState)}


def encode(state: BarState) -> str:
    """The line (without its newline) that carries ``state`` to the driver."""
    return MAGIC + json.dumps(dataclasses.asdict(state), separators=(",", ":"))


def process_ended(node: str, pid: int) -> str:
    """The line that tells the driver a process ended: a state of no bar (``uuid`` ""),
    which ends every bar the process left open."""
    return encode(BarState(uuid="", pid=pid, node=node, closed=True))


def decode(line: str) -> tuple[str, BarState] | None:
    """The text before ``MAGIC`` in a forwarded line (its task's prefix) and the state after
    it; None for a line that does not carry a well-formed state (it is then just text)."""
    at = line.find(MAGIC)
    if at < 0:
        return None
    try:
        raw: Any = json.loads(line[at + len(MAGIC) :])
    except ValueError:
        return None
    if not isinstance(raw, dict) or set(raw) != set(_FIELDS) or not _well_typed(raw):
        return None
    return line[:at], BarState(**raw)


def _well_typed(raw: dict[str, Any]) -> bool:
    number = (int, float)
    return (
        isinstance(raw["uuid"], str)
        and isinstance(raw["x"], number)
        and (raw["total"] is None or isinstance(raw["total"], number))
        and isinstance(raw["desc"], str)
        and isinstance(raw["unit"], str)
        and isinstance(raw["pos"], int)
        and raw["pos"] >= 0
        and isinstance(raw["pid"], int)
        and isinstance(raw["node"], str)
        and isinstance(raw["closed"], bool)
    )


class Throttle:
    """Whether a bar's state is due to be sent: at most once per ``interval`` seconds, so that
    a loop of a million quick steps prints a few lines a second, not a million."""

    __slots__ = ("interval", "last")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last: float | None = None  # when the last state was sent

    def due(self, now: float, force: bool = False) -> bool:
        """Whether to send now (``force``: the final state, always sent); if so, it counts
        as sent."""
        if force or self.last is None or now - self.last >= self.interval:
            self.last = now
            return True
        return False


class BarLayout:
    """The terminal line of every bar shown, counted from the first line of the bars."""

    def __init__(self) -> None:
        # source -> {bar uuid: its line within its source's block}, in order of arrival.
        self._blocks: dict[tuple[str, int], dict[str, int]] = {}

    def add(self, source: tuple[str, int], uuid: str, pos: int) -> None:
        """A new bar: it takes line ``pos`` of its source's block, or the next one free
        below it (two bars of one process asking for one position do not overlap)."""
        block = self._blocks.setdefault(source, {})
        taken = set(block.values())
        line = pos
        while line in taken:
            line += 1
        block[uuid] = line

    def remove(self, source: tuple[str, int], uuid: str) -> None:
        block = self._blocks.get(source)
        if block is not None:
            block.pop(uuid, None)
            if not block:
                del self._blocks[source]

    def lines(self) -> dict[str, int]:
        """Every bar's line: each source's block is as tall as its lowest bar needs."""
        out = {}
        offset = 0
        for block in self._blocks.values():
            for uuid, line in block.items():
                out[uuid] = offset + line
            offset += 1 + max(block.values())
        return out


class OpenBars:
    """The bars the driver shows, the one silent longest first: which to end though their
    final state did not come. A bar ends once silent for ``idle`` seconds, or when more than
    ``cap`` are open (the ones silent longest go). Each ended bar is counted, and named with
    why, so that the display can say so."""

    def __init__(self, idle: float = IDLE_SECONDS, cap: int = MAX_OPEN_BARS) -> None:
        self.idle = idle
        self.cap = cap
        self._seen: dict[str, float] = {}  # uuid -> when its last state came, oldest first
        self.silent = 0  # bars ended for being silent
        self.over_cap = 0  # bars ended for there being too many

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, uuid: str, now: float) -> None:
        """A state of the bar came (an open one)."""
        self._seen.pop(uuid, None)
        self._seen[uuid] = now

    def forget(self, uuid: str) -> None:
        """The bar closed."""
        self._seen.pop(uuid, None)

    def due(self, now: float) -> list[tuple[str, str]]:
        """The bars to end now, each with why; they are forgotten."""
        ended = []
        for uuid, when in self._seen.items():
            if now - when >= self.idle:
                ended.append((uuid, f"ended: silent for {self.idle:g} s"))
                self.silent += 1
            elif len(self._seen) - len(ended) > self.cap:
                ended.append((uuid, f"ended: over {self.cap} bars open"))
                self.over_cap += 1
            else:
                break
        for uuid, _ in ended:
            del self._seen[uuid]
        return ended
