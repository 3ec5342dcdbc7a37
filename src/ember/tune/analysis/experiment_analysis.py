"""``ExperimentAnalysis``: what ``tune.run`` returns, and what ``ResultGrid`` reads from.
Best trials and dataframes are computed from the trials' results and their folders."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from ember.tune.experiment.trial import Trial
from ember.tune.result import CONFIG, EXPR_RESULT_FILE
from ember.tune.trainable.checkpoint import Checkpoint

_SCOPES = ("all", "last", "avg", "last-5-avg", "last-10-avg")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "/"))
        else:
            out[name] = value
    return out


class ExperimentAnalysis:
    """The trials of an experiment: those given, or those saved in ``experiment_checkpoint_path``
    (``ExperimentAnalysis("~/ember_results/my_experiment")``)."""

    def __init__(
        self,
        experiment_checkpoint_path: str | os.PathLike[str],
        *,
        storage_filesystem: Any = None,
        trials: list[Trial] | None = None,
        default_metric: str | None = None,
        default_mode: str | None = None,
    ) -> None:
        if default_mode is not None and default_mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {default_mode!r}")
        if storage_filesystem is not None:
            raise ValueError("experiments are read from local folders: pass no filesystem")
        path = os.path.abspath(os.path.expanduser(os.fspath(experiment_checkpoint_path)))
        if trials is None:
            from ember.tune.execution.tune_controller import load_state

            state = load_state(path)
            if state is None:
                raise ValueError(
                    f"{path} holds no experiment (no experiment_state-*.json): pass the folder "
                    "that Tuner.fit() or tune.run() wrote"
                )
            trials = list(state["trials"])
        self.trials = trials
        self.experiment_path = path
        self.default_metric = default_metric
        self.default_mode = default_mode

    # ------------------------------------------------------------------ best trial

    def _metric_mode(self, metric: str | None, mode: str | None) -> tuple[str, str]:
        metric = metric or self.default_metric
        mode = mode or self.default_mode
        if not metric or not mode:
            raise ValueError(
                "no metric and mode to rank trials by: pass metric= and mode= here, or set "
                "them in TuneConfig(metric=..., mode=...) (tune.run(metric=..., mode=...))"
            )
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
        return metric, mode

    def get_best_trial(
        self,
        metric: str | None = None,
        mode: str | None = None,
        scope: str = "last",
        filter_nan_and_inf: bool = True,
    ) -> Trial | None:
        metric, mode = self._metric_mode(metric, mode)
        if scope not in _SCOPES:
            raise ValueError(f"scope must be one of {_SCOPES}, not {scope!r}")
        best: Trial | None = None
        best_value = 0.0
        for trial in self.trials:
            stats = trial.metric_analysis.get(metric)
            if stats is None:
                continue
            key = mode if scope == "all" else scope
            value = stats.get(key)
            if value is None:
                continue
            if filter_nan_and_inf and (math.isnan(value) or math.isinf(value)):
                continue
            if best is None or (value > best_value if mode == "max" else value < best_value):
                best, best_value = trial, value
        return best

    def get_best_config(
        self, metric: str | None = None, mode: str | None = None, scope: str = "last"
    ) -> dict[str, Any] | None:
        trial = self.get_best_trial(metric, mode, scope)
        return trial.config if trial is not None else None

    def get_best_checkpoint(
        self, trial: Trial, metric: str | None = None, mode: str | None = None
    ) -> Checkpoint | None:
        """The trial's kept checkpoint whose result was best for the metric."""
        metric, mode = self._metric_mode(metric, mode)
        scored = [
            (metrics[metric], checkpoint)
            for checkpoint, metrics in trial.checkpoint_history
            if isinstance(metrics.get(metric), (int, float))
        ]
        if not scored:
            return trial.checkpoint
        pick = max if mode == "max" else min
        return pick(scored, key=lambda pair: pair[0])[1]

    def get_last_checkpoint(self, trial: Trial | None = None) -> Checkpoint | None:
        trial = trial or self.best_trial
        return trial.checkpoint if trial is not None else None

    @property
    def best_trial(self) -> Trial | None:
        return self.get_best_trial()

    @property
    def best_config(self) -> dict[str, Any] | None:
        return self.get_best_config()

    @property
    def best_result(self) -> dict[str, Any] | None:
        trial = self.best_trial
        return trial.last_result if trial is not None else None

    @property
    def best_checkpoint(self) -> Checkpoint | None:
        trial = self.best_trial
        return self.get_best_checkpoint(trial) if trial is not None else None

    @property
    def best_logdir(self) -> str | None:
        trial = self.best_trial
        return trial.path if trial is not None else None

    best_trial_path = best_logdir

    @property
    def best_dataframe(self) -> Any:
        trial = self.best_trial
        return self.trial_dataframes.get(trial.path) if trial is not None and trial.path else None

    @property
    def best_result_df(self) -> Any:
        import pandas as pd

        best = self.best_result
        return pd.DataFrame([_flatten({k: v for k, v in (best or {}).items()})])

    # ------------------------------------------------------------------ all results

    @property
    def results(self) -> dict[str, dict[str, Any]]:
        return {t.trial_id: t.last_result for t in self.trials}

    def get_all_configs(self) -> dict[str, dict[str, Any]]:
        return {t.path or t.trial_id: t.config for t in self.trials}

    def dataframe(self, metric: str | None = None, mode: str | None = None) -> Any:
        """One row per trial: its last result (or its best for ``metric`` and ``mode``)
        with the config as ``config/<key>`` columns."""
        import pandas as pd

        rows = []
        for trial in self.trials:
            row = {k: v for k, v in trial.last_result.items() if k != CONFIG}
            if metric is not None and mode is not None and trial.path:
                frame = self.trial_dataframes.get(trial.path)
                if frame is not None and metric in frame and len(frame):
                    index = frame[metric].idxmax() if mode == "max" else frame[metric].idxmin()
                    row = {
                        k: v
                        for k, v in frame.loc[index].to_dict().items()
                        if not k.startswith("config/")
                    }
            flat = _flatten(row)
            flat.update(_flatten(trial.config, "config/"))
            flat["logdir"] = trial.path
            flat.setdefault("trial_id", trial.trial_id)
            rows.append(flat)
        return pd.DataFrame(rows)

    @property
    def results_df(self) -> Any:
        return self.dataframe().set_index("trial_id", drop=False)

    @property
    def trial_dataframes(self) -> dict[str, Any]:
        """Every result of every trial, read back from its ``result.json``."""
        return {t.path: trial_dataframe(t.path) for t in self.trials if t.path}


def trial_dataframe(path: str) -> Any:
    import pandas as pd

    rows = []
    try:
        with open(os.path.join(path, EXPR_RESULT_FILE), encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rows.append(_flatten(json.loads(line)))
    except FileNotFoundError:
        pass
    return pd.DataFrame(rows)
