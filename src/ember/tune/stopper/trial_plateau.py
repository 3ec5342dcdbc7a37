"""Stop a trial whose metric has stopped moving (``ray.tune.stopper.TrialPlateauStopper``)."""

from __future__ import annotations

import statistics
from collections import deque
from typing import Any

from ember.tune.stopper.stopper import Stopper


class TrialPlateauStopper(Stopper):
    """Stops a trial when the standard deviation of its last ``num_results`` values of ``metric``
    falls below ``std``, once it has reported ``grace_period`` results. With
    ``metric_threshold`` it stops only a trial that has also got past the threshold (below it
    for ``mode="min"``, above it for ``mode="max"``). Results without ``metric`` are skipped."""

    def __init__(
        self,
        metric: str,
        std: float = 0.01,
        num_results: int = 4,
        grace_period: int = 4,
        metric_threshold: float | None = None,
        mode: str | None = None,
    ) -> None:
        if mode not in (None, "min", "max"):
            raise ValueError(
                f"TrialPlateauStopper: mode must be 'min', 'max' or None, got {mode!r}"
            )
        if metric_threshold is not None and mode is None:
            raise ValueError(
                "TrialPlateauStopper: metric_threshold needs mode ('min' or 'max') to say on "
                "which side of the threshold a trial may stop"
            )
        if num_results < 1 or grace_period < 0:
            raise ValueError(
                f"TrialPlateauStopper: num_results must be >= 1 and grace_period >= 0, got "
                f"num_results={num_results!r}, grace_period={grace_period!r}"
            )
        self._metric = metric
        self._std = std
        self._num_results = num_results
        self._grace_period = grace_period
        self._threshold = metric_threshold
        self._mode = mode
        self._count: dict[str, int] = {}
        self._recent: dict[str, deque[float]] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if self._metric not in result:
            return False
        value = float(result[self._metric])
        recent = self._recent.setdefault(trial_id, deque(maxlen=self._num_results))
        recent.append(value)
        count = self._count[trial_id] = self._count.get(trial_id, 0) + 1
        if count < self._grace_period or len(recent) < self._num_results:
            return False
        if self._threshold is not None:
            if self._mode == "min" and value > self._threshold:
                return False
            if self._mode == "max" and value < self._threshold:
                return False
        return statistics.pstdev(recent) < self._std

    def stop_all(self) -> bool:
        return False
