"""Flow control of a generator task's stream of items, on both ends.

Theory of operation: a generator task (``num_returns="streaming"``, the default for a
function that yields) reports each item to its caller as it yields it; the caller's
``ObjectRefGenerator`` hands the items out in order (``next``) and then, once the task is
over, either stops or hands out the task's error once. Items carry their index, so a task
that runs again (a retry after its worker died, or after a ``retry_exceptions`` error)
reports the items the caller already has once more, and those are dropped: nothing is handed
out twice.

Backpressure (``_generator_backpressure_num_objects``, T): the worker pauses after an item
while it has produced T or more items more than the caller said it consumed. The caller
tells the worker what it consumed only when the worker may be paused on it: when it has
consumed more than it last told, and it has received at least T items more than it last
told (so the worker, which produced at least that many, is or will be paused). A new attempt
of the task starts counting afresh (``attempt_over``).

``ItemStream`` (the caller's) and ``must_pause`` (the worker's) decide and nothing else; the
client keeps the items' refs beside the counts and carries out what these say.
"""

from __future__ import annotations

import enum

NO_BACKPRESSURE = -1  # ``_generator_backpressure_num_objects`` unset


def must_pause(produced: int, consumed: int, threshold: int) -> bool:
    """Whether a worker that ``produced`` items, of which the caller said ``consumed`` are
    taken, waits before producing the next one."""
    return threshold > 0 and produced - consumed >= threshold


class Next(enum.Enum):
    """What ``next(gen)`` does now."""

    ITEM = "item"  # hand out the item at ``ItemStream.consumed`` (then call ``took``)
    WAIT = "wait"  # wait for that item, or the end of the task
    ERROR = "error"  # hand out the task's error (its completion ref), once
    STOP = "stop"  # StopIteration


class ItemStream:
    """The caller's view of one generator task's items."""

    __slots__ = ("threshold", "received", "consumed", "told", "total", "failed", "dropped")

    def __init__(self, threshold: int = NO_BACKPRESSURE) -> None:
        self.threshold = threshold
        self.received = 0  # items 0..received-1 have arrived
        self.consumed = 0  # handed out by next()
        self.told = 0  # the consumed count the running attempt's worker was told
        self.total: int | None = None  # items in all, once the task is over
        self.failed = False  # the task's error is still to be handed out, after the items
        self.dropped = False  # the caller's generator is gone: nothing more is kept

    def arrived(self, index: int) -> bool:
        """Item ``index`` arrived: True if it is new (keep it), False if a retry sent it
        again or the stream is over or dropped."""
        if self.dropped or self.total is not None or index < self.received:
            return False
        self.received = index + 1
        return True

    def next(self) -> Next:
        if self.consumed < self.received:
            return Next.ITEM
        if self.total is None:
            return Next.WAIT
        return Next.ERROR if self.failed else Next.STOP

    def took(self) -> None:
        """``next`` handed out the item (``Next.ITEM``) or the error (``Next.ERROR``)."""
        if self.consumed < self.received:
            self.consumed += 1
        else:
            self.failed = False

    def ack(self) -> int | None:
        """After an arrival or a ``took``: the consumed count to tell the worker now, if it
        may be paused waiting for it (see the module's docstring)."""
        if (
            self.threshold > 0
            and self.total is None
            and self.consumed > self.told
            and self.received - self.told >= self.threshold
        ):
            self.told = self.consumed
            return self.consumed
        return None

    def attempt_over(self) -> None:
        """The running attempt ended (answered, or its worker is gone): a next attempt's
        worker has been told nothing."""
        self.told = 0

    def ended(self, failed: bool) -> None:
        """The task is over (an error it raised arrived as its last item). ``failed``: it
        failed otherwise (its worker died); that error is handed out after the items, once."""
        self.total = self.received
        self.failed = failed

    def release(self) -> bool:
        """The caller's generator is gone: True if the worker must be told to stop waiting
        (it may be paused, and is still running)."""
        self.dropped = True
        return self.threshold > 0 and self.total is None
