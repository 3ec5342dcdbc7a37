"""``max_calls``: a worker process retires after running a remote function that many times.

As in Ray, so that what a library leaks into its process (memory, a GPU's memory) goes with
the process: a function with ``num_gpus`` set has ``max_calls=1`` unless it says otherwise,
and ``max_calls=0`` means no limit. The limit travels with the exported function
(``CallLimited``); the worker counts each such function's calls (``CallCounter``) and, at
the limit, starts nothing more, answers what it runs (each answer says it is retiring, so
callers requeue what they pushed behind, which never started) and exits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class CallLimited:
    """A remote function as exported when it has a ``max_calls`` limit."""

    __slots__ = ("function", "max_calls")

    def __init__(self, function: Callable[..., Any], max_calls: int) -> None:
        self.function = function
        self.max_calls = max_calls


def max_calls_of(decorator: Mapping[str, Any]) -> int:
    """A remote function's limit, from its decorator's options: its own, else 1 for a GPU
    function (Ray's default), else none (0)."""
    if "max_calls" in decorator:
        return int(decorator["max_calls"])
    return 1 if (decorator.get("num_gpus") or 0) > 0 else 0


class CallCounter:
    """The calls of limited functions run in one worker process."""

    def __init__(self) -> None:
        self.limits: dict[bytes, int] = {}
        self._counts: dict[bytes, int] = {}

    def limit(self, fn_id: bytes, max_calls: int) -> None:
        if max_calls > 0:
            self.limits[fn_id] = max_calls

    def ran(self, fn_id: bytes) -> bool:
        """A call of ``fn_id`` ended: True when the process must retire now."""
        limit = self.limits.get(fn_id)
        if limit is None:
            return False
        count = self._counts[fn_id] = self._counts.get(fn_id, 0) + 1
        return count >= limit
