"""``ActorPool``: a fixed set of actors shared by many calls, as Ray's ``ray.util.ActorPool``.

A call goes to an idle actor, or waits in submission order until one is free; each result
hands its actor back to the pool, which then starts the oldest waiting call. Results come
back in submission order (``get_next``) or as they finish (``get_next_unordered``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import ember

SubmitFn = Callable[[Any, Any], Any]


class ActorPool:
    """``pool = ActorPool([A.remote(), A.remote()])``, then
    ``list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3]))``."""

    def __init__(self, actors: Iterable[Any]) -> None:
        self._idle_actors = list(actors)
        self._future_to_actor: dict[Any, tuple[int, Any]] = {}
        self._index_to_future: dict[int, Any] = {}
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending_submits: list[tuple[SubmitFn, Any]] = []

    def map(self, fn: SubmitFn, values: Iterable[Any]) -> Iterator[Any]:
        """``fn(actor, value)`` for every value (it must return an ``ObjectRef``); the
        results in the order of ``values``. Results of earlier calls not yet taken are
        dropped first, as Ray does."""
        self._drop_unreturned()
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next)

    def map_unordered(self, fn: SubmitFn, values: Iterable[Any]) -> Iterator[Any]:
        """As ``map``, but each result as soon as it is ready."""
        self._drop_unreturned()
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next_unordered)

    def _results(self, take: Callable[[], Any]) -> Iterator[Any]:
        while self.has_next():
            yield take()

    def _drop_unreturned(self) -> None:
        while self.has_next():
            self.get_next_unordered()

    def submit(self, fn: SubmitFn, value: Any) -> None:
        """Start ``fn(actor, value)`` on an idle actor, or queue it until one is free."""
        if not self._idle_actors:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle_actors.pop()
        future = fn(actor, value)
        self._future_to_actor[future] = (self._next_task_index, actor)
        self._index_to_future[self._next_task_index] = future
        self._next_task_index += 1

    def has_next(self) -> bool:
        """Whether a submitted call's result has not been taken yet."""
        return bool(self._future_to_actor)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The next result in submission order. ``TimeoutError`` if it is not ready within
        ``timeout`` seconds; with ``ignore_if_timedout`` that call is skipped for good (its
        actor goes back to the pool) before the error is raised."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        future = self._index_to_future[self._next_return_index]
        timed_out = False
        if timeout is not None:
            ready, _ = ember.wait([future], timeout=timeout)
            if not ready:
                if not ignore_if_timedout:
                    raise TimeoutError("Timed out waiting for result")
                timed_out = True
        del self._index_to_future[self._next_return_index]
        self._next_return_index += 1
        _, actor = self._future_to_actor.pop(future)
        self._return_actor(actor)
        if timed_out:
            raise TimeoutError(f"Timed out waiting for result; the call {future} is ignored")
        return ember.get(future)

    def get_next_unordered(
        self, timeout: float | None = None, ignore_if_timedout: bool = False
    ) -> Any:
        """Whichever result is ready first (``TimeoutError`` if none is within ``timeout``).
        Mixing it with ``get_next`` loses the order, so ``get_next`` refuses afterwards."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        ready, _ = ember.wait(list(self._future_to_actor), num_returns=1, timeout=timeout)
        if not ready:
            raise TimeoutError("Timed out waiting for result")
        [future] = ready
        index, actor = self._future_to_actor.pop(future)
        self._return_actor(actor)
        del self._index_to_future[index]
        self._next_return_index = max(self._next_return_index, index + 1)
        return ember.get(future)

    def _return_actor(self, actor: Any) -> None:
        self._idle_actors.append(actor)
        if self._pending_submits:
            self.submit(*self._pending_submits.pop(0))

    def has_free(self) -> bool:
        """Whether an actor is idle and no call waits for one."""
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self) -> Any | None:
        """Take an idle actor out of the pool (None if none is free)."""
        return self._idle_actors.pop() if self.has_free() else None

    def push(self, actor: Any) -> None:
        """Add an actor to the pool (it may start a waiting call at once)."""
        busy = [a for _, a in self._future_to_actor.values()]
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)
