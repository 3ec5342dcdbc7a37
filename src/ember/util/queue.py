"""``Queue``: a first-in, first-out queue that tasks and actors share, as Ray's
``ray.util.queue.Queue``. The items live in one async actor; a blocking ``put`` or ``get``
waits inside that actor, so waiting costs no polling and other callers go on meanwhile.

The actor answers with a status instead of raising, so ``Empty`` and ``Full`` are raised
here, in the caller, as the standard library's ``queue`` module does."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterable
from typing import Any

import ember


class Empty(queue.Empty):
    """``get`` found no item (at once, or within its timeout)."""


class Full(queue.Full):
    """``put`` found no room (at once, or within its timeout)."""


class _QueueActor:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)

    def qsize(self) -> int:
        return self.queue.qsize()

    def empty(self) -> bool:
        return self.queue.empty()

    def full(self) -> bool:
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def get(self, timeout: float | None = None) -> tuple[bool, Any]:
        try:
            return True, await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return False, None

    def put_nowait(self, item: Any) -> bool:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    def put_nowait_batch(self, items: list[Any]) -> bool:
        if self.maxsize > 0 and len(items) + self.qsize() > self.maxsize:
            return False
        for item in items:
            self.queue.put_nowait(item)
        return True

    def get_nowait(self) -> tuple[bool, Any]:
        try:
            return True, self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return False, None

    def get_nowait_batch(self, num_items: int) -> tuple[bool, list[Any]]:
        if num_items > self.qsize():
            return False, []
        return True, [self.queue.get_nowait() for _ in range(num_items)]


class Queue:
    """``q = Queue(maxsize=10)``; pass ``q`` to tasks and actors; ``q.put(x)``, ``q.get()``,
    with ``block`` and ``timeout`` as in the standard library, ``*_nowait``, ``*_async``
    (awaitables for async code) and ``*_nowait_batch``. ``actor_options`` go to the actor
    that holds the items (``num_cpus`` 0 unless given)."""

    def __init__(self, maxsize: int = 0, actor_options: dict[str, Any] | None = None) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool):
            raise TypeError(f"maxsize must be an int, not {maxsize!r}")
        self.maxsize = maxsize
        options = {"num_cpus": 0, **(actor_options or {})}
        self.actor: Any = ember.remote(**options)(_QueueActor).remote(maxsize)

    def _live(self) -> Any:
        if self.actor is None:
            raise RuntimeError("this queue was shut down: make a new Queue")
        return self.actor

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """The number of items in the queue."""
        return int(ember.get(self._live().qsize.remote()))

    def qsize(self) -> int:
        return self.size()

    def empty(self) -> bool:
        return bool(ember.get(self._live().empty.remote()))

    def full(self) -> bool:
        return bool(ember.get(self._live().full.remote()))

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; when the queue is full, wait (up to ``timeout`` seconds) for room,
        or raise ``Full`` at once if not ``block``."""
        if not block:
            return self.put_nowait(item)
        if not ember.get(self._live().put.remote(item, _checked(timeout))):
            raise Full
        return None

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """``put`` for async code: awaits the room instead of blocking the thread."""
        if not block:
            ok = await self._live().put_nowait.remote(item)
        else:
            ok = await self._live().put.remote(item, _checked(timeout))
        if not ok:
            raise Full

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The oldest item; when the queue is empty, wait (up to ``timeout`` seconds) for
        one, or raise ``Empty`` at once if not ``block``."""
        if not block:
            return self.get_nowait()
        ok, item = ember.get(self._live().get.remote(_checked(timeout)))
        if not ok:
            raise Empty
        return item

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """``get`` for async code."""
        if not block:
            ok, item = await self._live().get_nowait.remote()
        else:
            ok, item = await self._live().get.remote(_checked(timeout))
        if not ok:
            raise Empty
        return item

    def put_nowait(self, item: Any) -> None:
        if not ember.get(self._live().put_nowait.remote(item)):
            raise Full

    def put_nowait_batch(self, items: Iterable[Any]) -> None:
        """Add all of ``items`` or none: ``Full`` if they do not all fit."""
        items = list(items)
        if not ember.get(self._live().put_nowait_batch.remote(items)):
            raise Full(f"cannot add {len(items)} items to a queue of maxsize {self.maxsize}")

    def get_nowait(self) -> Any:
        ok, item = ember.get(self._live().get_nowait.remote())
        if not ok:
            raise Empty
        return item

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        """The ``num_items`` oldest items, or ``Empty`` (and none taken) if fewer are there."""
        if not isinstance(num_items, int) or num_items < 0:
            raise ValueError(f"num_items must be an int >= 0, not {num_items!r}")
        ok, items = ember.get(self._live().get_nowait_batch.remote(num_items))
        if not ok:
            raise Empty(f"fewer than {num_items} items in the queue")
        return list(items)

    def shutdown(self, force: bool = False, grace_period_s: float = 5) -> None:
        """End the actor that holds the items (they are lost); the queue is unusable after.
        Unless ``force``, calls already sent to it are first given up to ``grace_period_s``
        seconds to arrive (one more call is answered after them); callers still waiting
        inside ``get`` or ``put`` then see the actor die."""
        if self.actor is None:
            return
        if not force:
            ember.wait([self.actor.qsize.remote()], timeout=grace_period_s)
        ember.kill(self.actor)
        self.actor = None


def _checked(timeout: float | None) -> float | None:
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return timeout
