"""Filters and limits of the state API, applied where the rows are (each node, then the
control store) so that a question about a few rows of 100,000 ships only those.

A filter is Ray's ``(key, predicate, value)``: ``=`` and ``!=`` compare for equality, the
others (``<``, ``<=``, ``>``, ``>=``) as numbers. The value may come as text from the command
line: it is read as the type of the row's value (``"3"`` matches ``3``, ``"true"`` matches
``True``), and compared without regard to case where both are text, as a user types
``state=running``.

Values are Ray's ``SupportedFilterType`` (text, bool, int or float): anything else could not
cross the wire and is refused at the call site.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

Row = dict[str, Any]

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
PREDICATES = ("=", "!=", *_ORDER)
# The largest limit (and anything larger is refused): an int64, what the wire carries.
MAX_LIMIT = 2**63 - 1


def check(filters: Iterable[Sequence[Any]] | None) -> list[list[Any]]:
    """The filters as ``[key, predicate, value]`` lists; ``ValueError`` naming a bad one."""
    checked = []
    for f in filters or ():
        if isinstance(f, str) or len(f) != 3:
            raise ValueError(
                f"a filter is a (key, predicate, value) tuple such as ('state', '=', "
                f"'RUNNING'), got {f!r}"
            )
        key, predicate, value = f
        if predicate not in PREDICATES:
            raise ValueError(
                f"filter {tuple(f)!r}: unsupported predicate {predicate!r}; use one of "
                f"{', '.join(PREDICATES)}"
            )
        if not isinstance(value, str | bool | int | float) or (
            isinstance(value, int) and not -MAX_LIMIT <= value <= MAX_LIMIT
        ):
            raise ValueError(
                f"filter {tuple(f)!r}: the value must be a str, bool, int (at most 64 bits) or "
                f"float, got {type(value).__name__}"
            )
        checked.append([str(key), predicate, value])
    return checked


def check_limit(limit: Any) -> int:
    """``limit`` if it is an int in ``[0, MAX_LIMIT]``; else ``ValueError`` saying so."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an int from 0 to 2**63-1, got {limit!r}")
    return limit


def needs_detail(rows: Sequence[Row], filters: Sequence[Sequence[Any]]) -> bool:
    """Whether a filter names a column that the short rows lack (a detail column): then the
    rows are asked for with detail, filtered, and the detail left out where the records are
    built (as Ray filters the full row)."""
    return bool(filters) and bool(rows) and any(f[0] not in rows[0] for f in filters)


def _as_type_of(value: Any, like: Any) -> Any:
    if isinstance(value, str) and not isinstance(like, str) and like is not None:
        if isinstance(like, bool):
            return value.strip().lower() in ("1", "true", "yes")
        try:
            return type(like)(value)
        except (TypeError, ValueError):
            return value
    return value


def matches(row: Row, key: str, predicate: str, value: Any) -> bool:
    have = row.get(key)
    want = _as_type_of(value, have)
    if predicate in _ORDER:
        try:
            return _ORDER[predicate](have, want)
        except TypeError:
            return False
    if isinstance(have, str) and isinstance(want, str):
        same = have.lower() == want.lower()
    else:
        same = have == want
    return same if predicate == "=" else not same


def select(
    rows: Iterable[Row], filters: Sequence[Sequence[Any]], limit: int
) -> tuple[list[Row], int]:
    """The first ``limit`` rows that pass every filter, and how many passed in all."""
    if filters:
        rows = [r for r in rows if all(matches(r, k, p, v) for k, p, v in filters)]
    elif isinstance(rows, Sequence):  # (a provider's lazy rows: only the first are made)
        return list(rows[: max(limit, 0)]), len(rows)
    else:
        rows = list(rows)
    return rows[: max(limit, 0)], len(rows)
