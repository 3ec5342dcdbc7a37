"""Which refs of a ``wait`` loop are ready, kept from one call to the next.

The usual loop, ``ready, rest = wait(rest, num_returns=1)`` over a thousand pending refs,
passes back each time the list the last call returned as not ready. Scanning that list on
every call, and registering a callback on each pending object, costs in proportion to its
length; the index instead learns of each object as it becomes ready (``arrived``), so that
a call costs in proportion to what it returns. Positions are those of the list the index was
built from (its *original* positions); the list a call receives is that list less what
earlier calls returned, in the same order, so a position there is the original one less the
returned ones before it.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Sequence


class WaitIndex:
    def __init__(self, ids: Sequence[bytes], ready: Iterable[int], fetch: bool) -> None:
        """``ids``: the objects waited for, in order (unique); ``ready``: the positions of
        those ready already; ``fetch``: the call's ``fetch_local``, part of what it waits for."""
        self.expected = list(ids)  # the ids the next call must pass to use this index
        self.fetch = fetch
        self._ids = tuple(ids)
        self._pos = dict(zip(self._ids, range(len(self._ids)), strict=True))  # not returned
        self._returned: list[int] = []  # original positions, ascending
        self._ready = sorted(ready)  # original positions ready and not returned, ascending

    def matches(self, ids: list[bytes], fetch: bool) -> bool:
        """Is this call's list the one the last call left (so the index serves it)?"""
        return fetch == self.fetch and ids == self.expected

    def arrived(self, oid: bytes) -> bool:
        """``oid`` became ready: True if it is one of ours not known ready yet."""
        p = self._pos.get(oid)
        if p is None:
            return False
        i = bisect_left(self._ready, p)
        if i < len(self._ready) and self._ready[i] == p:
            return False
        self._ready.insert(i, p)
        return True

    def first(self, n: int, is_ready: Callable[[bytes], bool]) -> list[int]:
        """The original positions of the first ``n`` ready ones, in order. One that is no
        longer ready (being made again) is dropped here; it arrives again when ready."""
        ready, i = self._ready, 0
        while i < n and i < len(ready):
            if is_ready(self._ids[ready[i]]):
                i += 1
            else:
                del ready[i]
        return ready[:i]

    def take(self, first: list[int]) -> list[int]:
        """Return ``first`` (from ``first()``): they leave the index and ``expected``;
        the result is their positions in the list this call received."""
        at = [p - bisect_left(self._returned, p) for p in first]
        del self._ready[: len(first)]
        for p in first:
            insort(self._returned, p)
            del self._pos[self._ids[p]]
        for i in reversed(at):
            del self.expected[i]
        return at
