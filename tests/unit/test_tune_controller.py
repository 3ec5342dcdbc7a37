"""The Tune controller's decisions, driven by a fake executor that plays trials as plain
values (no processes): starting within resources, stopping, failures and retries, pausing,
checkpoints, budgets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ember.tune.callback import Callback
from ember.tune.error import TuneError
from ember.tune.execution.tune_controller import ControllerSettings, TuneController, load_state
from ember.tune.experiment.trial import Trial
from ember.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler
from ember.tune.search.search_algorithm import SearchAlgorithm, Suggestion
from ember.tune.trainable.checkpoint import pack
from ember.tune.trainable.session import Event, TrialStart


class ListSearch(SearchAlgorithm):
    """Hands out the given configs in order."""

    def __init__(self, configs: list[dict[str, Any]]) -> None:
        self._configs = list(configs)
        self.completed: list[tuple[str, bool]] = []

    def add_configurations(self, param_space: dict[str, Any], num_samples: int = 1) -> None:
        pass

    def next_trial(self, trial_id: str) -> Suggestion | None:
        if not self._configs:
            self.set_finished()
            return None
        config = self._configs.pop(0)
        return Suggestion(config, dict(config), ",".join(f"{k}={v}" for k, v in config.items()))

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.completed.append((trial_id, error))


class FakeExecutor:
    """Plays each trial as: one result per poll, ``score = x * iteration``, for ``steps``
    iterations; ``fail_at`` makes its code raise at that iteration; ``ckpt`` attaches a
    checkpoint to every result. Holds ``cpus`` trials at once."""

    def __init__(self, tmp: Path, cpus: int = 2) -> None:
        self.cpus = cpus
        self.running: dict[str, dict[str, Any]] = {}
        self.outstanding: dict[str, list[Event] | BaseException] = {}
        self.starts: list[TrialStart] = []
        self.decisions: list[tuple[str, str]] = []
        self.stopped: list[str] = []
        self.released: list[tuple[str, bool]] = []
        self.max_running = 0
        folder = tmp / "ckpt-src"
        folder.mkdir(exist_ok=True)
        (folder / "state.txt").write_text("weights")
        self._ckpt = pack(str(folder))

    def fits_a_node(self, resources: dict[str, float]) -> bool:
        return resources.get("CPU", 0) <= self.cpus

    def can_start(self, resources: dict[str, float]) -> bool:
        return len(self.running) < self.cpus

    def start(self, trial_id: str, resources: dict[str, float], start: TrialStart) -> None:
        self.starts.append(start)
        iteration = int(start.resume_from.get("training_iteration", 0))
        self.running[trial_id] = {"config": start.config, "it": iteration, "stop": False}
        self.max_running = max(self.max_running, len(self.running))
        self.outstanding[trial_id] = self._next(trial_id, "continue")

    def _next(self, trial_id: str, decision: str) -> list[Event]:
        state = self.running[trial_id]
        config = state["config"]
        if decision in ("stop", "pause") or state["stop"]:
            return [] if config.get("stuck") else [Event("stopped", trial_id)]
        if state["it"] >= config.get("steps", 3):
            return [Event("done", trial_id)]
        state["it"] += 1
        if config.get("fail_at") == state["it"]:
            return [Event("error", trial_id, error="Traceback: boom", exception=ValueError("boom"))]
        result = {
            "training_iteration": state["it"],
            "score": config["x"] * state["it"],
            "time_total_s": float(state["it"]),
        }
        return [Event("result", trial_id, result, self._ckpt if config.get("ckpt") else None)]

    def poll(self, trial_id: str, decision: str) -> None:
        self.decisions.append((trial_id, decision))
        self.outstanding[trial_id] = self._next(trial_id, decision)

    def stop(self, trial_id: str, save: bool = False) -> None:
        self.stopped.append(trial_id)
        self.running[trial_id]["stop"] = True

    def release(self, trial_id: str, reusable: bool = True) -> None:
        self.released.append((trial_id, reusable))
        del self.running[trial_id]
        self.outstanding.pop(trial_id, None)

    def wait(self, timeout: float) -> list[tuple[str, list[Any] | BaseException]]:
        news = list(self.outstanding.items())
        self.outstanding.clear()
        return news

    def shutdown(self) -> None:
        self.running.clear()

    def kill_actor(self, trial_id: str) -> None:
        """The trial's actor dies: its outstanding call fails."""
        from ember.exceptions import ActorDiedError

        self.outstanding[trial_id] = ActorDiedError("the actor died")


def make(
    tmp: Path,
    configs: list[dict[str, Any]],
    scheduler: TrialScheduler | None = None,
    clock: Callable[[], float] | None = None,
    **settings: Any,
) -> tuple[TuneController, FakeExecutor, ListSearch]:
    executor = FakeExecutor(tmp)
    search = ListSearch(configs)
    s = ControllerSettings(
        experiment_name="exp", experiment_path=str(tmp / "exp"), trainable_name="f", **settings
    )
    os.makedirs(s.experiment_path, exist_ok=True)
    kwargs = {"clock": clock} if clock is not None else {}
    controller = TuneController(executor, search, scheduler or FIFOScheduler(), s, **kwargs)
    return controller, executor, search


def test_runs_every_trial_to_its_end_within_resources(tmp_path: Path) -> None:
    controller, executor, search = make(tmp_path, [{"x": i} for i in range(5)])
    trials = controller.run()
    assert [t.status for t in trials] == [Trial.TERMINATED] * 5
    assert [t.last_result["score"] for t in trials] == [0, 3, 6, 9, 12]
    assert all(t.last_result["done"] for t in trials)
    assert executor.max_running == 2
    assert sorted(tid for tid, _ in search.completed) == sorted(t.trial_id for t in trials)
    assert all(os.path.isdir(t.path or "") for t in trials)
    assert load_state(str(tmp_path / "exp")) is not None


def test_a_stopper_ends_a_trial_and_later_results_are_ignored(tmp_path: Path) -> None:
    stopper = lambda trial_id, result: result["score"] >= 4
    controller, executor, _ = make(tmp_path, [{"x": 2, "steps": 10}], stopper=stopper)
    (trial,) = controller.run()
    assert trial.status == Trial.TERMINATED
    assert trial.last_result["score"] == 4
    assert ("stop" in {d for _, d in executor.decisions}) or executor.stopped


def test_a_failing_trial_is_retried_from_its_checkpoint(tmp_path: Path) -> None:
    configs = [{"x": 1, "fail_at": 2, "ckpt": True}, {"x": 2}]
    controller, executor, _ = make(tmp_path, configs, max_failures=1)
    first, second = controller.run()
    assert second.status == Trial.TERMINATED
    # The retry restarts from the checkpoint of iteration 1, then fails again at 2: ERROR.
    assert [s.trial_id for s in executor.starts].count(first.trial_id) == 2
    restart = [s for s in executor.starts if s.trial_id == first.trial_id][1]
    assert restart.checkpoint is not None
    assert restart.resume_from["training_iteration"] == 1
    assert first.status == Trial.ERROR
    assert "boom" in (first.error_msg or "")
    assert isinstance(first.error, ValueError)
    assert "boom" in Path(first.path or "", "error.txt").read_text()


def test_an_actor_death_counts_as_a_failure(tmp_path: Path) -> None:
    controller, executor, _ = make(tmp_path, [{"x": 1, "steps": 3}], max_failures=2)
    controller._start_trials()
    (trial_id,) = executor.running
    executor.kill_actor(trial_id)
    controller.step()
    (trial,) = controller.get_trials()
    assert trial.status == Trial.PENDING and trial.num_failures == 1
    while not controller.is_finished():
        controller.step()
    assert trial.status == Trial.TERMINATED


def test_a_metric_the_trainable_never_reports_is_named_at_the_first_result(
    tmp_path: Path,
) -> None:
    controller, _, _ = make(tmp_path, [{"x": 1}], metric="accuracy", mode="max")
    with pytest.raises(TuneError, match="'accuracy'.*reported.*score"):
        controller.run()


class PauseOnce(FIFOScheduler):
    """Pauses each trial at its first result; resumes paused ones when nothing is pending."""

    needs_every_decision = True

    def __init__(self) -> None:
        self.paused: set[str] = set()

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        if trial.trial_id not in self.paused:
            self.paused.add(trial.trial_id)
            return TrialScheduler.PAUSE
        return TrialScheduler.CONTINUE


def test_a_paused_trial_frees_its_slot_and_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    configs = [{"x": i, "ckpt": True} for i in range(3)]
    controller, executor, _ = make(tmp_path, configs, scheduler=PauseOnce())
    trials = controller.run()
    assert [t.status for t in trials] == [Trial.TERMINATED] * 3
    for trial in trials:
        starts = [s for s in executor.starts if s.trial_id == trial.trial_id]
        assert len(starts) == 2
        assert starts[1].resume_from["training_iteration"] == 1
        assert trial.last_result["training_iteration"] == 3


def test_checkpoints_beyond_num_to_keep_are_deleted_keeping_the_best(tmp_path: Path) -> None:
    configs = [{"x": 1, "steps": 5, "ckpt": True}]
    controller, _, _ = make(
        tmp_path,
        configs,
        num_to_keep=2,
        checkpoint_score_attribute="score",
        checkpoint_score_order="min",
    )
    (trial,) = controller.run()
    kept = sorted(p.name for p in Path(trial.path or "").glob("checkpoint_*"))
    # Scores 1..5: the best (lowest) is checkpoint 0, and the latest is always kept.
    assert kept == ["checkpoint_000000", "checkpoint_000004"]
    assert trial.checkpoint is not None and trial.checkpoint.path.endswith("checkpoint_000004")
    assert Path(trial.checkpoint.path, "state.txt").read_text() == "weights"


def test_the_time_budget_ends_the_experiment(tmp_path: Path) -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    configs = [{"x": 1, "steps": 1000} for _ in range(4)]
    controller, executor, _ = make(tmp_path, configs, clock=clock, time_budget_s=5.0)
    trials = controller.run()
    assert all(t.status == Trial.TERMINATED for t in trials)
    assert len(executor.starts) == 2  # no trial was started after the budget ran out
    assert all(t.iteration < 10 for t in trials)


def test_max_concurrent_trials_limits_the_running_trials(tmp_path: Path) -> None:
    controller, executor, _ = make(tmp_path, [{"x": i} for i in range(4)], max_concurrent_trials=1)
    controller.run()
    assert executor.max_running == 1


def test_a_trial_too_big_for_any_node_is_refused_before_it_starts(tmp_path: Path) -> None:
    controller, executor, _ = make(tmp_path, [{"x": 1}], resources=lambda config: {"CPU": 8.0})
    with pytest.raises(TuneError, match="more than any node"):
        controller.run()
    assert executor.starts == []


def test_fail_fast_stops_the_experiment_at_the_first_failed_trial(tmp_path: Path) -> None:
    configs = [{"x": 1, "fail_at": 1}, {"x": 2, "steps": 1000}, {"x": 3}]
    controller, executor, _ = make(tmp_path, configs, fail_fast=True)
    trials = controller.run()
    assert [t.status for t in trials] == [Trial.ERROR, Trial.TERMINATED, Trial.TERMINATED]
    assert trials[1].iteration < 1000
    assert len(executor.starts) == 2  # the third never started

    controller, _, _ = make(tmp_path, configs, fail_fast="raise")
    with pytest.raises(ValueError, match="boom"):
        controller.run()


def test_trial_names_and_folders_from_the_creators(tmp_path: Path) -> None:
    controller, _, _ = make(
        tmp_path,
        [{"x": 7}],
        trial_name_creator=lambda trial: f"x{trial.config['x']}",
        trial_dirname_creator=lambda trial: f"dir-{trial.config['x']}",
    )
    (trial,) = controller.run()
    assert str(trial) == "x7"
    assert trial.path == str(tmp_path / "exp" / "dir-7")


def test_a_stopped_trial_stuck_between_reports_has_its_actor_killed(tmp_path: Path) -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 0.5
        return now[0]

    stopper = lambda trial_id, result: result["score"] >= 2
    controller, executor, _ = make(
        tmp_path, [{"x": 1, "steps": 10, "stuck": True}], clock=clock, stopper=stopper
    )
    (trial,) = controller.run()
    assert trial.status == Trial.TERMINATED and trial.last_result["score"] == 2
    assert executor.released == [(trial.trial_id, False)]  # killed, not pooled


def test_a_failed_call_kills_the_actor_and_an_error_in_the_code_does_not(tmp_path: Path) -> None:
    configs = [{"x": 1, "steps": 3}, {"x": 2, "fail_at": 1}]
    controller, executor, _ = make(tmp_path, configs, max_failures=1)
    controller._start_trials()
    first = controller.get_trials()[0]
    executor.kill_actor(first.trial_id)
    while not controller.is_finished():
        controller.step()
    second = controller.get_trials()[1]
    assert (first.trial_id, False) in executor.released
    assert executor.released.count((second.trial_id, True)) == 2  # failed twice, cleanly


class Starts(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.calls.append("start")

    def on_trial_restore(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self.calls.append("restore")


def test_a_restarted_trial_is_started_then_restored_for_the_callbacks(tmp_path: Path) -> None:
    hooks = Starts()
    configs = [{"x": 1, "fail_at": 2, "ckpt": True}]
    controller, _, _ = make(tmp_path, configs, max_failures=1, callbacks=[hooks])
    controller.run()
    assert hooks.calls == ["start", "start", "restore"]


def test_a_checkpoint_a_trial_will_restore_from_is_not_pruned(tmp_path: Path) -> None:
    controller, _, _ = make(tmp_path, [{"x": 1, "steps": 4, "ckpt": True}], num_to_keep=1)
    controller._start_trials()
    (trial,) = controller.get_trials()
    controller.step()  # iteration 1: checkpoint_000000
    donor = trial.checkpoint
    assert donor is not None
    clone = Trial("f", trial_id="clone")
    clone.restore_from = donor
    clone.status = Trial.TERMINATED  # (not started by this test)
    controller.get_trials().append(clone)
    controller.step()  # iteration 2: checkpoint_000001; 000000 is wanted, so it stays
    assert os.path.isdir(donor.path)


def test_a_missing_checkpoint_falls_back_to_the_newest_kept_beside_it(tmp_path: Path) -> None:
    configs = [{"x": 1, "fail_at": 3, "ckpt": True}]
    controller, executor, _ = make(tmp_path, configs, max_failures=1)
    controller._start_trials()
    (trial,) = controller.get_trials()
    controller.step()
    controller.step()  # two checkpoints; the state names the first, as if saved before a prune
    assert len(trial.checkpoint_history) == 2
    first, second = (c for c, _ in trial.checkpoint_history)
    import shutil

    shutil.rmtree(first.path)
    trial.checkpoint = first
    while not controller.is_finished():
        controller.step()
    restart = [s for s in executor.starts if s.trial_id == trial.trial_id][1]
    assert restart.resume_from["training_iteration"] == 2  # from checkpoint_000001


def test_the_saved_state_holds_configs_with_functions(tmp_path: Path) -> None:
    controller, _, _ = make(tmp_path, [{"x": 1, "creator": lambda cfg: cfg}])
    controller.run()
    state = load_state(str(tmp_path / "exp"))
    assert state is not None
    (trial,) = state["trials"]
    assert trial.config["creator"](5) == 5
