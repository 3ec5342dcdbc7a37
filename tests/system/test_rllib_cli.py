"""``ember rllib train`` and ``ember rllib evaluate`` run for real, as subprocesses that start
their own Ember; mistakes in the arguments are reported before anything starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

import ember
from ember.cli.main import main

pytestmark = pytest.mark.ember_only

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

CLI = [sys.executable, "-m", "ember.cli.main", "rllib"]


def _run(args: list[str], tmp: Path, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """Run the command; on a timeout end it and everything it started, then fail."""
    env = dict(os.environ, TMPDIR=str(tmp))
    proc = subprocess.Popen(
        CLI + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        tree = psutil.Process(proc.pid).children(recursive=True)
        for p in [*tree, psutil.Process(proc.pid)]:
            p.kill()
        out, _ = proc.communicate()
        pytest.fail(f"ember rllib {' '.join(args)} did not finish:\n{out}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def _left_behind(tmp: Path) -> list[psutil.Process]:
    """Processes that a command run with ``TMPDIR=tmp`` started and left running."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("TMPDIR") == str(tmp):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_train_shows_tunes_table_and_the_checkpoint_evaluates(tmp_path: Path) -> None:
    trained = _run(
        [
            "train",
            "--algo",
            "PPO",
            "--env",
            "CartPole-v1",
            "--stop",
            '{"training_iteration": 2}',
            "--config",
            '{"num_env_runners": 1, "train_batch_size": 500, "minibatch_size": 100}',
            "--seed",
            "3",
            "--checkpoint-dir",
            str(tmp_path / "results"),
            "--name",
            "cli",
            "--num-cpus",
            "2",
        ],
        tmp_path,
    )
    assert trained.returncode == 0, trained.stdout
    assert "| Trial name" in trained.stdout and "reward" in trained.stdout
    assert "TERMINATED" in trained.stdout
    found = re.search(r"^Checkpoint: (\S+)$", trained.stdout, re.MULTILINE)
    assert found, trained.stdout
    checkpoint = Path(found.group(1))
    assert checkpoint.is_relative_to(tmp_path / "results" / "cli")

    # The experiment's folder stands for its latest checkpoint.
    played = _run(
        ["evaluate", str(tmp_path / "results" / "cli"), "--episodes", "2", "--seed", "0"],
        tmp_path,
    )
    assert played.returncode == 0, played.stdout
    assert re.search(r"^episode 2: return \d+\.\d, \d+ steps$", played.stdout, re.MULTILINE)
    assert "mean return over 2 episodes" in played.stdout
    assert not _left_behind(tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--algo", "PPOO", "--env", "CartPole-v1"], "did you mean 'PPO'?"),
        (["train", "--algo", "PPO", "--env", "CartPol-v1"], "did you mean 'CartPole-v1'?"),
        (
            ["train", "--algo", "PPO", "--env", "CartPole-v1", "--config", '{"lrr": 0.1}'],
            "did you mean 'lr'?",
        ),
        (["train", "--algo", "PPO"], "no environment: pass --env"),
        (["evaluate", "/nonexistent/checkpoint"], "no such folder"),
    ],
)
def test_mistakes_are_named_before_anything_starts(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rllib", *args]) == 1
    assert message in capsys.readouterr().err
    assert not ember.is_initialized()  # refused before Ember started


def test_evaluate_names_a_folder_without_a_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rllib", "evaluate", str(tmp_path)]) == 1
    assert "holds no algorithm checkpoint" in capsys.readouterr().err


def test_bad_json_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["rllib", "train", "--algo", "PPO", "--env", "CartPole-v1", "--stop", "{oops"])
    assert exit.value.code == 2
    assert "--stop is not valid JSON" in capsys.readouterr().err
