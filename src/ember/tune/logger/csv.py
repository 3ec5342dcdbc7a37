"""Results as rows of ``progress.csv`` (``ray.tune.logger.CSVLoggerCallback``).

The columns are those of the trial's first result, nested dicts flattened with "/" and
``config`` left out, as Ray writes them; a later result's new keys are dropped and its missing
ones left empty. A trial that runs again appends under the header already in the file."""

from __future__ import annotations

import csv
import os
from typing import Any

from ember.tune.experiment.trial import Trial
from ember.tune.logger.logger import BUFFER_BYTES, TrialFilesLoggerCallback, trial_folder
from ember.tune.result import CONFIG, EXPR_PROGRESS_FILE
from ember.tune.utils.util import flatten_dict


class _CsvFile:
    def __init__(self, path: str) -> None:
        self.header: list[str] | None = None
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path, newline="") as existing:
                self.header = next(csv.reader(existing), None)
        self._file = open(path, "a", newline="", buffering=BUFFER_BYTES)
        self._writer = csv.writer(self._file)

    def write(self, result: dict[str, Any]) -> None:
        row = {key: value for key, value in result.items() if key != CONFIG}
        if any(isinstance(value, dict) for value in row.values()):
            row = flatten_dict(row)
        if self.header is None:
            self.header = list(row)
            self._writer.writerow(self.header)
        self._writer.writerow([row.get(key) for key in self.header])

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class CSVLoggerCallback(TrialFilesLoggerCallback[_CsvFile]):
    def open_file(self, trial: Trial) -> _CsvFile:
        return _CsvFile(os.path.join(trial_folder(trial), EXPR_PROGRESS_FILE))

    def log_trial_result(self, iteration: int, trial: Trial, result: dict[str, Any]) -> None:
        self.file_for(trial).write(result)
