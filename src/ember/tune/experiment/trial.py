"""A trial: one configuration of an experiment, as the controller, the schedulers, the searchers
and the callbacks see it. Plain data on the driver; the trial's actor holds none of it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ember.tune.result import TIME_TOTAL_S, TRAINING_ITERATION

if TYPE_CHECKING:
    from ember.tune.trainable.checkpoint import Checkpoint

# How many of the latest values of each metric are kept for "last-5-avg" and "last-10-avg".
_WINDOWS = (5, 10)


class Trial:
    """Ray Tune's ``Trial``: a configuration, its status, its results so far and its checkpoint.

    ``checkpoint`` is the latest checkpoint kept on the driver's storage; ``restore_from`` is the
    one the trial starts from the next time it runs (its own after a failure or a pause, another
    trial's when Population Based Training exploits)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"

    def __init__(
        self,
        trainable_name: str,
        *,
        config: dict[str, Any] | None = None,
        trial_id: str = "",
        experiment_tag: str = "",
        evaluated_params: dict[str, Any] | None = None,
        resources: dict[str, float] | None = None,
        stopping_criterion: dict[str, Any] | None = None,
        max_failures: int = 0,
    ) -> None:
        self.trainable_name = trainable_name
        self.config: dict[str, Any] = dict(config or {})
        self.trial_id = trial_id
        self.experiment_tag = experiment_tag
        self.evaluated_params: dict[str, Any] = dict(evaluated_params or {})
        self.resources: dict[str, float] = dict(resources or {"CPU": 1.0})
        self.stopping_criterion: dict[str, Any] = dict(stopping_criterion or {})
        self.max_failures = max_failures
        self.status = Trial.PENDING
        self.last_result: dict[str, Any] = {}
        # metric -> {"max", "min", "avg", "last", "last-5-avg", "last-10-avg"}
        self.metric_analysis: dict[str, dict[str, float]] = {}
        self.metric_n_steps: dict[str, dict[str, list[float]]] = {}
        self._metric_count: dict[str, int] = {}
        self.num_failures = 0
        self.error_msg: str | None = None  # the traceback of its last failure
        self.error: BaseException | None = None  # the exception, when it could travel
        self.path: str | None = None  # the trial's folder in the experiment's storage
        self.checkpoint: Checkpoint | None = None
        self.restore_from: Checkpoint | None = None
        self.start_time: float | None = None
        # The checkpoints kept on storage with the metrics each came with, oldest first.
        self.checkpoint_history: list[tuple[Checkpoint, dict[str, Any]]] = []
        self.checkpoints_deleted = 0

    def forget_progress(self) -> None:
        """Start over (``Tuner.restore(..., restart_errored=True)``): no results, no
        checkpoints; the checkpoints' folders are the caller's to remove."""
        self.last_result = {}
        self.metric_analysis = {}
        self.metric_n_steps = {}
        self._metric_count = {}
        self.checkpoint = None
        self.restore_from = None
        self.checkpoint_history = []
        self.checkpoints_deleted = 0

    # ------------------------------------------------------------------ what schedulers use

    def is_finished(self) -> bool:
        return self.status in (Trial.TERMINATED, Trial.ERROR)

    def set_status(self, status: str) -> None:
        self.status = status

    def set_config(self, config: dict[str, Any]) -> None:
        self.config = dict(config)

    def set_experiment_tag(self, experiment_tag: str) -> None:
        self.experiment_tag = experiment_tag

    @property
    def iteration(self) -> int:
        return int(self.last_result.get(TRAINING_ITERATION, 0))

    @property
    def time_total_s(self) -> float:
        return float(self.last_result.get(TIME_TOTAL_S, 0.0))

    @property
    def local_path(self) -> str | None:
        return self.path

    def update_last_result(self, result: dict[str, Any]) -> None:
        """Record a result: the latest one, and per numeric metric its extremes and averages."""
        self.last_result = result
        for key, value in result.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            value = float(value)
            if math.isnan(value):
                continue
            stats = self.metric_analysis.get(key)
            count = self._metric_count.get(key, 0) + 1
            self._metric_count[key] = count
            windows = self.metric_n_steps.setdefault(key, {str(n): [] for n in _WINDOWS})
            for n in _WINDOWS:
                recent = windows[str(n)]
                recent.append(value)
                if len(recent) > n:
                    del recent[0]
            if stats is None:
                stats = self.metric_analysis[key] = {"max": value, "min": value, "avg": value}
            else:
                stats["max"] = max(stats["max"], value)
                stats["min"] = min(stats["min"], value)
                stats["avg"] = stats["avg"] + (value - stats["avg"]) / count
            stats["last"] = value
            for n in _WINDOWS:
                recent = windows[str(n)]
                stats[f"last-{n}-avg"] = sum(recent) / len(recent)

    custom_trial_name: str | None = None  # from TuneConfig(trial_name_creator=...)

    def __str__(self) -> str:
        return self.custom_trial_name or f"{self.trainable_name}_{self.trial_id}"

    def __repr__(self) -> str:
        return str(self)
