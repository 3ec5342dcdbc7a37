"""``as_completed`` and ``map_unordered``: results in the order tasks finish, as Ray's
``ray.util`` helpers. Both are loops over ``wait``: each round takes up to ``chunk_size``
ready refs (in the order of the list, which is what ``wait`` keeps), so a result waits at
most for the rest of its round, and ``map_unordered`` keeps at most ``backpressure_size``
tasks in flight, submitting more only as results are taken."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import ember

DEFAULT_CHUNK_SIZE = 10
DEFAULT_BACKPRESSURE_SIZE = 100


def _check(chunk_size: int, wait_kwargs: dict[str, Any]) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be an int >= 1, got {chunk_size!r}")
    if "num_returns" in wait_kwargs:
        raise ValueError("Use the `chunk_size` argument instead of `num_returns`.")


def _take_round(
    refs: list[Any], chunk_size: int, yield_obj_refs: bool, wait_kwargs: dict[str, Any]
) -> tuple[list[Any], list[Any]]:
    """The values (or refs) of one round's ready refs, and the refs still pending."""
    ready, pending = ember.wait(refs, num_returns=min(chunk_size, len(refs)), **wait_kwargs)
    return (ready if yield_obj_refs else ember.get(ready)), pending


def as_completed(
    refs: Sequence[Any],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    yield_obj_refs: bool = False,
    **kwargs: Any,
) -> Iterator[Any]:
    """Yield the values of ``refs`` as they become ready, ``chunk_size`` at a time (the refs
    themselves with ``yield_obj_refs``). Other keywords (``timeout``, ``fetch_local``) go to
    each ``wait``; a round whose ``timeout`` passes with nothing ready is simply tried again,
    as in Ray."""
    _check(chunk_size, kwargs)
    return _rounds(list(refs), chunk_size, yield_obj_refs, kwargs)


def _rounds(
    pending: list[Any], chunk_size: int, yield_obj_refs: bool, wait_kwargs: dict[str, Any]
) -> Iterator[Any]:
    while pending:
        values, pending = _take_round(pending, chunk_size, yield_obj_refs, wait_kwargs)
        yield from values


def map_unordered(
    fn: Any,
    items: Iterable[Any],
    *,
    backpressure_size: int | None = DEFAULT_BACKPRESSURE_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    yield_obj_refs: bool = False,
    **kwargs: Any,
) -> Iterator[Any]:
    """``fn.remote(item)`` for every item, yielding results as they finish. Once
    ``backpressure_size`` tasks are in flight (None: no limit), a round of up to
    ``chunk_size`` results is taken before the next item is submitted."""
    _check(chunk_size, kwargs)
    if backpressure_size is not None and (
        isinstance(backpressure_size, bool)
        or not isinstance(backpressure_size, int)
        or backpressure_size <= 0
    ):
        raise ValueError(
            f"backpressure_size must be a positive int or None, got {backpressure_size!r}"
        )
    if not callable(getattr(fn, "remote", None)):
        raise TypeError(f"map_unordered() needs a remote function, got {fn!r}")
    return _submit_and_take(fn, items, backpressure_size, chunk_size, yield_obj_refs, kwargs)


def _submit_and_take(
    fn: Any,
    items: Iterable[Any],
    backpressure_size: int | None,
    chunk_size: int,
    yield_obj_refs: bool,
    wait_kwargs: dict[str, Any],
) -> Iterator[Any]:
    pending: list[Any] = []
    for item in items:
        pending.append(fn.remote(item))
        if backpressure_size is not None and len(pending) >= backpressure_size:
            values, pending = _take_round(pending, chunk_size, yield_obj_refs, wait_kwargs)
            yield from values
    yield from _rounds(pending, chunk_size, yield_obj_refs, wait_kwargs)
