"""Results as JSON lines in ``result.json``, the config in ``params.json`` and ``params.pkl``
(``ray.tune.logger.JsonLoggerCallback``)."""

from __future__ import annotations

import json
import os
from typing import IO, Any

import cloudpickle

from ember.tune.experiment.trial import Trial
from ember.tune.logger.logger import (
    BUFFER_BYTES,
    TrialFilesLoggerCallback,
    json_default,
    to_json_keys,
    trial_folder,
)
from ember.tune.result import EXPR_PARAM_FILE, EXPR_PARAM_PICKLE_FILE, EXPR_RESULT_FILE

_ENCODER = json.JSONEncoder(default=json_default)
_PRETTY_ENCODER = json.JSONEncoder(default=json_default, indent=2, sort_keys=True)


def to_json(value: Any, encoder: json.JSONEncoder = _ENCODER) -> str:
    """``value`` as JSON, whatever it holds (see ``json_default`` and ``to_json_keys``)."""
    try:
        return encoder.encode(value)
    except (TypeError, ValueError):
        return encoder.encode(to_json_keys(value))


class JsonLoggerCallback(TrialFilesLoggerCallback[IO[str]]):
    def log_trial_start(self, trial: Trial) -> None:
        self._write_params(trial)

    def log_trial_restore(self, trial: Trial) -> None:
        self._write_params(trial)  # its config may have changed (Population Based Training)

    def _write_params(self, trial: Trial) -> None:
        folder = trial_folder(trial)
        with open(os.path.join(folder, EXPR_PARAM_FILE), "w") as f:
            f.write(to_json(trial.config, _PRETTY_ENCODER))
        with open(os.path.join(folder, EXPR_PARAM_PICKLE_FILE), "wb") as pf:
            cloudpickle.dump(trial.config, pf)

    def open_file(self, trial: Trial) -> IO[str]:
        return open(
            os.path.join(trial_folder(trial), EXPR_RESULT_FILE), "a", buffering=BUFFER_BYTES
        )

    def log_trial_result(self, iteration: int, trial: Trial, result: dict[str, Any]) -> None:
        file = self.file_for(trial)
        file.write(to_json(result))
        file.write("\n")
