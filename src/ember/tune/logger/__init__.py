"""Writing results to disk (``ray.tune.logger``): JSON lines, CSV and TensorBoard files per
trial, all buffered (see ``logger.py``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from ember.tune.callback import Callback
from ember.tune.logger.csv import CSVLoggerCallback
from ember.tune.logger.json import JsonLoggerCallback
from ember.tune.logger.logger import LoggerCallback, pretty_print
from ember.tune.logger.tensorboardx import TBXLoggerCallback


def default_logger_callbacks(existing: Iterable[Callback] = ()) -> list[LoggerCallback]:
    """The loggers every experiment gets (JSON and CSV, and TensorBoard when tensorboardX is
    installed), except those of a kind already among the user's ``existing`` callbacks."""
    kinds: list[type[LoggerCallback]] = [JsonLoggerCallback, CSVLoggerCallback]
    if importlib.util.find_spec("tensorboardX") is not None:
        kinds.append(TBXLoggerCallback)
    given = list(existing)
    return [kind() for kind in kinds if not any(isinstance(cb, kind) for cb in given)]


__all__ = [
    "CSVLoggerCallback",
    "JsonLoggerCallback",
    "LoggerCallback",
    "TBXLoggerCallback",
    "default_logger_callbacks",
    "pretty_print",
]
