"""Results as TensorBoard event files, through tensorboardX
(``ray.tune.logger.TBXLoggerCallback``).

Each numeric value of a result becomes a scalar tagged ``ray/tune/<flat key>`` at step
``timesteps_total`` (or ``training_iteration``); when the trial ends, its searched parameters
and its last metrics go in as hparams. tensorboardX's own SummaryWriter sends every event
through a multiprocessing queue to a thread per writer and fsyncs on flush; here one event per
result, with all its scalars, goes straight into a buffered file instead."""

from __future__ import annotations

import math
import numbers
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import IO, Any

from ember.tune.experiment.trial import Trial
from ember.tune.logger.logger import BUFFER_BYTES, TrialFilesLoggerCallback, trial_folder
from ember.tune.result import (
    CONFIG,
    PID,
    TIME_TOTAL_S,
    TIMESTAMP,
    TIMESTEPS_TOTAL,
    TRAINING_ITERATION,
)
from ember.tune.utils.util import flatten_dict

_NOT_LOGGED = frozenset({CONFIG, PID, TIMESTAMP, TIME_TOTAL_S, TRAINING_ITERATION})
_TAG_PREFIX = "ray/tune/"


def import_tensorboardx() -> Any:
    try:
        import tensorboardX
        import tensorboardX.proto.event_pb2
        import tensorboardX.proto.summary_pb2
        import tensorboardX.record_writer
        import tensorboardX.summary
    except ImportError as e:
        raise ImportError(
            "TBXLoggerCallback writes TensorBoard files with tensorboardX, which is not "
            "installed: pip install 'ember[tune]' (or pip install tensorboardX)"
        ) from e
    return tensorboardX


class _EventFile:
    """An append-only TensorBoard event file: TFRecord framing (length, masked CRC32C of the
    length, data, masked CRC32C of the data) around serialized ``Event`` protos."""

    def __init__(self, path: str, tbx: Any) -> None:
        self._tbx = tbx
        self._crc: Callable[[bytes], int] = tbx.record_writer.masked_crc32c
        is_new = not os.path.exists(path)
        self._file: IO[bytes] = open(path, "ab", buffering=BUFFER_BYTES)
        if is_new:
            self.write_event(tbx.proto.event_pb2.Event(file_version="brain.Event:2"))

    def write_event(self, event: Any) -> None:
        if not event.wall_time:
            event.wall_time = time.time()
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(
            header
            + struct.pack("<I", self._crc(header))
            + data
            + struct.pack("<I", self._crc(data))
        )

    def write_summary(self, summary: Any, step: int | None = None) -> None:
        event = self._tbx.proto.event_pb2.Event(summary=summary)
        if step is not None:
            event.step = step
        self.write_event(event)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TBXLoggerCallback(TrialFilesLoggerCallback[_EventFile]):
    def __init__(self) -> None:
        super().__init__()
        self._tbx = import_tensorboardx()
        self._paths: dict[Trial, str] = {}  # a trial that runs again appends to its file
        self._last_metrics: dict[Trial, dict[str, float]] = {}

    def open_file(self, trial: Trial) -> _EventFile:
        path = self._paths.get(trial)
        if path is None:
            name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
            path = self._paths[trial] = os.path.join(trial_folder(trial), name)
        return _EventFile(path, self._tbx)

    def log_trial_result(self, iteration: int, trial: Trial, result: dict[str, Any]) -> None:
        step = result.get(TIMESTEPS_TOTAL) or result.get(TRAINING_ITERATION) or 0
        scalars: dict[str, float] = {}
        for key, value in result.items():
            if key in _NOT_LOGGED:
                continue
            if isinstance(value, dict):
                _add_scalars(scalars, flatten_dict({key: value}))
            elif _is_number(value) and not math.isnan(value):
                scalars[_TAG_PREFIX + key] = float(value)
        self._last_metrics[trial] = scalars
        summary_pb2 = self._tbx.proto.summary_pb2
        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=tag, simple_value=v) for tag, v in scalars.items()]
        )
        self.file_for(trial).write_summary(summary, int(step))

    def log_trial_end(self, trial: Trial, failed: bool = False) -> None:
        metrics = self._last_metrics.pop(trial, None)
        if metrics:
            file = self.file_for(trial)
            for summary in self._tbx.summary.hparams(_hparams(trial), metrics):
                file.write_summary(summary)
        self._paths.pop(trial, None)
        super().log_trial_end(trial, failed)


def _add_scalars(scalars: dict[str, float], flat: dict[str, Any]) -> None:
    for key, value in flat.items():
        if _is_number(value) and not math.isnan(value):
            scalars[_TAG_PREFIX + key] = float(value)


def _is_number(value: Any) -> bool:
    kind = type(value)
    if kind is float or kind is int or kind is bool:
        return True
    return isinstance(value, numbers.Real)


def _hparams(trial: Trial) -> dict[str, Any]:
    """The trial's searched parameters (its whole config if none were searched) as values
    TensorBoard's hparams accept."""
    params = flatten_dict(trial.evaluated_params or trial.config)
    return {
        key: value if isinstance(value, (bool, int, float, str)) else str(value)
        for key, value in params.items()
    }
