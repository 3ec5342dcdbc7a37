"""ember.tune with real trial actors: the seed's API and today's, checkpoints, failures,
restores, resources and a cluster. Trainables are module-level functions (workers import
this module) or classes defined here."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ember import tune
from ember.tune import Checkpoint, RunConfig, TuneConfig, Tuner
from tests._helpers import wait_until

pytestmark = pytest.mark.ember_only

REPO = Path(__file__).resolve().parents[2]


def quadratic(config: dict[str, Any]) -> None:
    for step in range(1, 6):
        tune.report({"loss": (config["x"] - 3) ** 2 / step, "step": step})


def seed_style(config: dict[str, Any], reporter: Any) -> None:
    """The seed's trainable: it reports through a callback and loops until stopped."""
    i = 0
    while True:
        reporter(timesteps_total=i, mean_accuracy=i ** config["alpha"])
        i += config["beta"]


def run_config(tmp_path: Path, **kwargs: Any) -> RunConfig:
    kwargs.setdefault("verbose", 0)
    kwargs.setdefault("name", "exp")
    return RunConfig(storage_path=str(tmp_path), **kwargs)


def test_tuner_grid_finds_the_best_config_and_writes_ray_layout(ray: Any, tmp_path: Path) -> None:
    tuner = Tuner(
        quadratic,
        param_space={"x": tune.grid_search([1, 2, 3, 4])},
        tune_config=TuneConfig(metric="loss", mode="min"),
        run_config=run_config(tmp_path),
    )
    results = tuner.fit()
    assert len(results) == 4 and results.num_errors == 0
    best = results.get_best_result()
    assert best.config == {"x": 3}
    assert best.metrics["loss"] == 0 and best.metrics["training_iteration"] == 5
    folder = Path(best.path)
    assert folder.parent == tmp_path / "exp"
    lines = (folder / "result.json").read_text().splitlines()
    assert [json.loads(line)["training_iteration"] for line in lines] == [1, 2, 3, 4, 5]
    assert (folder / "progress.csv").read_text().splitlines()[0].count("loss") == 1
    assert json.loads((folder / "params.json").read_text()) == {"x": 3}
    assert (folder / "params.pkl").exists()
    frame = results.get_dataframe()
    assert sorted(frame["config/x"]) == [1, 2, 3, 4]
    assert len(best.metrics_dataframe) == 5
    assert Tuner.can_restore(tmp_path / "exp")


def test_seed_run_experiments_with_a_reporter_and_stop_criteria(ray: Any, tmp_path: Path) -> None:
    tune.register_trainable("my_func", seed_style)
    trials = tune.run_experiments(
        {
            "my_experiment": {
                "run": "my_func",
                "resources": {"cpu": 1, "gpu": 0},
                "stop": {"mean_accuracy": 100, "training_iteration": 2000},
                "config": {
                    "alpha": tune.grid_search([0.2, 0.4, 0.6]),
                    "beta": tune.grid_search([1, 2]),
                },
                "storage_path": str(tmp_path),
            }
        },
        verbose=0,
    )
    assert len(trials) == 6
    assert all(t.status == "TERMINATED" for t in trials)
    for trial in trials:
        reached = trial.last_result["mean_accuracy"] >= 100
        assert reached or trial.last_result["training_iteration"] == 2000
        # Stop criteria are checked inside the trial too: it never runs past them.
        lines = Path(trial.path or "", "result.json").read_text().splitlines()
        assert len(lines) == trial.last_result["training_iteration"]
    fast = next(t for t in trials if t.config == {"alpha": 0.6, "beta": 2})
    assert fast.last_result["mean_accuracy"] >= 100


class Counter(tune.Trainable):
    def setup(self, config: dict[str, Any]) -> None:
        self.total = 0
        self.rate = config["rate"]

    def step(self) -> dict[str, Any]:
        self.total += self.rate
        return {"total": self.total}

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        Path(checkpoint_dir, "total").write_text(str(self.total))

    def load_checkpoint(self, checkpoint: Any) -> None:
        self.total = int(Path(checkpoint, "total").read_text())


@pytest.mark.parametrize(
    ("stop", "kept", "last_total"),
    [
        # The last result (iteration 4) carried a checkpoint: checkpoint_at_end adds none.
        (4, ["checkpoint_000000", "checkpoint_000001"], "8"),
        # Iterations 2 and 4 by frequency, 5 at the end; num_to_keep=2 keeps the last two.
        (5, ["checkpoint_000001", "checkpoint_000002"], "10"),
    ],
)
def test_class_trainable_checkpoints_by_frequency_and_at_end(
    ray: Any, tmp_path: Path, stop: int, kept: list[str], last_total: str
) -> None:
    results = Tuner(
        Counter,
        param_space={"rate": tune.grid_search([1, 2])},
        tune_config=TuneConfig(metric="total", mode="max"),
        run_config=run_config(
            tmp_path,
            stop={"training_iteration": stop},
            checkpoint_config=tune.CheckpointConfig(
                checkpoint_frequency=2, num_to_keep=2, checkpoint_at_end=True
            ),
        ),
    ).fit()
    best = results.get_best_result()
    assert best.config == {"rate": 2} and best.metrics["total"] == 2 * stop
    assert best.checkpoint is not None
    assert Path(best.checkpoint.path, "total").read_text() == last_total
    assert sorted(p.name for p in Path(best.path).glob("checkpoint_*")) == kept


def checkpointing(config: dict[str, Any]) -> None:
    """Counts to 6, saving a checkpoint each step; dies (its process) once at step 3 when
    ``crash`` is set, raises at step 2 when ``fail`` is set."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        start = int(Path(checkpoint.path, "n").read_text())
    for n in range(start + 1, 7):
        if config.get("fail") and n == 2:
            raise ValueError(f"bad config {config}")
        marker = Path(config.get("marker", "/nonexistent"))
        if config.get("crash") and n == 3 and not marker.exists():
            marker.write_text("crashed once")
            os._exit(1)
        folder = tempfile.mkdtemp()
        Path(folder, "n").write_text(str(n))
        tune.report({"n": n, "restored_from": start}, checkpoint=Checkpoint.from_directory(folder))
        shutil.rmtree(folder)  # Tune copied it to storage: the trial's copy can go


def test_a_trial_whose_actor_dies_restarts_from_its_last_checkpoint(
    ray: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "crashed"
    results = Tuner(
        checkpointing,
        param_space={"crash": True, "marker": str(marker)},
        run_config=run_config(tmp_path, failure_config=tune.FailureConfig(max_failures=1)),
    ).fit()
    (result,) = results
    assert marker.exists()
    assert result.error is None
    assert result.metrics["n"] == 6 and result.metrics["restored_from"] == 2
    assert Path(result.checkpoint.path, "n").read_text() == "6"


def test_a_trial_that_raises_is_recorded_and_the_others_go_on(ray: Any, tmp_path: Path) -> None:
    results = Tuner(
        checkpointing,
        param_space={"fail": tune.grid_search([False, True, False])},
        run_config=run_config(tmp_path),
    ).fit()
    assert results.num_errors == 1
    (error,) = results.errors
    assert isinstance(error, ValueError) and "bad config" in str(error)
    failed = next(r for r in results if r.error is not None)
    assert "ValueError: bad config" in Path(failed.path, "error.txt").read_text()
    assert sorted(r.metrics.get("n") for r in results if r.error is None) == [6, 6]


def uses_parameters(config: dict[str, Any], data: Any = None) -> None:
    tune.report({"total": float(data.sum()) * config["k"]})


def test_with_parameters_passes_a_large_object_once(ray: Any, tmp_path: Path) -> None:
    import numpy as np

    data = np.ones(2_000_000)  # 16 MB: through the object store, not in every trial's spec
    results = Tuner(
        tune.with_parameters(uses_parameters, data=data),
        param_space={"k": tune.grid_search([1, 2])},
        run_config=run_config(tmp_path),
    ).fit()
    assert sorted(r.metrics["total"] for r in results) == [2_000_000.0, 4_000_000.0]


def where_am_i(config: dict[str, Any]) -> None:
    import ember

    ctx = tune.get_context()
    tune.report(
        {
            "gpus": len(ember.get_gpu_ids()),
            "node": ember.get_runtime_context().get_node_id(),
            "trial": ctx.get_trial_id(),
            "cpus": ctx.get_trial_resources().get("CPU"),
        }
    )


def test_with_resources_gives_each_trial_its_gpus(start_ember: Any, tmp_path: Path) -> None:
    start_ember(num_cpus=4, num_gpus=2)
    results = Tuner(
        tune.with_resources(where_am_i, {"cpu": 1, "gpu": 1}),
        param_space={"i": tune.grid_search(list(range(3)))},
        run_config=run_config(tmp_path),
    ).fit()
    assert [r.metrics["gpus"] for r in results] == [1, 1, 1]
    assert all(r.metrics["trial"] in r.path for r in results)
    assert all(r.metrics["cpus"] == 1.0 for r in results)


def test_a_trial_asking_more_than_any_node_is_refused(ray: Any, tmp_path: Path) -> None:
    tuner = Tuner(
        tune.with_resources(quadratic, {"cpu": 64}),
        param_space={"x": 1},
        run_config=run_config(tmp_path),
    )
    with pytest.raises(tune.TuneError, match="more than any node"):
        tuner.fit()


def test_trials_spread_over_a_cluster_and_checkpoints_reach_the_driver(
    start_ember: Any, tmp_path: Path
) -> None:
    import ember
    from ember.testing import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.connect()
        results = Tuner(
            where_am_i,
            param_space={"i": tune.grid_search(list(range(4)))},
            tune_config=TuneConfig(reuse_actors=False),
            run_config=run_config(tmp_path),
        ).fit()
        assert len({r.metrics["node"] for r in results}) == 2
        results = Tuner(
            checkpointing,
            param_space={"i": tune.grid_search([0, 1])},
            run_config=run_config(tmp_path, name="ckpt"),
        ).fit()
        for result in results:
            assert Path(result.checkpoint.path, "n").read_text() == "6"
            assert str(tmp_path) in result.checkpoint.path
    finally:
        ember.shutdown()
        cluster.shutdown()


DRIVER = """
import sys, time
sys.path.insert(0, {repo!r})
import ember
from ember import tune
from tests.system.test_tune import slow_counter

ember.init(num_cpus=2)
results = tune.Tuner(
    slow_counter,
    param_space={{"i": tune.grid_search(list(range(4))), "gate": {gate!r}}},
    run_config=tune.RunConfig(storage_path={storage!r}, name="exp", verbose=0),
).fit()
print("FINISHED", len(results), flush=True)
"""


def slow_counter(config: dict[str, Any]) -> None:
    """Counts to 20 with a checkpoint per step, but waits at 10 until ``gate`` exists."""
    import time

    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        start = int(Path(checkpoint.path, "n").read_text())
    for n in range(start + 1, 21):
        while n == 10 and not Path(config["gate"]).exists():
            time.sleep(0.02)
        folder = tempfile.mkdtemp()
        Path(folder, "n").write_text(str(n))
        tune.report({"n": n, "start": start}, checkpoint=Checkpoint.from_directory(folder))
        shutil.rmtree(folder)


def _driver(tmp_path: Path) -> subprocess.Popen[str]:
    script = tmp_path / "driver.py"
    gate = str(tmp_path / "gate")
    script.write_text(
        textwrap.dedent(DRIVER.format(repo=str(REPO), storage=str(tmp_path), gate=gate))
    )
    return subprocess.Popen(
        [sys.executable, str(script)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _two_trials_saved_at_9(tmp_path: Path) -> bool:
    """The saved state has two trials waiting at the gate, with their 9th checkpoint."""
    from ember.tune.execution.tune_controller import load_state

    state = load_state(str(tmp_path / "exp"))
    return state is not None and sum(t.iteration == 9 for t in state["trials"]) == 2


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_an_interrupted_experiment_resumes_with_tuner_restore(
    ray: Any, tmp_path: Path, how: signal.Signals
) -> None:
    proc = _driver(tmp_path)
    try:
        wait_until(lambda: _two_trials_saved_at_9(tmp_path), 60, "a state saved at the gate")
        if how == signal.SIGKILL:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if how == signal.SIGINT:
        assert proc.returncode == 0, output
        assert "Tuner.restore" in output
    assert Tuner.can_restore(tmp_path / "exp")
    (tmp_path / "gate").touch()
    results = Tuner.restore(str(tmp_path / "exp"), trainable=slow_counter).fit()
    assert len(results) == 4 and results.num_errors == 0
    assert all(r.metrics["n"] == 20 for r in results)
    # The two trials that waited at the gate resume from their 9th checkpoint.
    assert sorted(r.metrics["start"] for r in results) == [0, 0, 9, 9]


def node_recorder(config: dict[str, Any]) -> None:
    """Counts to 5 with a checkpoint per step; at step 3 of its first run it writes its node
    id and waits for ``gate``, so that the test can kill its node there."""
    import time

    import ember

    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        start = int(Path(checkpoint.path, "n").read_text())
    node = ember.get_runtime_context().get_node_id()
    for n in range(start + 1, 6):
        if n == 3 and start == 0:
            Path(config["where"]).write_text(node)
            while not Path(config["gate"]).exists():
                time.sleep(0.02)
        folder = tempfile.mkdtemp()
        Path(folder, "n").write_text(str(n))
        tune.report(
            {"n": n, "start": start, "node": node}, checkpoint=Checkpoint.from_directory(folder)
        )


def test_a_trial_whose_node_dies_restarts_on_another_from_its_checkpoint(
    start_ember: Any, tmp_path: Path
) -> None:
    import threading

    import ember
    from ember.testing import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        nodes = [cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1)]
        cluster.connect()
        where, gate = tmp_path / "where", tmp_path / "gate"

        def kill_its_node() -> None:
            wait_until(where.exists, 60, "the trial to reach step 3")
            victim = next(n for n in nodes if n.node_id == where.read_text())
            cluster.remove_node(victim)
            gate.touch()

        killer = threading.Thread(target=kill_its_node)
        killer.start()
        results = Tuner(
            node_recorder,
            param_space={"where": str(where), "gate": str(gate)},
            run_config=run_config(tmp_path, failure_config=tune.FailureConfig(max_failures=2)),
        ).fit()
        killer.join()
        (result,) = results
        assert result.error is None, result.error
        assert result.metrics["n"] == 5 and result.metrics["start"] == 2
        assert result.metrics["node"] != where.read_text()
    finally:
        ember.shutdown()
        cluster.shutdown()


class Hooks(tune.Callback):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.calls.append(("start", trial.config["fail"]))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.calls.append(("result", trial.config["fail"]))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.calls.append(("complete", trial.config["fail"]))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.calls.append(("error", trial.config["fail"]))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.calls.append(("end", str(len(trials))))


def test_callbacks_see_every_trial_event(ray: Any, tmp_path: Path) -> None:
    hooks = Hooks()
    Tuner(
        checkpointing,
        param_space={"fail": tune.grid_search([False, True])},
        tune_config=TuneConfig(max_concurrent_trials=1),
        run_config=run_config(tmp_path, callbacks=[hooks]),
    ).fit()
    assert hooks.calls.count(("start", False)) == 1 and hooks.calls.count(("start", True)) == 1
    assert hooks.calls.count(("result", False)) == 6 and hooks.calls.count(("result", True)) == 1
    assert ("complete", False) in hooks.calls and ("error", True) in hooks.calls
    assert ("complete", True) not in hooks.calls
    assert hooks.calls[-1] == ("end", "2")


def test_the_live_table_and_summary_are_printed(
    ray: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Tuner(
        quadratic,
        param_space={"x": tune.grid_search([1, 3])},
        tune_config=TuneConfig(metric="loss", mode="min"),
        run_config=run_config(tmp_path, verbose=1),
    ).fit()
    out = capsys.readouterr().out
    assert "TERMINATED" in out and "loss" in out
    assert "\x1b[" not in out  # not a terminal: plain text only
    assert str(tmp_path / "exp") in out  # where the results are


def test_tune_run_returns_an_experiment_analysis(ray: Any, tmp_path: Path) -> None:
    analysis = tune.run(
        quadratic,
        config={"x": tune.grid_search([1, 3, 5])},
        metric="loss",
        mode="min",
        storage_path=str(tmp_path),
        name="run",
        verbose=0,
    )
    assert analysis.best_config == {"x": 3}
    assert analysis.best_trial is not None and analysis.best_trial.config == {"x": 3}
    assert analysis.best_result["loss"] == 0
    frame = analysis.dataframe()
    assert sorted(frame["config/x"]) == [1, 3, 5] and "loss" in frame
    assert set(analysis.trial_dataframes) == {t.path for t in analysis.trials}
    best_of_all = analysis.get_best_trial("loss", "min", scope="all")
    assert best_of_all is not None and best_of_all.config == {"x": 3}


def failing(config: dict[str, Any]) -> None:
    raise RuntimeError("always")


def test_tune_run_raises_on_failed_trials_unless_told_not_to(ray: Any, tmp_path: Path) -> None:
    with pytest.raises(tune.TuneError, match="Trials did not complete"):
        tune.run(failing, storage_path=str(tmp_path), name="a", verbose=0)
    analysis = tune.run(
        failing, storage_path=str(tmp_path), name="b", verbose=0, raise_on_failed_trial=False
    )
    assert [t.status for t in analysis.trials] == ["ERROR"]


def smooth(config: dict[str, Any]) -> None:
    tune.report({"loss": (config["x"] - 2.0) ** 2 + (config["y"] + 1.0) ** 2})


@pytest.mark.parametrize("library", ["optuna", "hyperopt"])
def test_model_based_searchers_run_through_the_tuner(
    ray: Any, tmp_path: Path, library: str
) -> None:
    if library == "optuna":
        from ember.tune.search.optuna import OptunaSearch

        searcher: Any = OptunaSearch(seed=1)
    else:
        from ember.tune.search.hyperopt import HyperOptSearch

        searcher = HyperOptSearch(random_state_seed=1, n_initial_points=5)
    results = Tuner(
        smooth,
        param_space={"x": tune.uniform(-5, 5), "y": tune.uniform(-5, 5)},
        tune_config=TuneConfig(
            metric="loss",
            mode="min",
            num_samples=24,
            search_alg=tune.search.ConcurrencyLimiter(searcher, max_concurrent=2),
        ),
        run_config=run_config(tmp_path),
    ).fit()
    assert len(results) == 24 and results.num_errors == 0
    assert len({(r.config["x"], r.config["y"]) for r in results}) == 24
    # The box's mean loss is 17; how close each library gets in 24 trials is its own affair
    # (tests/unit/test_tune_searchers.py checks that both converge).
    assert results.get_best_result().metrics["loss"] < 5.0


def with_defaults(config: dict[str, Any], epochs: int = 3, data: Any = None) -> None:
    for epoch in range(epochs):
        tune.report({"epoch": epoch, "data": data})


def test_a_function_with_defaulted_parameters_is_called_with_the_config(
    ray: Any, tmp_path: Path
) -> None:
    (result,) = Tuner(with_defaults, run_config=run_config(tmp_path)).fit()
    assert result.error is None and result.metrics["epoch"] == 2
    wrapped = tune.with_parameters(tune.with_resources(with_defaults, {"cpu": 2}), data=7)
    (result,) = Tuner(wrapped, run_config=run_config(tmp_path, name="wrapped")).fit()
    assert result.metrics["data"] == 7
    assert tune.get_context().get_trial_id() is None  # outside a trial
    from ember.tune.trainable.util import resources_of

    assert resources_of(wrapped) == {"cpu": 2}


def test_experiment_analysis_reads_an_experiment_from_its_folder(ray: Any, tmp_path: Path) -> None:
    Tuner(
        quadratic,
        param_space={"x": tune.grid_search([2, 3])},
        run_config=run_config(tmp_path),
    ).fit()
    analysis = tune.ExperimentAnalysis(
        str(tmp_path / "exp"), default_metric="loss", default_mode="min"
    )
    assert len(analysis.trials) == 2 and analysis.best_config == {"x": 3}
    with pytest.raises(ValueError, match="holds no experiment"):
        tune.ExperimentAnalysis(str(tmp_path / "nothing"))


def flaky(config: dict[str, Any]) -> None:
    """Counts to 4 with a checkpoint per step; fails at 3 until ``fixed`` exists."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        start = int(Path(checkpoint.path, "n").read_text())
    for n in range(start + 1, 5):
        if n == 3 and not Path(config["fixed"]).exists():
            raise ValueError("not fixed yet")
        folder = tempfile.mkdtemp()
        Path(folder, "n").write_text(str(n))
        tune.report({"n": n, "start": start}, checkpoint=Checkpoint.from_directory(folder))
        shutil.rmtree(folder)


@pytest.mark.parametrize("how", ["resume_errored", "restart_errored"])
def test_restore_resumes_or_restarts_errored_trials(ray: Any, tmp_path: Path, how: str) -> None:
    fixed = tmp_path / "fixed"
    results = Tuner(flaky, param_space={"fixed": str(fixed)}, run_config=run_config(tmp_path)).fit()
    assert results.num_errors == 1
    fixed.touch()
    path = str(tmp_path / "exp")
    assert Tuner.restore(path, trainable=flaky).fit().num_errors == 1  # errored ones stay
    (result,) = Tuner.restore(path, trainable=flaky, **{how: True}).fit()
    assert result.error is None and result.metrics["n"] == 4
    assert result.metrics["start"] == (2 if how == "resume_errored" else 0)


def reports_then_sleeps(config: dict[str, Any]) -> None:
    import time

    tune.report({"x": 1})
    time.sleep(60)  # stopped here, between reports
    tune.report({"x": 2})


def test_a_stopped_trial_stuck_between_reports_is_killed_and_frees_its_cpus(
    ray: Any, tmp_path: Path
) -> None:
    import time

    import ember

    start = time.monotonic()
    results = Tuner(
        reports_then_sleeps,
        param_space={"i": tune.grid_search([0, 1])},
        run_config=run_config(tmp_path, stop=lambda trial_id, result: True),
    ).fit()
    assert [r.metrics["x"] for r in results] == [1, 1]
    assert time.monotonic() - start < 30  # killed after the grace, not after the sleep

    @ember.remote(num_cpus=2)
    def both_cpus() -> str:
        return "ran"

    assert ember.get(both_cpus.remote(), timeout=10) == "ran"


def meets_the_others(config: dict[str, Any]) -> None:
    """Arrives at a barrier of ``n`` trials: it passes only if all of them run at once."""
    import time

    folder = Path(config["barrier"])
    (folder / str(config["i"])).touch()
    deadline = time.monotonic() + 30
    while len(list(folder.iterdir())) < config["n"]:
        if time.monotonic() > deadline:
            raise TimeoutError("the other trials did not run at the same time")
        time.sleep(0.01)
    tune.report({"met": True})


def test_fractional_resources_run_that_many_trials_at_once(
    start_ember: Any, tmp_path: Path
) -> None:
    start_ember(num_cpus=2, num_gpus=1)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    results = Tuner(
        tune.with_resources(meets_the_others, {"cpu": 0.5, "gpu": 0.25}),
        param_space={"i": tune.grid_search(list(range(4))), "n": 4, "barrier": str(barrier)},
        run_config=run_config(tmp_path),
    ).fit()
    assert results.num_errors == 0 and all(r.metrics["met"] for r in results)
