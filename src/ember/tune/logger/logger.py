"""The base of Tune's loggers (``ray.tune.logger.LoggerCallback``) and ``pretty_print``.

Loggers are callbacks that see one trial at a time. They buffer their writes: a file stays open
while its trial runs, results go into the file's buffer, and everything buffered is written
out at most once a second (from ``on_step_end``, which the controller calls many times a
second) and when a trial or the experiment ends. A trial that is not running has its files
closed at the next flush; its next result opens them again in append mode."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

from ember.tune.callback import Callback
from ember.tune.experiment.trial import Trial

# Seconds between two writes of what the loggers buffered.
FLUSH_INTERVAL_S = 1.0
# A file's buffer: big enough that a trial's results reach the disk about once a flush.
BUFFER_BYTES = 1 << 16


class LoggerCallback(Callback):
    """Subclasses implement the ``log_*`` methods, and ``flush``/``close`` if they buffer."""

    _last_flush = -math.inf  # on the class, so that subclasses need not call __init__

    def log_trial_start(self, trial: Trial) -> None:
        pass

    def log_trial_restore(self, trial: Trial) -> None:
        pass

    def log_trial_save(self, trial: Trial) -> None:
        pass

    def log_trial_result(self, iteration: int, trial: Trial, result: dict[str, Any]) -> None:
        pass

    def log_trial_end(self, trial: Trial, failed: bool = False) -> None:
        pass

    def flush(self) -> None:
        """Write out what is buffered, and close the files of trials that are not running."""

    def close(self) -> None:
        """Write out and close every file still open."""

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.log_trial_start(trial)

    def on_trial_restore(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.log_trial_restore(trial)

    def on_trial_save(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.log_trial_save(trial)

    def on_trial_result(
        self,
        iteration: int,
        trials: list[Trial],
        trial: Trial,
        result: dict[str, Any],
        **info: Any,
    ) -> None:
        self.log_trial_result(iteration, trial, result)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.log_trial_end(trial, failed=False)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.log_trial_end(trial, failed=True)

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        now = time.monotonic()
        if now - self._last_flush >= FLUSH_INTERVAL_S:
            self._last_flush = now
            self.flush()

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self.close()


class _Writable(Protocol):
    def flush(self) -> None: ...

    def close(self) -> None: ...


FileT = TypeVar("FileT", bound=_Writable)


class TrialFilesLoggerCallback(LoggerCallback, Generic[FileT]):
    """A logger with one open file (or writer) per trial with results, opened on its first
    result by ``open_file`` and closed when the trial ends or stops running."""

    def __init__(self) -> None:
        super().__init__()
        self._files: dict[Trial, FileT] = {}

    def open_file(self, trial: Trial) -> FileT:
        raise NotImplementedError

    def file_for(self, trial: Trial) -> FileT:
        file = self._files.get(trial)
        if file is None:
            file = self._files[trial] = self.open_file(trial)
        return file

    def log_trial_end(self, trial: Trial, failed: bool = False) -> None:
        file = self._files.pop(trial, None)
        if file is not None:
            file.close()

    def flush(self) -> None:
        for trial, file in list(self._files.items()):
            if trial.status == Trial.RUNNING:
                file.flush()
            else:
                del self._files[trial]
                file.close()

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()


def trial_folder(trial: Trial) -> str:
    if trial.path is None:
        raise RuntimeError(f"trial {trial} has no folder (trial.path) to write its results in")
    return trial.path


def pretty_print(result: Mapping[str, Any], exclude: set[str] | None = None) -> str:
    """A result as indented ``key: value`` lines for people, without ``config`` and ``exclude``."""
    skip = {"config", "hist_stats"} | set(exclude or ())
    lines: list[str] = []
    _pretty_lines(result, skip, 0, lines)
    return "\n".join(lines)


def _pretty_lines(value: Mapping[str, Any], skip: set[str], depth: int, lines: list[str]) -> None:
    indent = "  " * depth
    for key in sorted(value, key=str):
        item = value[key]
        if key in skip or item is None:
            continue
        if isinstance(item, Mapping):
            lines.append(f"{indent}{key}:")
            _pretty_lines(item, set(), depth + 1, lines)
        else:
            lines.append(f"{indent}{key}: {_scalar_text(item)}")


def _scalar_text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=json_default)
    except (TypeError, ValueError):
        return repr(value)


def json_default(value: Any) -> Any:
    """What JSON writes for a value it cannot hold: numpy scalars and arrays (and tensors) as
    plain numbers and lists, anything else as its ``str`` (enough for a log)."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        try:
            return tolist()
        except Exception:
            pass
    return str(value)


def to_json_keys(value: Any) -> Any:
    """``value`` with every dict key JSON can hold (tuples and other keys become strings)."""
    if isinstance(value, Mapping):
        return {
            (key if isinstance(key, (str, int, float, bool)) or key is None else str(key)): (
                to_json_keys(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [to_json_keys(item) for item in value]
    return value
