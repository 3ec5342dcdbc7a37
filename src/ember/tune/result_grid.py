"""What ``Tuner.fit()`` returns: a ``ResultGrid`` of one ``Result`` per trial."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ember.tune.analysis.experiment_analysis import ExperimentAnalysis, trial_dataframe
from ember.tune.error import TuneError
from ember.tune.experiment.trial import Trial
from ember.tune.trainable.checkpoint import Checkpoint


@dataclass
class Result:
    """A trial's outcome: its last metrics, latest checkpoint, error and folder."""

    metrics: dict[str, Any] | None
    checkpoint: Checkpoint | None
    error: BaseException | None
    path: str
    best_checkpoints: list[tuple[Checkpoint, dict[str, Any]]] = field(default_factory=list)
    _config: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def config(self) -> dict[str, Any]:
        return self._config

    @property
    def metrics_dataframe(self) -> Any:
        """Every result of the trial, from its ``result.json``."""
        return trial_dataframe(self.path)

    @property
    def filesystem(self) -> None:
        return None

    def __repr__(self) -> str:
        shown = {k: v for k, v in (self.metrics or {}).items() if k != "config"}
        return (
            f"Result(metrics={shown}, path={self.path!r}, checkpoint={self.checkpoint}"
            + (f", error={self.error!r}" if self.error is not None else "")
            + ")"
        )


def result_of(trial: Trial) -> Result:
    error: BaseException | None = None
    if trial.status == Trial.ERROR:
        error = trial.error or TuneError(trial.error_msg or "the trial failed")
    return Result(
        metrics=dict(trial.last_result),
        checkpoint=trial.checkpoint,
        error=error,
        path=trial.path or "",
        best_checkpoints=list(trial.checkpoint_history),
        _config=trial.config,
    )


class ResultGrid:
    def __init__(self, experiment_analysis: ExperimentAnalysis) -> None:
        self._analysis = experiment_analysis
        self._results = [result_of(t) for t in experiment_analysis.trials]

    @property
    def experiment_path(self) -> str:
        return self._analysis.experiment_path

    @property
    def filesystem(self) -> None:
        return None

    def get_best_result(
        self,
        metric: str | None = None,
        mode: str | None = None,
        scope: str = "last",
        filter_nan_and_inf: bool = True,
    ) -> Result:
        """The best trial's result for ``metric`` and ``mode`` (the experiment's by default).
        ``scope`` is "last" (each trial's last value), "all" (its best), "avg",
        "last-5-avg" or "last-10-avg"."""
        if len(self._results) == 1 and metric is None and self._analysis.default_metric is None:
            return self._results[0]
        trial = self._analysis.get_best_trial(metric, mode, scope, filter_nan_and_inf)
        if trial is None:
            metric = metric or self._analysis.default_metric
            raise RuntimeError(
                f"no trial reported the metric {metric!r} (with a finite value); "
                "see ResultGrid.errors for trials that failed"
            )
        return self._results[self._analysis.trials.index(trial)]

    def get_dataframe(
        self, filter_metric: str | None = None, filter_mode: str | None = None
    ) -> Any:
        """One row per trial: its last result, or with ``filter_metric``/``filter_mode`` its
        best, and its config as ``config/<key>`` columns."""
        return self._analysis.dataframe(filter_metric, filter_mode)

    @property
    def errors(self) -> list[BaseException]:
        return [r.error for r in self._results if r.error is not None]

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    @property
    def num_terminated(self) -> int:
        return sum(1 for t in self._analysis.trials if t.status == Trial.TERMINATED)

    def __len__(self) -> int:
        return len(self._results)

    def __getitem__(self, i: int) -> Result:
        return self._results[i]

    def __iter__(self) -> Iterator[Result]:
        return iter(self._results)

    def __repr__(self) -> str:
        return "ResultGrid<[\n" + ",\n".join(f"  {r!r}" for r in self._results) + "\n]>"
