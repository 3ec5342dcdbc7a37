"""The progress table (ember.tune.progress_reporter), driven with plain Trial objects."""

from __future__ import annotations

import io
from typing import Any

import pytest

from ember.tune.experiment.trial import Trial
from ember.tune.progress_reporter import (
    CLIReporter,
    JupyterNotebookReporter,
    _ProgressCallback,
    progress_callback,
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def make_trials(n: int = 4) -> list[Trial]:
    trials = []
    for i in range(n):
        params = {"lr": 0.1 * (i + 1), "net": {"width": 8 * (i + 1)}}
        trial = Trial("train", config=params, trial_id=f"{i:05d}", evaluated_params=params)
        trial.path = f"/exp/train_{i:05d}"
        trials.append(trial)
    return trials


def report(trial: Trial, iteration: int, **metrics: Any) -> dict[str, Any]:
    result = {
        "training_iteration": iteration,
        "time_total_s": 1.5 * iteration,
        "node_ip": "10.0.0.7",
        "pid": 321,
        "trial_id": trial.trial_id,
        "done": False,
        "config": trial.config,
        **metrics,
    }
    trial.status = Trial.RUNNING
    trial.update_last_result(result)
    return result


def test_plain_blocks_when_not_a_terminal() -> None:
    trials = make_trials()
    report(trials[0], 3, loss=0.5, acc=0.9)
    report(trials[1], 2, loss=0.25, acc=0.8)
    trials[1].status = Trial.TERMINATED
    out = io.StringIO()
    reporter = CLIReporter(max_report_frequency=0, metric="loss", mode="min", file=out)
    assert reporter.should_report(trials)
    reporter.report(trials, False, "Logical resource usage: 1 CPUs")
    reporter.report(trials, True)
    text = out.getvalue()
    assert "\x1b" not in text and text.count("== Status ==") == 2
    lines = text.splitlines()
    assert "Logical resource usage: 1 CPUs" in lines
    assert "Number of trials: 4 (1 RUNNING, 2 PENDING, 1 TERMINATED)" in lines
    assert any(line.startswith("Current best trial: train_00001 with loss=0.25") for line in lines)
    header = next(line for line in lines if line.startswith("| Trial name"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "Trial name", "status", "loc", "lr", "net/width", "iter", "total time (s)", "loss", "acc",
    ]  # fmt: skip
    row = next(line for line in lines if line.startswith("| train_00000"))
    assert [cell.strip() for cell in row.strip("|").split("|")] == [
        "train_00000", "RUNNING", "10.0.0.7:321", "0.1", "8", "3", "4.5", "0.5", "0.9",
    ]  # fmt: skip


def test_redrawn_in_place_on_a_terminal() -> None:
    trials = make_trials(2)
    report(trials[0], 1, loss=1.0)
    out = Terminal()
    reporter = CLIReporter(max_report_frequency=0, file=out)
    reporter.report(trials, False)
    first = out.getvalue()
    drawn = first.count("\n")
    assert "\x1b" not in first
    reporter.write_line("a message")
    reporter.report(trials, False)
    rest = out.getvalue()[len(first) :]
    erase = f"\r\x1b[{drawn}A\x1b[J"
    assert rest.startswith(erase + "a message\n" + first)  # the table stays below the message
    assert rest[len(erase + "a message\n" + first) :].startswith(erase + "== Status ==")


def test_rows_beyond_the_limit_are_counted_and_sorted_by_metric() -> None:
    trials = make_trials(5)
    for i, trial in enumerate(trials):
        report(trial, 1, loss=float(i))
        trial.status = Trial.TERMINATED
    trials[4].status = Trial.RUNNING
    reporter = CLIReporter(max_progress_rows=3, sort_by_metric=True, metric="loss", mode="max")
    header, rows, hidden = reporter.table(trials)
    assert [row[0] for row in rows] == ["train_00004", "train_00003", "train_00002"]
    assert hidden == {Trial.TERMINATED: 2}
    lines = reporter.text_lines(trials)
    assert "... 2 more trials not shown (2 TERMINATED)" in lines


def test_chosen_columns() -> None:
    trials = make_trials(1)
    report(trials[0], 1, loss=1.0, acc=0.5, info={"grad": 3.0})
    reporter = CLIReporter(metric_columns={"acc": "accuracy"}, parameter_columns=["net/width"])
    reporter.add_metric_column("info/grad")
    reporter.add_parameter_column("lr", "learning rate")
    header, rows, _ = reporter.table(trials)
    assert header == [
        "Trial name", "status", "loc", "net/width", "learning rate", "iter", "total time (s)",
        "accuracy", "info/grad",
    ]  # fmt: skip
    assert rows[0][3:] == [8, 0.1, 1, 1.5, 0.5, 3.0]
    with pytest.raises(ValueError, match="already"):
        reporter.add_metric_column("acc")
    with pytest.raises(TypeError, match="not a str"):
        CLIReporter(metric_columns="loss")
    with pytest.raises(ValueError, match="mode"):
        CLIReporter(mode="best")


def test_errors_table_names_the_error_file() -> None:
    trials = make_trials(2)
    trials[1].status = Trial.ERROR
    trials[1].num_failures = 2
    lines = CLIReporter().text_lines(trials)
    assert "Number of errored trials: 1" in lines
    row = next(line for line in lines if line.startswith("| train_00001") and "error" in line)
    assert [cell.strip() for cell in row.strip("|").split("|")] == [
        "train_00001", "2", "/exp/train_00001/error.txt",
    ]  # fmt: skip


def run_experiment(verbose: int, out: io.StringIO) -> None:
    trials = make_trials(3)
    reporter = CLIReporter(max_report_frequency=0, file=out)
    callback = _ProgressCallback(reporter, verbose=verbose, metric="loss", mode="min")
    callback.setup(total_num_samples=3)
    for i, trial in enumerate(trials):
        result = report(trial, 1, loss=1.0 / (i + 1))
        callback.on_trial_result(i, trials, trial, result)
        callback.on_step_end(i, trials)
    trials[0].status = Trial.TERMINATED
    callback.on_trial_complete(3, trials, trials[0])
    trials[1].status = Trial.ERROR
    callback.on_trial_error(3, trials, trials[1])
    trials[2].status = Trial.TERMINATED
    callback.on_experiment_end(trials)


def test_verbose_levels() -> None:
    silent = io.StringIO()
    run_experiment(0, silent)
    assert silent.getvalue() == ""

    table_only = io.StringIO()
    run_experiment(1, table_only)
    text = table_only.getvalue()
    assert "== Status ==" in text and "reported" not in text and "Result for" not in text
    assert "Trial train_00001 errored; see /exp/train_00001/error.txt" in text
    summary = text.splitlines()[-3:]
    assert summary[0].startswith("Experiment finished in ")
    assert summary[0].endswith("3 trials (2 TERMINATED, 1 ERROR)")
    assert summary[1].startswith("Best trial: train_00002 with loss=0.333333, config={'lr': 0.3")
    assert summary[2] == "Results are in /exp"

    lines = io.StringIO()
    run_experiment(2, lines)
    assert "Trial train_00000 reported loss=1 with parameters={'lr': 0.1" in lines.getvalue()
    assert "Trial train_00000 completed." in lines.getvalue()

    detailed = io.StringIO()
    run_experiment(3, detailed)
    assert "Result for train_00000:\n  done: false\n  loss: 1.0\n" in detailed.getvalue()

    with pytest.raises(ValueError, match="verbose"):
        _ProgressCallback(CLIReporter(), verbose=4)


def test_notebook_html() -> None:
    trials = make_trials(2)
    report(trials[0], 1, loss=1.0, note="<b>")
    html = JupyterNotebookReporter(metric="loss", mode="min").html(trials)
    assert html.count("<tr>") == 3 and "<th>loss</th>" in html
    assert "&lt;b&gt;" not in html  # strings are not inferred as metric columns
    assert "train_00000" in html and "Current best trial" in html


def test_progress_callback_for_the_tuner() -> None:
    assert progress_callback(None, 0, "loss", "min", "/exp") is None
    assert isinstance(progress_callback(CLIReporter(), 1, "loss", "min", "/exp"), _ProgressCallback)
    with pytest.raises(TypeError, match="ProgressReporter"):
        progress_callback("table", 1, None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metric or mode"):
        progress_callback(CLIReporter(metric="acc"), 1, "loss", "min")
