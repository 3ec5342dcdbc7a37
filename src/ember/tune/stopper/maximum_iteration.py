"""Stop each trial after a number of results (``ray.tune.stopper.MaximumIterationStopper``)."""

from __future__ import annotations

from typing import Any

from ember.tune.stopper.stopper import Stopper


class MaximumIterationStopper(Stopper):
    """Stops a trial once it has reported ``max_iter`` results to this stopper."""

    def __init__(self, max_iter: int) -> None:
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(
                f"MaximumIterationStopper: max_iter must be an int >= 1, got {max_iter!r}"
            )
        self._max_iter = max_iter
        self._count: dict[str, int] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        count = self._count.get(trial_id, 0) + 1
        self._count[trial_id] = count
        return count >= self._max_iter

    def stop_all(self) -> bool:
        return False
