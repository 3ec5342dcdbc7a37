"""The trial schedulers of ember.tune with plain values: a fake controller (``FakeContext``)
records what a scheduler asks of it, and the benchmark's simulator runs whole experiments."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import pytest

from ember.tune.experiment.trial import Trial
from ember.tune.schedulers import (
    ASHAScheduler,
    AsyncHyperBandScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
    PopulationBasedTrainingReplay,
    TrialScheduler,
    create_scheduler,
)
from ember.tune.schedulers.pbt import explore, load_policy
from ember.tune.search.sample import sample_from, uniform
from tests._helpers import load_benchmark

CONTINUE, PAUSE, STOP, NOOP = "CONTINUE", "PAUSE", "STOP", "NOOP"


bench = load_benchmark("tune_schedulers.py")


class FakeContext:
    """The controller as a scheduler sees it: trials and a log of what was asked."""

    def __init__(self, count: int = 0, configs: list[dict[str, Any]] | None = None) -> None:
        configs = configs if configs is not None else [{} for _ in range(count)]
        self.trials = [
            Trial("f", config=c, trial_id=f"t{i}", experiment_tag=str(i))
            for i, c in enumerate(configs)
        ]
        self.calls: list[tuple[str, str]] = []
        self.finished = True  # whether the search made every trial

    def get_trials(self) -> list[Trial]:
        return list(self.trials)

    def search_finished(self) -> bool:
        return self.finished

    def stop_trial(self, trial: Trial) -> None:
        self.calls.append(("stop", trial.trial_id))
        trial.set_status(Trial.TERMINATED)

    def pause_trial(self, trial: Trial, should_checkpoint: bool = True) -> None:
        self.calls.append(("pause" if should_checkpoint else "pause-no-checkpoint", trial.trial_id))
        trial.set_status(Trial.PAUSED)

    def resume_trial(self, trial: Trial) -> None:
        self.calls.append(("resume", trial.trial_id))
        trial.set_status(Trial.PENDING)

    def request_checkpoint(self, trial: Trial) -> None:
        self.calls.append(("checkpoint", trial.trial_id))

    def made(self, what: str) -> list[str]:
        return [trial_id for call, trial_id in self.calls if call == what]


def result(t: float, value: float, metric: str = "acc", time_attr: str = "training_iteration"):
    return {time_attr: t, metric: value}


def add_all(scheduler: TrialScheduler, ctx: FakeContext) -> None:
    for trial in ctx.trials:
        scheduler.on_trial_add(ctx, trial)


def report(scheduler: TrialScheduler, ctx: FakeContext, trial: Trial, res: dict[str, Any]) -> str:
    """One result as the controller handles it: decide, record, apply the decision."""
    trial.set_status(Trial.RUNNING)
    decision = scheduler.on_trial_result(ctx, trial, res)
    trial.update_last_result(res)
    if decision == PAUSE:
        trial.set_status(Trial.PAUSED)
    elif decision == STOP:
        scheduler.on_trial_complete(ctx, trial, res)
        trial.set_status(Trial.TERMINATED)
    return decision


# ----------------------------------------------------------------------------- common rules

ALL = [
    lambda **kw: AsyncHyperBandScheduler(**kw),
    lambda **kw: HyperBandScheduler(**kw),
    lambda **kw: MedianStoppingRule(**kw),
    lambda **kw: PopulationBasedTraining(hyperparam_mutations={"lr": [1, 2]}, **kw),
]


@pytest.mark.parametrize("make", ALL)
def test_metric_and_mode_come_from_the_experiment_or_a_clear_error(make: Any) -> None:
    scheduler = make()
    assert scheduler.needs_every_decision
    assert isinstance(scheduler, FIFOScheduler)  # as in Ray
    with pytest.raises(ValueError, match="set `metric` and `mode` in tune.TuneConfig"):
        scheduler.set_search_properties(None, None)
    with pytest.raises(ValueError, match="set `metric` and `mode`"):
        scheduler.on_trial_add(FakeContext(1), FakeContext(1).trials[0])
    scheduler = make()
    assert scheduler.set_search_properties("acc", "max")
    assert (scheduler.metric, scheduler.mode) == ("acc", "max")
    own = make(metric="loss", mode="min")
    assert not own.set_search_properties("acc", "max")  # a conflict: the controller says so
    assert own.set_search_properties(None, None)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', not 'maximize'"):
        make(metric="acc", mode="maximize")


@pytest.mark.parametrize("make", ALL)
def test_a_result_without_the_metric_names_what_was_reported(make: Any) -> None:
    scheduler = make(metric="acc", mode="max", time_attr="training_iteration")
    ctx = FakeContext(1)
    add_all(scheduler, ctx)
    with pytest.raises(ValueError, match=r"metric 'acc'.*reported only \['accuracy', 'loss'\]"):
        scheduler.on_trial_result(
            ctx, ctx.trials[0], {"training_iteration": 1, "accuracy": 1, "loss": 2}
        )
    with pytest.raises(ValueError, match="time_attr 'training_iteration'"):
        scheduler.on_trial_result(ctx, ctx.trials[0], {"acc": 1.0})
    with pytest.raises(ValueError, match="compares numbers, but the result has .*acc='high'"):
        scheduler.on_trial_result(ctx, ctx.trials[0], {"training_iteration": 1, "acc": "high"})


def test_create_scheduler_by_ray_names() -> None:
    assert type(create_scheduler("asha", metric="a", mode="max")) is AsyncHyperBandScheduler
    assert type(create_scheduler("hyperband")) is HyperBandScheduler
    assert type(create_scheduler("fifo")) is FIFOScheduler
    assert ASHAScheduler is AsyncHyperBandScheduler
    with pytest.raises(ValueError, match="Unknown scheduler 'ashaa'"):
        create_scheduler("ashaa")
    with pytest.raises(ValueError, match="unexpected keyword argument 'grace'.*grace_period"):
        create_scheduler("asha", grace=3)


# ----------------------------------------------------------------------------- ASHA


def test_asha_stops_a_trial_below_the_rung_quantile() -> None:
    asha = ASHAScheduler(metric="acc", mode="max", max_t=81, grace_period=1, reduction_factor=3)
    ctx = FakeContext(8)
    add_all(asha, ctx)
    for i, value in enumerate([1, 2, 3, 4, 5, 6, 7]):  # each better than the others so far
        assert asha.on_trial_result(ctx, ctx.trials[i], result(1, value)) == CONTINUE
    # The 2/3 quantile of 1..7 is 5: 4.5 is below it.
    assert asha.on_trial_result(ctx, ctx.trials[7], result(1, 4.5)) == STOP
    # A trial is judged once per rung: between rungs it goes on.
    assert asha.on_trial_result(ctx, ctx.trials[0], result(2, 0)) == CONTINUE
    # At the next rung (3) it is compared with those recorded there only.
    assert asha.on_trial_result(ctx, ctx.trials[6], result(3, 7)) == CONTINUE
    assert asha.on_trial_result(ctx, ctx.trials[5], result(3, 6)) == STOP


def test_asha_successive_halving_keeps_the_best_in_min_mode() -> None:
    asha = ASHAScheduler(metric="loss", mode="min", max_t=9, grace_period=1, reduction_factor=3)
    ctx = FakeContext(6)
    add_all(asha, ctx)
    losses = {0: 1.0, 1: 3.0, 2: 0.5, 3: 4.0, 4: 5.0, 5: 0.1}
    finished_at = {}
    for i, loss in losses.items():  # one trial after the other
        for t in range(1, 10):
            if report(asha, ctx, ctx.trials[i], result(t, loss, "loss")) == STOP:
                finished_at[i] = t
                break
    assert finished_at == {0: 9, 1: 1, 2: 9, 3: 1, 4: 1, 5: 9}


def test_asha_max_t_and_stop_last_trials() -> None:
    ctx = FakeContext(1)
    asha = ASHAScheduler(metric="acc", mode="max", max_t=4, grace_period=1, reduction_factor=2)
    add_all(asha, ctx)
    assert asha.on_trial_result(ctx, ctx.trials[0], result(4, 1)) == STOP
    asha = ASHAScheduler(metric="acc", mode="max", max_t=4, grace_period=1, stop_last_trials=False)
    add_all(asha, ctx)
    assert asha.on_trial_result(ctx, ctx.trials[0], result(8, 1)) == CONTINUE


def test_asha_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="grace_period .* must not exceed max_t"):
        ASHAScheduler(max_t=3, grace_period=5)
    with pytest.raises(ValueError, match="reduction_factor must be greater than 1"):
        ASHAScheduler(reduction_factor=1)
    with pytest.raises(ValueError, match="brackets must be at least 1"):
        ASHAScheduler(brackets=0)


def test_asha_state_survives_a_restore() -> None:
    ctx = FakeContext(3)
    asha = ASHAScheduler(metric="acc", mode="max", brackets=2)
    add_all(asha, ctx)
    for i in range(2):
        asha.on_trial_result(ctx, ctx.trials[i], result(1, 10 + i))
    again = ASHAScheduler(metric="acc", mode="max", brackets=2)
    again.set_state(json.loads(json.dumps(asha.get_state())))
    add_all(again, ctx)
    assert again.get_state() == json.loads(json.dumps(asha.get_state()))


# ----------------------------------------------------------------------------- HyperBand


def hyperband(count: int) -> tuple[HyperBandScheduler, FakeContext]:
    """max_t=9, eta=3: brackets of 3 trials (milestone 9), 5 (3 then 9) and 9 (1, 3, 9)."""
    scheduler = HyperBandScheduler(metric="acc", mode="max", max_t=9, reduction_factor=3)
    ctx = FakeContext(count)
    add_all(scheduler, ctx)
    return scheduler, ctx


def test_hyperband_pauses_at_the_milestone_then_resumes_the_best_and_stops_the_rest() -> None:
    hb, ctx = hyperband(8)
    second = ctx.trials[3:8]  # the bracket of 5: milestone 3, keeps ceil(5/3) = 2
    scores = [5, 1, 4, 2, 3]
    for trial, score in zip(second[:4], scores[:4], strict=True):
        assert report(hb, ctx, trial, result(1, score)) == CONTINUE
        assert report(hb, ctx, trial, result(3, score)) == PAUSE
    assert report(hb, ctx, second[4], result(3, scores[4])) == STOP  # 3 is third
    assert sorted(ctx.made("resume")) == ["t3", "t5"]  # scores 5 and 4
    assert sorted(ctx.made("stop")) == ["t4", "t6"]
    # The survivors go on to the last milestone, max_t, and stop there.
    assert report(hb, ctx, ctx.trials[3], result(6, 5)) == CONTINUE
    assert report(hb, ctx, ctx.trials[3], result(9, 5)) == STOP


def test_hyperband_never_waits_for_a_trial_that_failed_or_ended() -> None:
    hb, ctx = hyperband(8)
    second = ctx.trials[3:8]
    for trial, score in zip(second[:3], [5, 1, 4], strict=True):
        assert report(hb, ctx, trial, result(3, score)) == PAUSE
    second[3].set_status(Trial.ERROR)
    hb.on_trial_error(ctx, second[3])
    assert ctx.calls == []  # the fifth trial has yet to reach the milestone
    hb.on_trial_complete(ctx, second[4], result(2, 9))  # ends early (its own stop criterion)
    second[4].set_status(Trial.TERMINATED)
    assert sorted(ctx.made("resume")) == ["t3", "t5"]
    assert ctx.made("stop") == ["t4"]


def test_hyperband_chooses_pending_trials_not_waiting_ones() -> None:
    hb, ctx = hyperband(8)
    assert hb.choose_trial_to_run(ctx) is ctx.trials[0]
    for trial in ctx.trials[:3]:
        report(hb, ctx, trial, result(9, 1))  # the first bracket runs to the end
    chosen = hb.choose_trial_to_run(ctx)
    assert chosen is ctx.trials[3]
    assert report(hb, ctx, chosen, result(3, 1)) == PAUSE
    assert hb.choose_trial_to_run(ctx) is ctx.trials[4]


# Trials made ahead as the controller makes those of a grid or random search, of a model-based
# searcher, or one at a time.
AHEAD = [(1000, 64), (16, 64), (1, 1)]


@pytest.mark.parametrize("ahead", AHEAD)
@pytest.mark.parametrize("seed", range(3))
def test_hyperband_runs_a_whole_experiment_with_failures_to_the_end(
    seed: int, ahead: tuple[int, int]
) -> None:
    rng = random.Random(seed)
    configs = bench.grid_configs()
    failing = {f"{i:05d}": rng.randint(1, 20) for i in rng.sample(range(81), 15)}
    sim = bench.Simulation(
        HyperBandScheduler(metric="accuracy", mode="max", max_t=27),
        configs,
        initial=lambda config: None,
        step=lambda state, config, iteration: None,
        metrics=lambda state, config, iteration: {"accuracy": bench.grid_curve(config, iteration)},
        max_t=100,
        concurrency=3,
        fail_at=failing,
        max_pending=ahead[0],
        per_round=ahead[1],
    )
    report_ = sim.run()
    assert report_.stuck == []
    assert all(t.last_result.get("training_iteration", 0) <= 27 for t in report_.trials)


@pytest.mark.parametrize("max_pending", [1000, 16, 1])
def test_hyperband_judges_full_brackets_whether_trials_come_at_once_or_a_few_at_a_time(
    max_pending: int,
) -> None:
    """81 trials, max_t=81, eta=3: brackets of 5 trials (run to 81), 8 (to 27, then 3 to 81),
    15 (9, 5 to 27, 2 to 81), 34 (3, 12 to 9, 4 to 27, 2 to 81) and the last 19 of the 81 its
    bracket could take (1, 7 to 3, 3 to 9, 1 to 27 and 81): the same work either way."""
    report_, best = bench.simulate_grid(
        HyperBandScheduler(metric="accuracy", mode="max", max_t=81), max_pending=max_pending
    )
    assert report_.stuck == []
    assert best == bench.grid_best_config()
    reached = sorted(t.last_result["training_iteration"] for t in report_.trials)
    assert reached.count(81) == 5 + 3 + 2 + 2 + 1
    assert report_.iterations == 405 + (216 + 162) + (135 + 90 + 108) + (102 + 72 + 72 + 108) + (
        19 + 14 + 18 + 18 + 54
    )


def test_hyperband_state_survives_a_restore() -> None:
    hb, ctx = hyperband(8)
    for trial, score in zip(ctx.trials[3:6], [5, 1, 4], strict=True):
        report(hb, ctx, trial, result(3, score))
    # Tuner.restore: the trials come back as new objects, unfinished ones PENDING, and are not
    # added again; the last saved state still counts t6, which had failed meanwhile.
    state = pickle.loads(pickle.dumps(hb.get_state()))
    ctx.trials = pickle.loads(pickle.dumps(ctx.trials))
    for trial in ctx.trials:
        trial.set_status(Trial.PENDING)
    ctx.trials[6].set_status(Trial.ERROR)
    again = HyperBandScheduler(metric="acc", mode="max", max_t=9, reduction_factor=3)
    again.set_state(state)
    assert again.choose_trial_to_run(ctx) is ctx.trials[0]
    assert report(again, ctx, ctx.trials[7], result(3, 2)) == STOP  # third of the four left
    assert ctx.made("stop") == ["t4"]
    assert report(again, ctx, ctx.trials[3], result(3, 5)) == CONTINUE  # on to 9


# ----------------------------------------------------------------------------- median rule


def median_rule(**kw: Any) -> MedianStoppingRule:
    options: dict[str, Any] = dict(
        time_attr="training_iteration", metric="acc", mode="max", grace_period=2
    )
    options.update(kw)
    return MedianStoppingRule(**options)


def test_median_rule_stops_a_trial_worse_than_the_median() -> None:
    rule, ctx = median_rule(), FakeContext(5)
    for trial in ctx.trials:
        trial.set_status(Trial.RUNNING)
    for i, value in enumerate([1.0, 2.0, 3.0]):
        for t in (1, 2, 3):
            assert rule.on_trial_result(ctx, ctx.trials[i], result(t, value)) == CONTINUE
    # Within the grace period nothing is judged.
    assert rule.on_trial_result(ctx, ctx.trials[3], result(1, 0.0)) == CONTINUE
    # Best 1.5 < median of running means (1, 2, 3) = 2: stop.
    assert rule.on_trial_result(ctx, ctx.trials[3], result(2, 1.5)) == STOP
    assert rule.on_trial_result(ctx, ctx.trials[4], result(2, 2.5)) == CONTINUE


def test_median_rule_in_min_mode_and_soft_stop() -> None:
    rule, ctx = median_rule(mode="min", metric="loss", hard_stop=False), FakeContext(4)
    for i, value in enumerate([1.0, 2.0, 3.0]):
        rule.on_trial_result(ctx, ctx.trials[i], result(2, value, "loss"))
    assert rule.on_trial_result(ctx, ctx.trials[3], result(2, 2.5, "loss")) == PAUSE
    assert rule.on_trial_result(ctx, ctx.trials[3], result(3, 9.0, "loss")) == CONTINUE


def test_median_rule_yields_while_it_has_too_few_samples() -> None:
    rule, ctx = median_rule(), FakeContext(2)
    ctx.trials[0].set_status(Trial.RUNNING)
    ctx.trials[1].set_status(Trial.RUNNING)
    assert rule.on_trial_result(ctx, ctx.trials[0], result(2, 1.0)) == CONTINUE  # none waits
    ctx.trials[1].set_status(Trial.PENDING)
    assert rule.on_trial_result(ctx, ctx.trials[0], result(3, 1.0)) == PAUSE
    rule = median_rule(min_time_slice=5)
    assert rule.on_trial_result(ctx, ctx.trials[0], result(3, 1.0)) == PAUSE
    assert rule.on_trial_result(ctx, ctx.trials[0], result(4, 1.0)) == CONTINUE


# ----------------------------------------------------------------------------- PBT


def test_pbt_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="needs `hyperparam_mutations`"):
        PopulationBasedTraining()
    with pytest.raises(ValueError, match="perturbation_interval must be positive"):
        PopulationBasedTraining(perturbation_interval=0, hyperparam_mutations={"a": [1]})
    with pytest.raises(ValueError, match="quantile_fraction must be between 0 and 0.5"):
        PopulationBasedTraining(quantile_fraction=0.6, hyperparam_mutations={"a": [1]})
    with pytest.raises(ValueError, match=r"hyperparam_mutations\['opt.name'\] is a str"):
        PopulationBasedTraining(hyperparam_mutations={"opt": {"name": "adam"}})
    with pytest.raises(ValueError, match=r"is a tune.sample_from\(...\), which PBT cannot"):
        PopulationBasedTraining(hyperparam_mutations={"a": sample_from(lambda spec: 1)})
    with pytest.raises(ValueError, match="is an empty list"):
        PopulationBasedTraining(hyperparam_mutations={"a": []})
    PopulationBasedTraining(custom_explore_fn=lambda c: c)


def test_explore_mutates_each_kind_of_value() -> None:
    random.seed(0)
    config = {"a": 2, "b": 1.0, "n": 10, "c": 0.1, "nested": {"d": "x"}, "fixed": 7}
    mutations = {
        "a": [1, 2, 3],
        "b": lambda: 99.0,
        "n": lambda: 3,
        "c": uniform(0.4, 0.6),
        "nested": {"d": ("x", "y")},
    }
    new, ops = explore(config, mutations, 0.0, (2.0,), None)
    assert new["a"] in (1, 3) and ops["a"].startswith("shift")
    assert (new["b"], new["n"], new["c"], ops["b"]) == (2.0, 20, 0.2, "* 2.0")
    assert new["nested"] == {"d": "y"} or ops["nested"]["d"] == "shift left (noop)"
    assert new["fixed"] == 7 and config["a"] == 2  # the original is left alone
    new, ops = explore(config, mutations, 1.0, (2.0,), lambda c: {**c, "extra": 1})
    assert (new["b"], new["n"], ops["c"]) == (99.0, 3, "resample")
    assert 0.4 <= new["c"] <= 0.6
    assert new["extra"] == 1
    new, _ = explore({"a": 7}, {"a": [1, 2]}, 0.0, (2.0,), None)  # not in the list: resample
    assert new["a"] in (1, 2)


def pbt_population(count: int = 4, **kw: Any) -> tuple[PopulationBasedTraining, FakeContext]:
    options: dict[str, Any] = dict(
        time_attr="training_iteration",
        metric="acc",
        mode="max",
        perturbation_interval=2,
        hyperparam_mutations={"lr": [0.1, 0.2, 0.3, 0.4]},
        resample_probability=0.0,
    )
    options.update(kw)
    pbt = PopulationBasedTraining(**options)
    ctx = FakeContext(configs=[{"lr": 0.1 * (i + 1), "other": i} for i in range(count)])
    add_all(pbt, ctx)
    for trial in ctx.trials:
        trial.set_status(Trial.RUNNING)
    return pbt, ctx


def test_pbt_bottom_trial_exploits_a_top_trial(tmp_path: Path) -> None:
    pbt, ctx = pbt_population()
    for trial in ctx.trials:
        trial.path = str(tmp_path / f"f_{trial.trial_id}")
    scores = [10.0, 1.0, 5.0, 7.0]  # t0 is on top, t1 at the bottom (one each of 4)
    for i in (2, 3, 0):  # each the best so far when it reaches the interval
        ctx.trials[i].checkpoint = f"ckpt-{i}"  # type: ignore[assignment]
        assert pbt.on_trial_result(ctx, ctx.trials[i], result(1, scores[i])) == CONTINUE
        assert pbt.on_trial_result(ctx, ctx.trials[i], result(2, scores[i])) == CONTINUE
    assert ctx.made("checkpoint") == ["t3", "t0"]
    bottom = ctx.trials[1]
    assert pbt.on_trial_result(ctx, bottom, result(2, scores[1])) == NOOP
    assert ctx.made("pause-no-checkpoint") == ["t1"]
    assert bottom.restore_from == "ckpt-0"
    assert bottom.config["other"] == 0 and bottom.config["lr"] in (0.1, 0.2)
    assert bottom.experiment_tag.startswith("1@perturbed[lr=")
    policy = [
        json.loads(line) for line in (tmp_path / "pbt_policy_t1.txt").read_text().splitlines()
    ]
    assert policy == [["1", "0", 2, 2, {"lr": 0.1, "other": 0}, bottom.config]]
    assert (tmp_path / "pbt_global.txt").read_text().strip() == json.dumps(policy[0])


def test_pbt_skips_the_exploit_when_the_donor_has_no_checkpoint() -> None:
    pbt, ctx = pbt_population(2)
    pbt.on_trial_result(ctx, ctx.trials[0], result(2, 10.0))
    assert pbt.on_trial_result(ctx, ctx.trials[1], result(2, 1.0)) == CONTINUE
    assert ctx.trials[1].config["lr"] == pytest.approx(0.2) and ctx.trials[1].restore_from is None


def test_pbt_quantiles_and_time_sharing() -> None:
    pbt, ctx = pbt_population(8, quantile_fraction=0.25, burn_in_period=4)
    for trial in ctx.trials:
        trial.checkpoint = f"ckpt-{trial.trial_id}"  # type: ignore[assignment]
    assert pbt.on_trial_result(ctx, ctx.trials[0], result(2, 0.0)) == CONTINUE  # burning in
    for i, trial in enumerate(ctx.trials):  # each the best so far: asked for a checkpoint
        assert pbt.on_trial_result(ctx, trial, result(4, i)) == CONTINUE
    assert ctx.made("checkpoint") == [t.trial_id for t in ctx.trials[1:]]
    assert pbt.on_trial_result(ctx, ctx.trials[0], result(6, 0)) == NOOP
    assert pbt.on_trial_result(ctx, ctx.trials[1], result(6, 1)) == NOOP
    assert ctx.made("pause-no-checkpoint") == ["t0", "t1"]  # the bottom 2 of 8
    assert {t.restore_from for t in ctx.trials[:2]} <= {"ckpt-t6", "ckpt-t7"}
    # With trials waiting, one at its interval yields; the least trained runs next.
    assert pbt.on_trial_result(ctx, ctx.trials[5], result(6, 5.0)) == PAUSE
    assert pbt.choose_trial_to_run(ctx) in ctx.trials[:2]


def test_pbt_yields_at_its_interval_only_to_a_trial_that_waits() -> None:
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        metric="acc",
        mode="max",
        perturbation_interval=2,
        hyperparam_mutations={"lr": [1, 2]},
    )
    ctx = FakeContext(2)
    ctx.finished = False  # more trials will come: they are no reason to wait
    add_all(pbt, ctx)
    first, second = ctx.trials
    assert pbt.choose_trial_to_run(ctx) is first
    assert report(pbt, ctx, first, result(2, 1.0)) == PAUSE  # the second waits
    assert pbt.choose_trial_to_run(ctx) is second
    assert report(pbt, ctx, second, result(2, 2.0)) == PAUSE  # the first waits
    assert pbt.choose_trial_to_run(ctx) is first
    first.set_status(Trial.RUNNING)
    assert report(pbt, ctx, second, result(4, 2.0)) == CONTINUE  # none waits


def test_pbt_synch_perturbs_once_the_population_is_complete() -> None:
    pbt, ctx = pbt_population(2, synch=True, quantile_fraction=0.5)
    ctx.finished = False
    for trial in ctx.trials:
        trial.checkpoint = f"ckpt-{trial.trial_id}"  # type: ignore[assignment]
    assert report(pbt, ctx, ctx.trials[0], result(2, 1.0)) == PAUSE
    assert report(pbt, ctx, ctx.trials[1], result(2, 9.0)) == PAUSE
    assert pbt.choose_trial_to_run(ctx) is None  # more trials may join the population
    assert ctx.trials[0].restore_from is None
    ctx.finished = True  # the search ends with no new trial
    assert pbt.choose_trial_to_run(ctx) in ctx.trials
    assert ctx.trials[0].restore_from == "ckpt-t1"


def test_pbt_synch_waits_for_all_but_not_for_a_failed_trial() -> None:
    pbt, ctx = pbt_population(3, synch=True, quantile_fraction=0.5)
    for trial in ctx.trials:
        trial.checkpoint = f"ckpt-{trial.trial_id}"  # type: ignore[assignment]
    assert report(pbt, ctx, ctx.trials[0], result(2, 1.0)) == PAUSE
    assert report(pbt, ctx, ctx.trials[1], result(2, 9.0)) == PAUSE
    assert pbt.choose_trial_to_run(ctx) is None  # both wait for the third
    ctx.trials[2].set_status(Trial.ERROR)
    pbt.on_trial_error(ctx, ctx.trials[2])
    assert ctx.trials[0].restore_from == "ckpt-t1"  # exploited while paused
    assert pbt.choose_trial_to_run(ctx) in ctx.trials[:2]


def test_schedulers_take_on_trials_restored_without_being_added() -> None:
    """Tuner.restore hands the scheduler its saved state and the trials, which it never saw
    (PBT keeps no state: its population starts afresh)."""
    for make in ALL:
        scheduler = make(metric="acc", mode="max", time_attr="training_iteration")
        ctx = FakeContext(2)
        scheduler.set_state(scheduler.get_state())
        assert scheduler.choose_trial_to_run(ctx) is ctx.trials[0]
        assert report(scheduler, ctx, ctx.trials[0], result(1, 1.0)) in (CONTINUE, PAUSE)


@pytest.mark.parametrize("synch", [False, True])
@pytest.mark.parametrize("ahead", AHEAD)
def test_pbt_runs_a_whole_experiment_with_a_failure_to_the_end(
    synch: bool, ahead: tuple[int, int]
) -> None:
    random.seed(1)
    sim = bench.Simulation(
        bench.pbt_for_problem()
        if not synch
        else PopulationBasedTraining(
            time_attr="training_iteration",
            metric="loss",
            mode="min",
            perturbation_interval=3,
            hyperparam_mutations={"lr": bench.sample_lr},
            synch=True,
        ),
        [{"lr": lr} for lr in (0.9, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005)],
        initial=lambda config: 1.0,
        step=lambda loss, config, iteration: bench.pbt_step(loss, config),
        metrics=lambda loss, config, iteration: {"loss": loss},
        max_t=30,
        max_pending=ahead[0],
        per_round=ahead[1],
        fail_at={"00003": 10},
    )
    report_ = sim.run()
    assert report_.stuck == []
    if synch:  # a clone goes on from its donor's iteration, which is its own here
        assert report_.iterations == 7 * 30 + 10
    assert [t.status for t in report_.trials].count(Trial.ERROR) == 1


def test_pbt_replay_reproduces_a_trials_schedule(tmp_path: Path) -> None:
    random.seed(3)
    configs = [{"lr": lr} for lr in (0.9, 0.5, 0.2, 0.05, 0.02, 0.01)]
    make = dict(
        initial=lambda config: 1.0,
        step=lambda loss, config, iteration: bench.pbt_step(loss, config),
        metrics=lambda loss, config, iteration: {"loss": loss},
        max_t=30,
    )
    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        metric="loss",
        mode="min",
        perturbation_interval=3,
        hyperparam_mutations={"lr": bench.sample_lr},
    )
    original = bench.Simulation(pbt, configs, path=str(tmp_path / "exp"), **make)
    original.run()
    files = sorted((tmp_path / "exp").glob("pbt_policy_*.txt"))
    lineages = {f: len(f.read_text().splitlines()) for f in files}
    policy_file = max(files, key=lambda f: lineages[f])
    assert lineages[policy_file] >= 2
    trial_id = policy_file.stem.removeprefix("pbt_policy_")
    replay = PopulationBasedTrainingReplay(str(policy_file))
    again = bench.Simulation(replay, [{}], **make)
    again.run()
    assert again.history[again.trials[0].trial_id] == original.history[trial_id]


def test_replay_reads_rays_policy_files_and_rejects_bad_ones(tmp_path: Path) -> None:
    lines = [
        ["b", "x", 4, 4, {"lr": 9}, {"lr": 8}],  # an older lineage of b, cut off below
        ["a", "c", 2, 3, {"lr": 1}, {"lr": 2}],
        ["b", "a", 5, 6, {"lr": 2}, {"lr": 3}],
    ]
    policy = tmp_path / "pbt_policy_b.txt"
    policy.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert load_policy(str(policy)) == ({"lr": 1}, [(3, {"lr": 2}), (6, {"lr": 3})])
    replay = PopulationBasedTrainingReplay(str(policy))
    ctx = FakeContext(2)
    replay.on_trial_add(ctx, ctx.trials[0])
    assert ctx.trials[0].config == {"lr": 1}
    assert replay.on_trial_result(ctx, ctx.trials[0], result(2, 0)) == CONTINUE
    assert replay.on_trial_result(ctx, ctx.trials[0], result(3, 0)) == NOOP
    assert ctx.made("pause") == ["t0"] and ctx.trials[0].config == {"lr": 2}
    with pytest.raises(ValueError, match="replays one trial"):
        replay.on_trial_add(ctx, ctx.trials[1])
    with pytest.raises(ValueError, match="not found"):
        PopulationBasedTrainingReplay(str(tmp_path / "missing.txt"))
    policy.write_text("not json\n")
    with pytest.raises(ValueError, match="pbt_policy_b.txt:1 is not a line of a PBT policy"):
        PopulationBasedTrainingReplay(str(policy))


# ----------------------------------------------------------------------------- the benchmark


def test_early_stopping_pays() -> None:
    """ASHA finds the grid's best with at most a third of its iterations; PBT beats random
    search at equal compute (issue 9's targets, on the simulator)."""
    outcome = bench.evaluate(seeds=4)
    assert outcome.asha_found_best
    assert outcome.asha_fraction <= 1 / 3
    assert outcome.pbt_loss < outcome.random_loss
    best, greedy = (
        bench.grid_best_config(),
        max(bench.grid_configs(), key=lambda c: bench.grid_curve(c, 1)),
    )
    assert greedy != best  # the curves cross: stopping on the first iteration is fooled
