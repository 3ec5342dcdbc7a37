"""The loggers of ember.tune.logger, writing real files in a temporary folder."""

from __future__ import annotations

import csv
import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ember.tune.logger.logger as logger_module
from ember.tune.callback import Callback
from ember.tune.experiment.trial import Trial
from ember.tune.logger import (
    CSVLoggerCallback,
    JsonLoggerCallback,
    LoggerCallback,
    TBXLoggerCallback,
    default_logger_callbacks,
    pretty_print,
)


def make_trial(tmp_path: Path, name: str = "00000", **config: Any) -> Trial:
    trial = Trial("train", config=config, trial_id=name, evaluated_params=dict(config))
    trial.path = str(tmp_path / f"train_{name}")
    os.makedirs(trial.path)
    trial.status = Trial.RUNNING
    return trial


def result(i: int, **metrics: Any) -> dict[str, Any]:
    return {
        "training_iteration": i,
        "time_this_iter_s": 0.5,
        "time_total_s": 0.5 * i,
        "timestamp": 1_700_000_000 + i,
        "pid": 42,
        "node_ip": "127.0.0.1",
        "trial_id": "00000",
        "done": False,
        "config": {"lr": 0.1},
        **metrics,
    }


def run(cb: LoggerCallback, trial: Trial, results: list[dict[str, Any]], end: bool = True) -> None:
    cb.on_trial_start(0, [trial], trial)
    for i, res in enumerate(results):
        cb.on_trial_result(i, [trial], trial, res)
    if end:
        cb.on_trial_complete(len(results), [trial], trial)


def read_events(folder: str) -> list[Any]:
    """Every Event of the trial's event file, checking the TFRecord framing and its CRCs."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    (name,) = [n for n in os.listdir(folder) if n.startswith("events.out.tfevents.")]
    data = Path(folder, name).read_bytes()
    events, at = [], 0
    while at < len(data):
        header = data[at : at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8 : at + 12])[0] == masked_crc32c(header)
        body = data[at + 12 : at + 12 + length]
        assert struct.unpack("<I", data[at + 12 + length : at + 16 + length])[0] == masked_crc32c(
            body
        )
        events.append(Event.FromString(body))
        at += 16 + length
    return events


def test_json_logger_writes_params_and_result_lines(tmp_path: Path) -> None:
    trial = make_trial(tmp_path, lr=0.1, layers=[1, 2])
    cb = JsonLoggerCallback()
    odd = result(1, arr=np.arange(3), f32=np.float32(0.5), i64=np.int64(7), obj=object())
    odd["by_pair"] = {(1, 2): 3}
    run(cb, trial, [odd, result(2, loss=float("nan"))])
    folder = Path(trial.path or "")
    assert json.loads((folder / "params.json").read_text()) == {"lr": 0.1, "layers": [1, 2]}
    assert pickle.loads((folder / "params.pkl").read_bytes()) == {"lr": 0.1, "layers": [1, 2]}
    first, second = [json.loads(line) for line in (folder / "result.json").read_text().splitlines()]
    assert first["arr"] == [0, 1, 2] and first["f32"] == 0.5 and first["i64"] == 7
    assert first["obj"].startswith("<object object") and first["by_pair"] == {"(1, 2)": 3}
    assert first["config"] == {"lr": 0.1}
    assert second["training_iteration"] == 2 and second["loss"] != second["loss"]  # NaN


def test_writes_are_buffered_until_a_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trial = make_trial(tmp_path)
    cb = JsonLoggerCallback()
    run(cb, trial, [result(1)], end=False)
    result_file = Path(trial.path or "", "result.json")
    assert result_file.read_text() == ""
    monkeypatch.setattr(logger_module, "FLUSH_INTERVAL_S", 1e9)
    cb.on_step_end(1, [trial])  # the first step writes out: nothing was written before
    cb.on_trial_result(1, [trial], trial, result(2))
    cb.on_step_end(2, [trial])  # the interval since has not passed: no write
    assert len(result_file.read_text().splitlines()) == 1
    monkeypatch.setattr(logger_module, "FLUSH_INTERVAL_S", 0.0)
    cb.on_step_end(3, [trial])
    assert len(result_file.read_text().splitlines()) == 2


def test_files_close_when_trial_stops_running_and_reopen_to_append(tmp_path: Path) -> None:
    trial = make_trial(tmp_path)
    loggers: list[LoggerCallback] = [JsonLoggerCallback(), CSVLoggerCallback()]
    for cb in loggers:
        run(cb, trial, [result(1, loss=1.0)], end=False)
    trial.status = Trial.PAUSED
    for cb in loggers:
        cb.flush()  # a paused trial's files are written out and closed
    assert len(Path(trial.path or "", "result.json").read_text().splitlines()) == 1
    trial.status = Trial.RUNNING
    for cb in loggers:
        run(cb, trial, [result(2, loss=0.5)])
    lines = Path(trial.path or "", "result.json").read_text().splitlines()
    assert [json.loads(line)["training_iteration"] for line in lines] == [1, 2]
    with open(Path(trial.path or "", "progress.csv"), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "training_iteration" and [row[0] for row in rows[1:]] == ["1", "2"]


def test_csv_header_from_first_result_flattened_without_config(tmp_path: Path) -> None:
    trial = make_trial(tmp_path)
    cb = CSVLoggerCallback()
    run(cb, trial, [result(1, info={"loss": 1.0, "deep": {"x": 2}}), result(2, extra=5)])
    with open(Path(trial.path or "", "progress.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert "config" not in rows[0] and "extra" not in rows[0]
    assert rows[0]["info/loss"] == "1.0" and rows[0]["info/deep/x"] == "2"
    assert rows[1]["training_iteration"] == "2" and rows[1]["info/loss"] == ""


def test_tensorboard_scalars_and_hparams(tmp_path: Path) -> None:
    trial = make_trial(tmp_path, lr=0.1, opt={"name": "sgd"}, sizes=[1, 2])
    cb = TBXLoggerCallback()
    run(
        cb,
        trial,
        [result(1, loss=1.0, info={"acc": np.float32(0.25)}, name="x"), result(2, loss=np.nan)],
    )
    events = read_events(trial.path or "")
    assert events[0].file_version == "brain.Event:2"
    scalars = [(e.step, {v.tag: v.simple_value for v in e.summary.value}) for e in events[1:3]]
    assert scalars[0][0] == 1 and scalars[1][0] == 2
    assert scalars[0][1] == {
        "ray/tune/time_this_iter_s": 0.5,
        "ray/tune/done": 0.0,
        "ray/tune/loss": 1.0,
        "ray/tune/info/acc": 0.25,
    }
    assert "ray/tune/loss" not in scalars[1][1]  # NaN is left out
    plugin_data = b"".join(
        v.metadata.plugin_data.content for e in events[3:] for v in e.summary.value
    )
    assert b"opt/name" in plugin_data and b"ray/tune/time_this_iter_s" in plugin_data


def test_tensorboardx_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"pip install 'ember\[tune\]'"):
        TBXLoggerCallback()


def test_default_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = [type(cb) for cb in default_logger_callbacks()]
    assert kinds == [JsonLoggerCallback, CSVLoggerCallback, TBXLoggerCallback]
    mine = CSVLoggerCallback()
    kinds = [type(cb) for cb in default_logger_callbacks([mine, Callback()])]
    assert kinds == [JsonLoggerCallback, TBXLoggerCallback]
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    kinds = [type(cb) for cb in default_logger_callbacks()]
    assert kinds == [JsonLoggerCallback, CSVLoggerCallback]


def test_experiment_end_closes_everything(tmp_path: Path) -> None:
    trials = [make_trial(tmp_path, str(i)) for i in range(3)]
    cb = TBXLoggerCallback()
    for trial in trials:
        run(cb, trial, [result(1, loss=1.0)], end=False)
    cb.on_experiment_end(trials)
    for trial in trials:
        assert len(read_events(trial.path or "")) == 2  # version and one result, no hparams


def test_pretty_print() -> None:
    text = pretty_print({"b": 1.5, "a": {"x": np.int64(2)}, "config": {"lr": 1}, "none": None})
    assert text == "a:\n  x: 2\nb: 1.5"
    assert pretty_print({"a": 1, "b": 2}, exclude={"b"}) == "a: 1"


def test_importing_the_loggers_loads_no_optional_library() -> None:
    code = (
        "import sys, ember.tune.logger, ember.tune.progress_reporter, ember.tune.stopper; "
        "print([m for m in ('tensorboardX', 'pandas', 'IPython') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
