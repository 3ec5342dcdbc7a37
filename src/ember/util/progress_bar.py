"""``progress``: a bar on the driver that advances as refs become ready, like Dask's
``progress()``. It is a loop over ``wait`` (never fetching the values), each round waiting at
most ``interval`` seconds for all of what is left, so a list of any length costs a few rounds
a second; a generator task's items count as it yields them. The bar is a ``tqdm_ray`` bar,
so it shows on the driver even when ``progress`` runs in a task."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, overload

import ember
from ember.experimental.tqdm_ray import tqdm

_T = TypeVar("_T")


@overload
def progress(
    refs_or_generator: ember.ObjectRef[_T],
    *,
    desc: str | None = None,
    total: int | None = None,
    unit: str = "it",
    interval: float = 0.1,
) -> ember.ObjectRef[_T]: ...


@overload
def progress(
    refs_or_generator: ember.ObjectRefGenerator[_T] | Iterable[ember.ObjectRef[_T]],
    *,
    desc: str | None = None,
    total: int | None = None,
    unit: str = "it",
    interval: float = 0.1,
) -> list[ember.ObjectRef[_T]]: ...


def progress(
    refs_or_generator: Any,
    *,
    desc: str | None = None,
    total: int | None = None,
    unit: str = "it",
    interval: float = 0.1,
) -> Any:
    """Show a progress bar while ``refs_or_generator`` finishes, and return its refs once all
    are ready: the same refs in the same order (a single ref for a single ref; a generator
    task's item refs, in the order it yielded them, for an ``ObjectRefGenerator``).

    It returns refs, not values, so that ``ember.get(progress(refs))`` reads as
    ``ember.get(refs)`` and raises a failed task's error the same way, while refs that are
    passed on to other tasks are never copied into the driver. A failed task counts as
    finished. An iterator (a generator expression that submits tasks, say) is read to its
    end first, so every task it submits runs meanwhile. ``total`` sets the bar's length for
    a generator task, whose length is unknown; ``interval`` is the longest time between two
    looks at the refs.
    """
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        raise ValueError(f"progress: interval must be a number of seconds > 0, got {interval!r}")
    if total is not None and not isinstance(refs_or_generator, ember.ObjectRefGenerator):
        raise ValueError(
            "progress: total is for an ObjectRefGenerator, whose length is unknown; the bar "
            "over refs is as long as their number"
        )
    if isinstance(refs_or_generator, ember.ObjectRef):
        _track([refs_or_generator], desc, unit, interval)
        return refs_or_generator
    if isinstance(refs_or_generator, ember.ObjectRefGenerator):
        bar: tqdm[None] = tqdm(desc=desc, total=total, unit=unit)
        with bar:
            items = []
            for ref in refs_or_generator:
                items.append(ref)
                bar.update(1)
        return items
    if not isinstance(refs_or_generator, Iterable):
        raise TypeError(
            "progress() takes an ObjectRef, a list (or any iterable) of ObjectRefs or an "
            f"ObjectRefGenerator, got {type(refs_or_generator).__name__}"
        )
    refs = list(refs_or_generator)
    for i, ref in enumerate(refs):
        if not isinstance(ref, ember.ObjectRef):
            raise TypeError(
                f"progress() takes ObjectRefs, but item {i} is a {type(ref).__name__}: {ref!r}"
            )
    if refs:
        _track(refs, desc, unit, interval)
    return refs


def _track(refs: list[Any], desc: str | None, unit: str, interval: float) -> None:
    pending = list(dict.fromkeys(refs))  # (``wait`` takes each ref once)
    bar: tqdm[None] = tqdm(desc=desc, total=len(pending), unit=unit)
    with bar:
        while pending:
            ready, pending = ember.wait(
                pending, num_returns=len(pending), timeout=interval, fetch_local=False
            )
            bar.update(len(ready))
