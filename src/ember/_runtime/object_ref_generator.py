"""What a generator task's ``.remote()`` gives: an ``ObjectRefGenerator`` of its items' refs
(``num_returns="streaming"``, the default for a function that yields), or a ref to a
``DynamicObjectRefGenerator`` (``num_returns="dynamic"``).

The generator reads the items its runtime keeps for the task (``stream_next``): each is a
plain ObjectRef, available as soon as the task yields it. The task's own ref, ``completed()``,
is ready when the task is over.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

if TYPE_CHECKING:
    from ember._runtime.object_ref import ObjectRef
    from ember._runtime.runtime import Runtime

_T = TypeVar("_T")


class ObjectRefGenerator(Generic[_T]):
    """The refs of a generator task's items, in the order it yields them: iterate it (``for
    ref in gen``, ``next(gen)``, ``async for``). If the task raises, the item after the last
    it yielded holds its error (``get`` raises it); if it fails otherwise (its worker died),
    ``next`` gives ``completed()``, which holds that error, once. Not thread-safe, and it
    cannot be passed to another task."""

    def __init__(self, generator_ref: ObjectRef[Any], runtime: Runtime) -> None:
        self._ref = generator_ref
        self._rt = runtime

    def __iter__(self) -> ObjectRefGenerator[_T]:
        return self

    def __next__(self) -> ObjectRef[_T]:
        """Wait for the next item's ref; StopIteration once the task is over and every item
        was handed out."""
        ref = self._rt.stream_next(self._ref, None)
        if ref is None:
            raise StopIteration
        return ref

    def __aiter__(self) -> ObjectRefGenerator[_T]:
        return self

    async def __anext__(self) -> ObjectRef[_T]:
        expected = self._rt.stream_peek(self._ref)
        if expected is not None:
            try:
                await expected
            except Exception:  # its error is the caller's to get, from the ref handed out
                pass
        ref = self._rt.stream_next(self._ref, None)
        if ref is None:
            raise StopAsyncIteration
        return ref

    def completed(self) -> ObjectRef[Any]:
        """A ref that is ready when the task is over; ``get`` raises if it failed other than
        by raising (its worker died, say)."""
        return self._ref

    def next_ready(self) -> bool:
        """Whether ``next`` would return at once (False once it would stop)."""
        expected = self._rt.stream_peek(self._ref)
        if expected is None:
            return False
        ready, _ = self._rt.wait([expected], 1, 0, False)
        return bool(ready)

    def is_finished(self) -> bool:
        """Whether the task is over and every item was handed out (``next`` would stop)."""
        return self._rt.stream_peek(self._ref) is None

    def _waitable(self) -> ObjectRef[Any]:
        """The ref ``wait`` watches for this generator: ready once ``next`` would not block."""
        return self._rt.stream_peek(self._ref) or self._ref

    def send(self, value: Any) -> NoReturn:
        raise NotImplementedError("`gen.send` is not supported.")

    def throw(self, *args: Any) -> NoReturn:
        raise NotImplementedError("`gen.throw` is not supported.")

    def close(self) -> NoReturn:
        raise NotImplementedError("`gen.close` is not supported.")

    def __del__(self) -> None:
        try:
            self._rt.stream_drop(self._ref)
        except Exception:  # interpreter teardown, or a runtime already closed
            pass

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "You cannot return or pass a generator to other task. Serializing a "
            "ObjectRefGenerator is not allowed."
        )

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._ref.hex()})"


class DynamicObjectRefGenerator(Generic[_T]):
    """The value of a ``num_returns="dynamic"`` task: its items' refs, in order. Iterating
    hands each out once, as Ray's does."""

    def __init__(self, refs: list[ObjectRef[_T]]) -> None:
        self._refs = collections.deque(refs)

    def __iter__(self) -> Iterator[ObjectRef[_T]]:
        while self._refs:
            yield self._refs.popleft()

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"
