"""Trial schedulers through the real Tuner: function trainables that report a checkpoint at
every iteration and resume from ``tune.get_checkpoint()``, paused, stopped and cloned by
HyperBand and PBT. Trainables are module-level functions (workers import this module)."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest

from ember import tune
from ember.tune import RunConfig, TuneConfig, Tuner
from ember.tune.schedulers import HyperBandScheduler, PopulationBasedTraining

pytestmark = pytest.mark.ember_only


def counting(config: dict[str, Any]) -> None:
    """Scores ``x * iteration``; its checkpoint holds its iteration and the trial that saved
    it, so that a result says where the trial's model came from."""
    me = tune.get_context().get_trial_id()
    state = {"iteration": 0, "owner": me}
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = json.loads(Path(folder, "state.json").read_text())
    restored_from = state["owner"] if checkpoint is not None else None
    while state["iteration"] < 20:
        state = {"iteration": state["iteration"] + 1, "owner": me}
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "state.json").write_text(json.dumps(state))
            tune.report(
                {
                    "score": config["x"] * state["iteration"],
                    "step": state["iteration"],
                    "restored_from": restored_from,
                },
                checkpoint=tune.Checkpoint.from_directory(folder),
            )


def run(tmp_path: Path, scheduler: Any, xs: list[float]) -> Any:
    results = Tuner(
        counting,
        param_space={"x": tune.grid_search(xs)},
        tune_config=TuneConfig(metric="score", mode="max", scheduler=scheduler),
        run_config=RunConfig(storage_path=str(tmp_path), name="exp", verbose=0),
    ).fit()
    assert results.num_errors == 0
    return results


def history(result: Any) -> list[dict[str, Any]]:
    lines = Path(result.path, "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_hyperband_stops_early_and_pbt_clones_through_the_tuner(ray: Any, tmp_path: Path) -> None:
    check_hyperband(tmp_path / "hyperband")
    check_pbt(tmp_path / "pbt")


def check_hyperband(tmp_path: Path) -> None:
    """max_t=9, eta=3, 9 trials: a bracket of 3 runs to 9; one of 5 pauses at 3 and resumes
    the best 2 to 9; the last trial makes a bracket of its own (the search is finished)."""
    hyperband = HyperBandScheduler(max_t=9, reduction_factor=3)
    results = run(tmp_path, hyperband, [float(x) for x in range(1, 10)])
    reached = {r.config["x"]: r.metrics["training_iteration"] for r in results}
    assert sorted(reached.values()) == [3] * 3 + [9] * 6
    second = [4.0, 5.0, 6.0, 7.0, 8.0]  # the bracket of 5, in the grid's order
    assert sorted(x for x in second if reached[x] == 9) == [7.0, 8.0]
    for result in results:
        steps = [row["step"] for row in history(result)]
        assert steps == list(range(1, len(steps) + 1))  # a resumed trial goes on where it was
        assert [row["training_iteration"] for row in history(result)] == steps
    # A survivor that paused at 3 went on from its own checkpoint once the rung was judged
    # (the trial whose result completed the rung went on without a pause).
    survivors = [history(r) for r in results if r.config["x"] in (7.0, 8.0)]
    assert all(rows[2]["restored_from"] is None for rows in survivors)
    assert all(rows[3]["restored_from"] in (None, rows[3]["trial_id"]) for rows in survivors)
    assert any(rows[3]["restored_from"] == rows[3]["trial_id"] for rows in survivors)


def check_pbt(tmp_path: Path) -> None:
    """A weak trial goes on from a strong one's checkpoint with a neighbour of its value."""
    random.seed(0)
    lrs = [0.1, 0.2, 0.3, 0.4]
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=2,
        hyperparam_mutations={"x": lrs},
        quantile_fraction=0.25,
        resample_probability=0.0,
    )
    results = run(tmp_path, pbt, lrs)
    experiment = tmp_path / "exp"
    exploits = [
        json.loads(line) for line in (experiment / "pbt_global.txt").read_text().splitlines()
    ]
    assert exploits
    for _tag, _donor_tag, _step, _donor_step, donor_config, new_config in exploits:
        # resample_probability=0: the value moves to a neighbour in the list (or stays at an end)
        assert abs(lrs.index(new_config["x"]) - lrs.index(donor_config["x"])) <= 1
    clones = [
        (result, row)
        for result in results
        for row in history(result)
        if row["restored_from"] not in (None, row["trial_id"])
    ]
    assert clones  # a trial went on from another trial's model
    for _result, row in clones:
        assert (experiment / f"pbt_policy_{row['trial_id']}.txt").exists()
        assert row["config"] in [line[5] for line in exploits]  # with the config it was given
    for result in results:
        assert result.metrics["training_iteration"] == 20
