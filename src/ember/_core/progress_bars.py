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
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

# What marks a printed line as a bar's state rather than text.
MAGIC = "__ember_tqdm_magic_token__"


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
