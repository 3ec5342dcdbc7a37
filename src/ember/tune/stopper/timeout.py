"""Stop the whole experiment after a time budget (``ray.tune.stopper.TimeoutStopper``)."""

from __future__ import annotations

import datetime
import time
from typing import Any

from ember.tune.stopper.stopper import Stopper


class TimeoutStopper(Stopper):
    """Stops every trial once ``timeout`` (seconds, or a ``datetime.timedelta``) has passed since
    the stopper was made. Pickled with the budget it has left, so that an experiment restored
    later gets only the rest of its time."""

    def __init__(self, timeout: float | datetime.timedelta) -> None:
        if isinstance(timeout, datetime.timedelta):
            seconds = timeout.total_seconds()
        elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
            seconds = float(timeout)
        else:
            raise TypeError(
                f"TimeoutStopper: timeout must be a number of seconds or a datetime.timedelta, "
                f"got {timeout!r} ({type(timeout).__name__})"
            )
        if seconds < 0:
            raise ValueError(f"TimeoutStopper: timeout must not be negative, got {timeout!r}")
        self._budget = seconds
        self._start = time.monotonic()

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return time.monotonic() - self._start >= self._budget

    def __getstate__(self) -> dict[str, Any]:
        return {"budget": max(0.0, self._budget - (time.monotonic() - self._start))}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._budget = state["budget"]
        self._start = time.monotonic()
