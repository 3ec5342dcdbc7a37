"""The live progress table of an experiment (``ray.tune.progress_reporter``).

A reporter turns the trials into a status block: a header (trials per status, elapsed time,
resources in use, the best trial so far) and a table with a row per trial (name, status,
location, parameters, iterations, time, latest metrics), then an errors table. ``CLIReporter``
writes it to a stream: on a terminal it redraws the block in place (ANSI: move up over the
lines drawn last time and clear them), elsewhere it prints plain blocks, every
``max_report_frequency`` seconds and when trials change status (at most once a second).
``JupyterNotebookReporter`` shows it as an HTML table updated in place.

The controller only calls callback hooks: ``_ProgressCallback`` drives a reporter from them,
prints per-result lines by ``verbose`` level, and a summary at the end."""

from __future__ import annotations

import datetime
import html
import importlib
import math
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import ember
from ember.tune.callback import Callback
from ember.tune.experiment.trial import Trial
from ember.tune.logger.logger import pretty_print
from ember.tune.result import AUTO_RESULT_KEYS, EXPR_ERROR_FILE, NODE_IP, PID
from ember.tune.utils.util import flatten_dict

# Statuses in the order their trials are shown when not all fit.
_STATUS_ORDER = (Trial.RUNNING, Trial.PAUSED, Trial.PENDING, Trial.TERMINATED, Trial.ERROR)
# The least time between two reports that a change of status (not the clock) asks for.
_MIN_STATUS_REPORT_GAP_S = 1.0


class ProgressReporter:
    """Ray's reporter interface: the controller's side asks ``should_report`` each loop turn and
    calls ``report`` when it says so."""

    def setup(
        self,
        start_time: float | None = None,
        total_samples: int | None = None,
        metric: str | None = None,
        mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        pass

    def should_report(self, trials: list[Trial], done: bool = False) -> bool:
        raise NotImplementedError

    def report(self, trials: list[Trial], done: bool, *sys_info: str) -> None:
        raise NotImplementedError

    def set_search_properties(self, metric: str | None, mode: str | None) -> bool:
        return True

    def set_total_samples(self, total_samples: int | None) -> None:
        pass

    def write_line(self, text: str) -> None:
        """Print a message (a result, an error) outside the table."""
        print(text)


def _columns(columns: Iterable[str] | Mapping[str, str] | None, what: str) -> dict[str, str]:
    if columns is None:
        return {}
    if isinstance(columns, Mapping):
        return {str(key): str(name) for key, name in columns.items()}
    if isinstance(columns, str):
        raise TypeError(f"{what} must be a list or a dict of column names, not a str: {columns!r}")
    return {str(key): str(key) for key in columns}


class TuneReporterBase(ProgressReporter):
    """What every reporter shows, as plain data; subclasses only decide where it goes."""

    def __init__(
        self,
        *,
        metric_columns: Iterable[str] | Mapping[str, str] | None = None,
        parameter_columns: Iterable[str] | Mapping[str, str] | None = None,
        total_samples: int | None = None,
        max_progress_rows: int = 20,
        max_error_rows: int = 20,
        max_column_length: int = 20,
        max_report_frequency: float = 5,
        infer_limit: int = 3,
        sort_by_metric: bool = False,
        metric: str | None = None,
        mode: str | None = None,
    ) -> None:
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or None, got {mode!r}")
        if max_progress_rows < 1 or max_error_rows < 0 or max_column_length < 4:
            raise ValueError(
                "max_progress_rows must be >= 1, max_error_rows >= 0 and max_column_length >= 4"
            )
        self._metric_columns = _columns(metric_columns, "metric_columns")
        self._parameter_columns = _columns(parameter_columns, "parameter_columns")
        self._infer_metrics = metric_columns is None
        self._infer_parameters = parameter_columns is None
        self._total_samples = total_samples
        self._max_progress_rows = max_progress_rows
        self._max_error_rows = max_error_rows
        self._max_column_length = max_column_length
        self._max_report_frequency = max_report_frequency
        self._infer_limit = infer_limit
        self._sort_by_metric = sort_by_metric
        self._metric = metric
        self._mode = mode
        self._start_time = time.time()
        self._last_report = -math.inf
        self._last_counts: Counter[str] = Counter()

    # ------------------------------------------------------------------ Ray's interface

    def setup(
        self,
        start_time: float | None = None,
        total_samples: int | None = None,
        metric: str | None = None,
        mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        if start_time is not None:
            self._start_time = start_time
        if total_samples is not None:
            self._total_samples = total_samples
        self.set_search_properties(metric, mode)

    def set_search_properties(self, metric: str | None, mode: str | None) -> bool:
        """Take the experiment's metric and mode, unless the reporter was given its own."""
        if (self._metric and metric and metric != self._metric) or (
            self._mode and mode and mode != self._mode
        ):
            return False
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    def set_total_samples(self, total_samples: int | None) -> None:
        self._total_samples = total_samples

    def add_metric_column(self, metric: str, representation: str | None = None) -> None:
        if metric in self._metric_columns:
            raise ValueError(f"metric column {metric!r} is already shown")
        self._metric_columns[metric] = representation or metric

    def add_parameter_column(self, parameter: str, representation: str | None = None) -> None:
        if parameter in self._parameter_columns:
            raise ValueError(f"parameter column {parameter!r} is already shown")
        self._parameter_columns[parameter] = representation or parameter

    def should_report(self, trials: list[Trial], done: bool = False) -> bool:
        now = time.monotonic()
        since = now - self._last_report
        if not done and since < min(self._max_report_frequency, _MIN_STATUS_REPORT_GAP_S):
            return False  # the common case, many times a second: no need to count statuses
        counts = Counter(trial.status for trial in trials)
        if done or since >= self._max_report_frequency or counts != self._last_counts:
            self._last_report = now
            self._last_counts = counts
            return True
        return False

    # ------------------------------------------------------------------ what is shown

    def header_lines(self, trials: list[Trial], sys_info: Iterable[str]) -> list[str]:
        minutes, seconds = divmod(max(time.time() - self._start_time, 0.0), 60)
        hours, minutes = divmod(int(minutes), 60)
        now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        lines = [
            "== Status ==",
            f"Current time: {now} (running for {hours:02d}:{minutes:02d}:{seconds:05.2f})",
        ]
        lines.extend(sys_info)
        best = _best_trial(trials, self._metric, self._mode)
        if best is not None:
            value = _cell(best.last_result[self._metric or ""], 0)
            lines.append(
                f"Current best trial: {best} with {self._metric}={value} and "
                f"parameters={_params_of(best)}"
            )
        counts = Counter(trial.status for trial in trials)
        total = f"{len(trials)}/{self._total_samples}" if self._total_samples else len(trials)
        by_status = ", ".join(f"{counts[s]} {s}" for s in _STATUS_ORDER if counts[s])
        lines.append(f"Number of trials: {total} ({by_status})" if trials else "No trials yet")
        return lines

    def shown_trials(self, trials: list[Trial]) -> tuple[list[Trial], Counter[str]]:
        """The trials that get a row, and the count per status of those that do not."""
        rank = {status: i for i, status in enumerate(_STATUS_ORDER)}
        metric = self._metric if self._sort_by_metric and self._mode else None
        sign = -1.0 if self._mode == "max" else 1.0

        def key(t: Trial) -> tuple[int, float]:
            """By status; finished trials best first when sorting by the metric."""
            value = _number(t.last_result.get(metric)) if metric else None
            if t.status != Trial.TERMINATED or value is None:
                return (rank.get(t.status, len(rank)), 0.0)
            return (rank[Trial.TERMINATED], sign * value)

        ordered = sorted(trials, key=key)
        shown = ordered[: self._max_progress_rows]
        hidden = Counter(t.status for t in ordered[self._max_progress_rows :])
        return shown, hidden

    def table(self, trials: list[Trial]) -> tuple[list[str], list[list[Any]], Counter[str]]:
        """The progress table's header and rows, and the count per status of hidden trials."""
        shown, hidden = self.shown_trials(trials)
        params = dict(self._parameter_columns)
        if self._infer_parameters:
            for trial in shown:
                for key in flatten_dict(trial.evaluated_params):
                    params.setdefault(key, key)
        metrics = dict(self._metric_columns)
        if self._infer_metrics:
            inferred = [self._metric] if self._metric else []
            for trial in shown:
                inferred.extend(
                    key
                    for key, value in trial.last_result.items()
                    if key not in AUTO_RESULT_KEYS and _number(value) is not None
                )
            for key in dict.fromkeys(inferred):
                if len(metrics) >= len(self._metric_columns) + self._infer_limit:
                    break
                metrics.setdefault(key, key)
        header = ["Trial name", "status", "loc", *params.values(), "iter", "total time (s)"]
        header.extend(metrics.values())
        rows = []
        for trial in shown:
            flat_params = flatten_dict(trial.evaluated_params or trial.config)
            flat_result = flatten_dict(trial.last_result) if trial.last_result else {}
            row: list[Any] = [str(trial), trial.status, _location(trial.last_result)]
            row.extend(flat_params.get(key) for key in params)
            row.append(trial.iteration if trial.last_result else None)
            row.append(trial.time_total_s if trial.last_result else None)
            row.extend(flat_result.get(key) for key in metrics)
            rows.append(row)
        return header, rows, hidden

    def error_table(self, trials: list[Trial]) -> tuple[list[str], list[list[Any]]]:
        errored = [t for t in trials if t.status == Trial.ERROR][: self._max_error_rows]
        rows: list[list[Any]] = [
            [str(t), t.num_failures, os.path.join(t.path, EXPR_ERROR_FILE) if t.path else None]
            for t in errored
        ]
        return ["Trial name", "# failures", "error file"], rows

    def text_lines(self, trials: list[Trial], sys_info: Iterable[str] = ()) -> list[str]:
        """The whole status block as plain text lines."""
        lines = self.header_lines(trials, sys_info)
        header, rows, hidden = self.table(trials)
        if rows:
            lines.extend(_text_table(header, rows, self._max_column_length))
        if hidden:
            lines.append(f"... {sum(hidden.values())} more trials not shown ({_counts(hidden)})")
        errors = sum(1 for t in trials if t.status == Trial.ERROR)
        if errors:
            lines.append(f"Number of errored trials: {errors}")
            error_header, error_rows = self.error_table(trials)
            lines.extend(_text_table(error_header, error_rows, max_length=0))
        return lines

    def html(self, trials: list[Trial], sys_info: Iterable[str] = ()) -> str:
        """The whole status block as HTML, for notebooks."""
        parts = ["<div class='ember-tune-status'>"]
        parts.extend(f"<p>{html.escape(line)}</p>" for line in self.header_lines(trials, sys_info))
        header, rows, hidden = self.table(trials)
        if rows:
            parts.append(_html_table(header, rows, self._max_column_length))
        if hidden:
            parts.append(f"<p>... {sum(hidden.values())} more trials ({_counts(hidden)})</p>")
        error_header, error_rows = self.error_table(trials)
        if error_rows:
            parts.append(_html_table(error_header, error_rows, 0))
        parts.append("</div>")
        return "".join(parts)


class CLIReporter(TuneReporterBase):
    """The status block on a stream (``sys.stdout`` unless ``file`` is given); redrawn in place
    when the stream is a terminal."""

    def __init__(self, *args: Any, file: TextIO | None = None, **kwargs: Any) -> None:
        """Takes ``TuneReporterBase``'s arguments (Ray's), and the stream to write to."""
        super().__init__(*args, **kwargs)
        self._file = file
        self._drawn: list[str] = []  # the block on the terminal now, to erase before a redraw

    @property
    def _out(self) -> TextIO:
        return self._file if self._file is not None else sys.stdout

    def _is_tty(self) -> bool:
        isatty = getattr(self._out, "isatty", None)
        return bool(isatty and isatty())

    def report(self, trials: list[Trial], done: bool, *sys_info: str) -> None:
        lines = self.text_lines(trials, sys_info)
        if not self._is_tty():
            self._out.write("\n".join(lines) + "\n\n")
            self._out.flush()
            return
        width = max(shutil.get_terminal_size().columns - 1, 20)
        lines = [line[:width] for line in lines]  # one terminal row each, so erasing is exact
        self._out.write(self._erase() + "\n".join(lines) + "\n")
        self._out.flush()
        self._drawn = [] if done else lines

    def write_line(self, text: str) -> None:
        if self._drawn:
            redraw = "\n".join(self._drawn) + "\n"
            self._out.write(self._erase() + text + "\n" + redraw)
        else:
            self._out.write(text + "\n")
        self._out.flush()

    def _erase(self) -> str:
        return f"\r\x1b[{len(self._drawn)}A\x1b[J" if self._drawn else ""


class JupyterNotebookReporter(TuneReporterBase):
    """The status block as an HTML table in a notebook's output, updated in place (a new one
    each report with ``overwrite=False``)."""

    def __init__(self, overwrite: bool = True, *args: Any, **kwargs: Any) -> None:
        """Takes ``TuneReporterBase``'s arguments (Ray's) after ``overwrite``."""
        super().__init__(*args, **kwargs)
        self._overwrite = overwrite
        self._handle: Any = None

    def report(self, trials: list[Trial], done: bool, *sys_info: str) -> None:
        display: Any = importlib.import_module("IPython.display")
        content = display.HTML(self.html(trials, sys_info))
        if self._overwrite and self._handle is not None:
            self._handle.update(content)
        else:
            self._handle = display.display(content, display_id=True)


def _in_notebook() -> bool:
    """Whether this is a Jupyter kernel; IPython is looked at only if it is already loaded."""
    ipython: Any = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _detect_reporter(**kwargs: Any) -> TuneReporterBase:
    if _in_notebook():
        return JupyterNotebookReporter(**kwargs)
    return CLIReporter(**kwargs)


class _ProgressCallback(Callback):
    """Shows an experiment's progress through a reporter, at Ray Tune's ``verbose`` levels:
    0 nothing, 1 the status table and the summary at the end, 2 also a line per result,
    3 also each result in full."""

    def __init__(
        self,
        reporter: ProgressReporter | None = None,
        verbose: int = 1,
        metric: str | None = None,
        mode: str | None = None,
        experiment_path: str | None = None,
    ) -> None:
        verbose = int(verbose)
        if not 0 <= verbose <= 3:
            raise ValueError(f"verbose must be 0, 1, 2 or 3, got {verbose!r}")
        self._reporter = reporter if reporter is not None else _detect_reporter()
        self._verbose = verbose
        self._metric = metric
        self._mode = mode
        self._experiment_path = experiment_path
        self._start_time = time.time()
        if verbose and not self._reporter.set_search_properties(metric, mode):
            raise ValueError(
                f"the progress reporter was given another metric or mode than the experiment's "
                f"({metric!r}, {mode!r}); give it the same or none"
            )

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        self._start_time = time.time()
        self._reporter.setup(
            start_time=self._start_time,
            total_samples=total_num_samples,
            metric=self._metric,
            mode=self._mode,
        )

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if self._verbose and self._reporter.should_report(trials):
            self._report(trials, done=False)

    def on_trial_result(
        self,
        iteration: int,
        trials: list[Trial],
        trial: Trial,
        result: dict[str, Any],
        **info: Any,
    ) -> None:
        if self._verbose == 2:
            metrics = ", ".join(
                f"{key}={_cell(value, 0)}"
                for key, value in result.items()
                if key not in AUTO_RESULT_KEYS and _number(value) is not None
            )
            self._reporter.write_line(
                f"Trial {trial} reported {metrics} with parameters={_params_of(trial)}."
            )
        elif self._verbose == 3:
            self._reporter.write_line(f"Result for {trial}:\n{_indent(pretty_print(result))}")

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        if self._verbose >= 2:
            self._reporter.write_line(f"Trial {trial} completed.")

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        if self._verbose:
            where = f"; see {os.path.join(trial.path, EXPR_ERROR_FILE)}" if trial.path else ""
            self._reporter.write_line(f"Trial {trial} errored{where}")

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        if not self._verbose:
            return
        self._report(trials, done=True)
        for line in self.summary_lines(trials):
            self._reporter.write_line(line)

    def summary_lines(self, trials: list[Trial]) -> list[str]:
        counts = Counter(trial.status for trial in trials)
        elapsed = time.time() - self._start_time
        lines = [
            f"Experiment finished in {elapsed:.2f} s: {len(trials)} trials "
            f"({_counts(counts) or 'none'})"
        ]
        best = _best_trial(trials, self._metric, self._mode)
        if best is not None and self._metric:
            value = _cell(best.last_result[self._metric], 0)
            lines.append(f"Best trial: {best} with {self._metric}={value}, config={best.config}")
        path = self._experiment_path or _common_parent(trials)
        if path:
            lines.append(f"Results are in {path}")
        return lines

    def _report(self, trials: list[Trial], done: bool) -> None:
        self._reporter.report(trials, done, _resource_line(trials))


def progress_callback(
    reporter: ProgressReporter | None,
    verbose: int,
    metric: str | None,
    mode: str | None,
    experiment_path: str | None = None,
) -> Callback | None:
    """The callback that shows an experiment's progress, or None at ``verbose=0``."""
    if reporter is not None and not isinstance(reporter, ProgressReporter):
        raise TypeError(
            f"progress_reporter must be a ProgressReporter (CLIReporter, "
            f"JupyterNotebookReporter), not {type(reporter).__name__}"
        )
    if not verbose:
        return None
    return _ProgressCallback(reporter, verbose, metric, mode, experiment_path)


def _resource_line(trials: Iterable[Trial]) -> str:
    used: Counter[str] = Counter()
    for trial in trials:
        if trial.status == Trial.RUNNING:
            used.update(trial.resources)
    total = ember.cluster_resources() if ember.is_initialized() else {}
    names = ["CPU", "GPU", *sorted(set(used) - {"CPU", "GPU"})]
    parts = []
    for name in names:
        if name in total:
            parts.append(f"{_cell(used[name], 0)}/{_cell(total[name], 0)} {name}s")
        elif used[name] or name == "CPU":
            parts.append(f"{_cell(used[name], 0)} {name}s")
    return "Logical resource usage: " + ", ".join(parts)


def _best_trial(trials: Iterable[Trial], metric: str | None, mode: str | None) -> Trial | None:
    """The trial whose latest result is best, when the experiment has a metric and mode."""
    if not metric or not mode:
        return None
    scored = [t for t in trials if _number(t.last_result.get(metric)) is not None]
    if not scored:
        return None
    sign = 1.0 if mode == "max" else -1.0
    return max(scored, key=lambda t: sign * float(t.last_result[metric]))


def _common_parent(trials: list[Trial]) -> str | None:
    folders = [os.path.dirname(t.path) for t in trials if t.path]
    return os.path.commonpath(folders) if folders else None


def _params_of(trial: Trial) -> dict[str, Any]:
    return trial.evaluated_params or trial.config


def _location(result: Mapping[str, Any]) -> str | None:
    if NODE_IP in result and PID in result:
        return f"{result[NODE_IP]}:{result[PID]}"
    return None


def _counts(counts: Counter[str]) -> str:
    ordered = [s for s in _STATUS_ORDER if counts[s]] + sorted(set(counts) - set(_STATUS_ORDER))
    return ", ".join(f"{counts[s]} {s}" for s in ordered)


def _number(value: Any) -> float | None:
    """``value`` as a float if it is a number (a numpy scalar too, a bool not), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if getattr(value, "ndim", None) == 0 and getattr(value, "dtype", None) is not None:
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    return None


def _cell(value: Any, max_length: int) -> str:
    """A table cell: floats to 6 significant digits, long values cut to ``max_length``."""
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif _number(value) is not None and not isinstance(value, int):
        text = f"{float(value):.6g}"
    else:
        text = str(value)
    if max_length and len(text) > max_length:
        text = text[: max_length - 3] + "..."
    return text


def _text_table(header: list[str], rows: list[list[Any]], max_length: int) -> list[str]:
    cells = [[_cell(value, max_length) for value in row] for row in rows]
    numeric = [
        all(_number(row[i]) is not None or row[i] is None for row in rows)
        for i in range(len(header))
    ]
    widths = [max(len(header[i]), *(len(row[i]) for row in cells)) for i in range(len(header))]

    def line(values: list[str]) -> str:
        padded = [
            value.rjust(width) if is_number else value.ljust(width)
            for value, width, is_number in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    dashes = ["-" * (width + 2) for width in widths]
    rule = "+" + "+".join(dashes) + "+"
    return [rule, line(header), "|" + "+".join(dashes) + "|", *map(line, cells), rule]


def _html_table(header: list[str], rows: list[list[Any]], max_length: int) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v, max_length))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
