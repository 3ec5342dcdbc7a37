"""Stop the experiment once its best results agree
(``ray.tune.stopper.ExperimentPlateauStopper``)."""

from __future__ import annotations

import bisect
import statistics
from typing import Any

from ember.tune.stopper.stopper import Stopper


class ExperimentPlateauStopper(Stopper):
    """Stops every trial once the ``top`` best values of ``metric`` seen so far, over all
    trials, have a standard deviation of at most ``std`` for ``patience`` further results."""

    def __init__(
        self, metric: str, std: float = 0.001, top: int = 10, mode: str = "min", patience: int = 0
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"ExperimentPlateauStopper: mode must be 'min' or 'max', got {mode!r}")
        if not isinstance(top, int) or top < 1:
            raise ValueError(f"ExperimentPlateauStopper: top must be an int >= 1, got {top!r}")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(
                f"ExperimentPlateauStopper: patience must be an int >= 0, got {patience!r}"
            )
        self._metric = metric
        self._std = std
        self._top = top
        self._sign = 1.0 if mode == "min" else -1.0
        self._patience = patience
        self._best: list[float] = []  # sign * value, ascending: the best first
        self._plateau_results = 0

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if self._metric in result:
            bisect.insort(self._best, self._sign * float(result[self._metric]))
            del self._best[self._top :]
            if self.has_plateaued():
                self._plateau_results += 1
            else:
                self._plateau_results = 0
        return self.stop_all()

    def has_plateaued(self) -> bool:
        return len(self._best) == self._top and statistics.pstdev(self._best) <= self._std

    def stop_all(self) -> bool:
        return self.has_plateaued() and self._plateau_results >= self._patience
