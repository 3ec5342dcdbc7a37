"""Which of an actor's calls may start now, per concurrency group.

Theory of operation: an actor class may name *concurrency groups* with a limit each
(``@remote(concurrency_groups={"io": 2})``); a method joins one with
``@method(concurrency_group=...)`` or a call with ``.options(concurrency_group=...)``, and
every other call is in the default group, whose limit is the actor's ``max_concurrency``.
A group runs at most its limit of calls at once and starts its waiting calls in arrival
order; groups do not wait for each other, so a call in one group starts while another
group is full. The actor's process feeds ``arrive`` and ``done`` and starts each call
they hand back; the calls themselves are opaque here.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Generic, TypeVar

C = TypeVar("C")

DEFAULT = ""  # the default group's name, as calls without a group carry it


class _Group(Generic[C]):
    __slots__ = ("limit", "running", "waiting")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.waiting: collections.deque[C] = collections.deque()


class GroupAdmission(Generic[C]):
    def __init__(self, limits: Mapping[str, int], default_limit: int) -> None:
        if default_limit < 1 or any(limit < 1 for limit in limits.values()):
            raise ValueError(f"every concurrency group needs a limit >= 1, got {dict(limits)}")
        self._groups: dict[str, _Group[C]] = {name: _Group(n) for name, n in limits.items()}
        self._groups[DEFAULT] = _Group(default_limit)

    def group_of(self, name: str) -> str:
        """The group a call naming ``name`` runs in: the default one for "" or a name the
        actor does not define (its callers check names; an old handle might not)."""
        return name if name in self._groups else DEFAULT

    def arrive(self, call: C, group: str) -> C | None:
        """A call for ``group``: returned if it may start now, else it waits its turn."""
        g = self._groups[self.group_of(group)]
        if g.running < g.limit and not g.waiting:
            g.running += 1
            return call
        g.waiting.append(call)
        return None

    def done(self, group: str) -> C | None:
        """A call of ``group`` ended: the next one of that group to start, if any."""
        g = self._groups[self.group_of(group)]
        if g.waiting:
            return g.waiting.popleft()  # it takes the place of the one that ended
        g.running -= 1
        return None

    def running(self, group: str) -> int:
        return self._groups[self.group_of(group)].running

    def total_limit(self) -> int:
        """How many calls may run at once across all groups (threads a pool needs)."""
        return sum(g.limit for g in self._groups.values())
