"""Who still holds a shared object or actor, counted per process, and when to free it.

Owners keep their own counts in-process; this table (kept by the node) only learns about an id
once it is shared: created in the store, promoted for another process, or held by a borrower.
A process's ``DecRef`` may overtake the ``IncRef`` of the process it just sent the reference to,
because they travel on different connections; so a shared id whose count reaches zero is freed
only after a grace period, and re-registration within it cancels the free. An id its owner never
shared is freed at once (``free_now``), which keeps put-and-drop loops flat in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass
class _Entry:
    holders: dict[Hashable, int] = field(default_factory=dict)
    zero_since: float | None = None


class RefTable:
    def __init__(self, grace: float = 1.0) -> None:
        self.grace = grace
        self._entries: dict[bytes, _Entry] = {}

    def __contains__(self, key: bytes) -> bool:
        return key in self._entries

    def count(self, key: bytes) -> int:
        entry = self._entries.get(key)
        return sum(entry.holders.values()) if entry else 0

    def holders(self, key: bytes) -> dict[Hashable, int]:
        """Who holds ``key`` and how many refs each (for the state API; not a copy)."""
        entry = self._entries.get(key)
        return entry.holders if entry else {}

    def holds(self, holder: Hashable) -> bool:
        return any(holder in e.holders for e in self._entries.values())

    def add(self, key: bytes, holder: Hashable) -> None:
        entry = self._entries.setdefault(key, _Entry())
        entry.holders[holder] = entry.holders.get(holder, 0) + 1
        entry.zero_since = None

    def remove(self, key: bytes, holder: Hashable, now: float) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        n = entry.holders.get(holder, 0) - 1
        if n > 0:
            entry.holders[holder] = n
        else:
            entry.holders.pop(holder, None)
        if not entry.holders:
            entry.zero_since = now

    def expire(self, key: bytes, now: float) -> None:
        """A hold kept outside the table ended: if nobody here holds ``key``, it is due after
        the grace period."""
        entry = self._entries.setdefault(key, _Entry())
        if not entry.holders:
            entry.zero_since = now

    def free_now(self, key: bytes, holder: Hashable) -> bool:
        """The owner frees an id it never shared; True if nobody else holds it."""
        entry = self._entries.get(key)
        if entry is None:
            return True
        entry.holders.pop(holder, None)
        if entry.holders:
            return False
        del self._entries[key]
        return True

    def holder_gone(self, holder: Hashable, now: float) -> None:
        self.holders_gone(lambda h: h == holder, now)

    def holders_gone(self, gone: Callable[[Hashable], bool], now: float) -> None:
        """Every holder for which ``gone`` is true let go (a whole node died)."""
        for entry in self._entries.values():
            lost = [h for h in entry.holders if gone(h)]
            for h in lost:
                del entry.holders[h]
            if lost and not entry.holders:
                entry.zero_since = now

    def due(self, now: float) -> list[bytes]:
        """Ids whose count has stayed at zero for the grace period; they leave the table."""
        out = [
            key
            for key, e in self._entries.items()
            if e.zero_since is not None and now - e.zero_since >= self.grace
        ]
        for key in out:
            del self._entries[key]
        return out

    def next_due(self) -> float | None:
        times = [e.zero_since for e in self._entries.values() if e.zero_since is not None]
        return min(times) + self.grace if times else None
