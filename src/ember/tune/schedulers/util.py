"""What the metric-driven schedulers share: a metric and a mode taken from the scheduler or the
experiment and checked early, and results read with an error that says what was reported."""

from __future__ import annotations

import math
from typing import Any

from ember.tune.experiment.trial import Trial
from ember.tune.result import AUTO_RESULT_KEYS
from ember.tune.schedulers.trial_scheduler import FIFOScheduler, SchedulerContext


def check_mode(mode: str | None) -> None:
    if mode is not None and mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")


def missing_key_error(scheduler: str, key: str, what: str, result: dict[str, Any]) -> ValueError:
    reported = sorted(k for k in result if k not in AUTO_RESULT_KEYS)
    return ValueError(
        f"{scheduler} needs the {what} {key!r} in every result, but the trainable reported "
        f"only {reported} (besides Tune's own keys); report {key!r} with tune.report(...) "
        f"or set the scheduler's {what} to one of these"
    )


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) of the non-NaN values, interpolated linearly between the
    nearest ranks (numpy's default); NaN when there are none."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class MetricScheduler(FIFOScheduler):
    """A scheduler that compares trials by a metric over a measure of progress (``time_attr``).

    Scores are signed so that larger is better whatever the mode. A ``FIFOScheduler`` as in Ray
    (``isinstance`` checks hold), but it decides on every result."""

    needs_every_decision = True

    def __init__(self, time_attr: str, metric: str | None, mode: str | None) -> None:
        check_mode(mode)
        self._time_attr = time_attr
        self._metric = metric
        self._mode = mode

    @property
    def metric_op(self) -> float:
        return 1.0 if self._mode == "max" else -1.0

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        check_mode(mode)
        if not super().set_search_properties(metric, mode, **spec):
            return False
        self.require_metric()
        return True

    def require_metric(self) -> None:
        if not self._metric or not self._mode:
            raise ValueError(
                f"{type(self).__name__} has no metric ({self._metric!r}) or mode "
                f"({self._mode!r}): set `metric` and `mode` in tune.TuneConfig(...) or when "
                f"building the scheduler"
            )

    def on_trial_add(self, tune_controller: SchedulerContext, trial: Trial) -> None:
        self.require_metric()

    def read(self, result: dict[str, Any]) -> tuple[float, float]:
        """The result's progress and signed score; a clear error when either is missing."""
        self.require_metric()
        assert self._metric is not None
        name = type(self).__name__
        if self._time_attr not in result:
            raise missing_key_error(name, self._time_attr, "time_attr", result)
        if self._metric not in result:
            raise missing_key_error(name, self._metric, "metric", result)
        try:
            return float(result[self._time_attr]), self.metric_op * float(result[self._metric])
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} compares numbers, but the result has {self._time_attr}="
                f"{result[self._time_attr]!r} and {self._metric}={result[self._metric]!r}"
            ) from None

    def has_keys(self, result: dict[str, Any]) -> bool:
        """Whether a result carries both keys (a trial's final result may carry neither)."""
        return self._time_attr in result and self._metric in result
