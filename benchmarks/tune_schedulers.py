#!/usr/bin/env python
"""Early stopping pays (issue 9): trial schedulers on synthetic problems whose learning curves
are known, driven by a simulator with no processes.

    python benchmarks/tune_schedulers.py [--seeds N]   # on the simulator
    python benchmarks/tune_schedulers.py --tuner        # through ember.tune.Tuner, 2 CPUs

Two problems, importable by a run through the real Tuner:

- ``grid_configs()`` / ``grid_curve(config, iteration)``: 81 configurations (a 3^4 grid) with
  deterministic curves of ``accuracy`` (mode max) that cross: high learning rates lead early and
  plateau low, the best final configuration (``grid_best_config()``) starts mid-pack. Target:
  ASHA finds the grid's best configuration while spending at most 1/3 of the grid's training
  iterations (81 configurations x ``GRID_MAX_T``).
- ``pbt_step(loss, config)`` / ``pbt_objective(history)``: a model whose ``loss`` after each
  iteration depends on the learning rate used then and on where the model got to: a large
  rate makes fast progress but leaves a floor proportional to it, so the best schedule anneals
  the rate and no fixed rate reaches it. Target: PBT ends with a lower loss than random search
  over fixed rates, at equal compute (the same trials x iterations), averaged over seeds.

``--tuner`` runs the same problems through the real ``ember.tune.Tuner`` (function trainables
that report a checkpoint at every iteration and resume from ``tune.get_checkpoint()``) and
prints a markdown table of the targets.

``Simulation`` is a ``SchedulerContext`` that runs trials as plain values: each running trial
takes one training iteration per round, ``concurrency`` trials run at a time (2 here, as on this
2-core machine), a scheduler's PAUSE keeps the trial's state as its checkpoint,
``request_checkpoint`` saves at once, and a trial restarts from ``trial.restore_from``. It
counts the training iterations spent. Trials are made ahead, as the controller makes them:
each round adds trials until ``max_pending`` wait to start (the controller's 1,000 for a grid or
random search, 16 for a model-based searcher), at most ``per_round`` at a time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ember.tune.experiment.trial import Trial
from ember.tune.result import TIME_TOTAL_S, TRAINING_ITERATION
from ember.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
    TrialScheduler,
)

# ----------------------------------------------------------------------------- the grid problem

GRID_MAX_T = 81
GRID = {
    "lr": [0.001, 0.01, 0.1],
    "width": [64, 256, 1024],
    "dropout": [0.0, 0.2, 0.5],
    "batch_size": [32, 128, 512],
}
# What each value adds to the final accuracy.
_FINAL = {
    "lr": {0.001: 0.05, 0.01: 0.08, 0.1: 0.02},
    "width": {64: 0.0, 256: 0.05, 1024: 0.10},
    "dropout": {0.0: 0.02, 0.2: 0.04, 0.5: 0.0},
    "batch_size": {32: 0.03, 128: 0.02, 512: 0.0},
}


def grid_configs() -> list[dict[str, Any]]:
    keys = list(GRID)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*GRID.values())]


def _grid_terms(config: dict[str, Any]) -> tuple[float, float]:
    """The final accuracy and the time constant of a configuration's curve. The smallest
    learning rate learns 4 times slower; the largest with the smallest batch (9 configurations)
    learns 6 times faster but plateaus low: they lead after one iteration, and lose by three."""
    final = 0.55 + sum(_FINAL[key][config[key]] for key in GRID)
    tau = 12.0 if config["lr"] == 0.001 else 3.0
    if config["lr"] == 0.1 and config["batch_size"] == 32:
        final, tau = final - 0.2, 0.5
    return final, tau


def grid_curve(config: dict[str, Any], iteration: int) -> float:
    """The accuracy after ``iteration`` iterations: rises from 0.1 to the config's final value
    with the config's time constant."""
    final, tau = _grid_terms(config)
    return final - (final - 0.1) * math.exp(-iteration / tau)


def grid_best_config() -> dict[str, Any]:
    return max(grid_configs(), key=lambda c: grid_curve(c, GRID_MAX_T))


# ----------------------------------------------------------------------------- the PBT problem

PBT_MAX_T = 60
PBT_POPULATION = 8
PBT_LR_RANGE = (1e-3, 1.0)


def pbt_step(loss: float, config: dict[str, Any]) -> float:
    """One training iteration at learning rate ``config["lr"]``: the loss shrinks by a factor
    ``1 - lr`` towards a floor of ``lr``."""
    lr = min(max(float(config["lr"]), 0.0), 1.0)
    return loss * (1 - lr) + lr * lr


def pbt_objective(history: Iterable[dict[str, Any]]) -> float:
    """The loss after training with each config of ``history`` for one iteration, in order."""
    loss = 1.0
    for config in history:
        loss = pbt_step(loss, config)
    return loss


def sample_lr(rng: Any = random) -> float:
    """A learning rate, log-uniform over ``PBT_LR_RANGE``."""
    low, high = PBT_LR_RANGE
    return math.exp(rng.uniform(math.log(low), math.log(high)))


# ----------------------------------------------------------------------------- the simulator


@dataclass
class SimCheckpoint:
    iteration: int
    state: Any


@dataclass
class _Run:
    state: Any
    iteration: int = 0


@dataclass
class SimulationReport:
    iterations: int  # training iterations spent, over all trials
    trials: list[Trial]
    stuck: list[Trial] = field(default_factory=list)  # unfinished when nothing could run


class Simulation:
    """Drives a scheduler over trials whose results come from ``initial(config)`` (a model's
    starting state), ``step(state, config, iteration)`` (one training iteration) and
    ``metrics(state, config, iteration)`` (what a result reports)."""

    def __init__(
        self,
        scheduler: TrialScheduler,
        configs: list[dict[str, Any]],
        *,
        initial: Callable[[dict[str, Any]], Any],
        step: Callable[[Any, dict[str, Any], int], Any],
        metrics: Callable[[Any, dict[str, Any], int], dict[str, float]],
        max_t: int,
        concurrency: int | None = 2,
        budget: int | None = None,
        fail_at: dict[str, int] | None = None,
        path: str | None = None,
        max_pending: int = 1000,
        per_round: int = 64,
    ) -> None:
        self.scheduler = scheduler
        self._new = [
            Trial("sim", config=c, trial_id=f"{i:05d}", experiment_tag=str(i))
            for i, c in enumerate(configs)
        ]
        if path is not None:
            for trial in self._new:
                trial.path = f"{path}/sim_{trial.trial_id}"
        self.trials: list[Trial] = []
        self.max_pending = max_pending
        self.per_round = per_round
        self._initial, self._step, self._metrics = initial, step, metrics
        self.max_t = max_t
        self.concurrency = concurrency
        self.budget = budget
        self.fail_at = dict(fail_at or {})
        self.iterations = 0
        self.running: list[Trial] = []
        self._runs: dict[str, _Run] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}  # configs each trial's model saw

    # ------------------------------------------------------------------ SchedulerContext

    def get_trials(self) -> list[Trial]:
        return list(self.trials)

    def stop_trial(self, trial: Trial) -> None:
        if trial.is_finished():
            return
        if trial.status == Trial.RUNNING:
            self.scheduler.on_trial_complete(self, trial, trial.last_result)
        else:
            self.scheduler.on_trial_remove(self, trial)
        self._end(trial, Trial.TERMINATED)

    def pause_trial(self, trial: Trial, should_checkpoint: bool = True) -> None:
        if should_checkpoint:
            self._save(trial)
        trial.restore_from = trial.checkpoint
        self._leave_slot(trial)
        trial.set_status(Trial.PAUSED)

    def search_finished(self) -> bool:
        return not self._new

    def resume_trial(self, trial: Trial) -> None:
        assert trial.status == Trial.PAUSED, f"resume_trial({trial}) while {trial.status}"
        trial.set_status(Trial.PENDING)

    def request_checkpoint(self, trial: Trial) -> None:
        self._save(trial)

    def model_state(self, trial: Trial) -> Any:
        """Where a trial's model got to (its state after its last iteration)."""
        return self._runs[trial.trial_id].state

    # ------------------------------------------------------------------ running

    def _save(self, trial: Trial) -> None:
        """A checkpoint of the trial's model now, recorded with its iteration as the
        controller records one."""
        run = self._runs[trial.trial_id]
        checkpoint = SimCheckpoint(run.iteration, (run.state, list(self.history[trial.trial_id])))
        trial.checkpoint = checkpoint  # type: ignore[assignment]
        trial.checkpoint_history.append((checkpoint, {TRAINING_ITERATION: run.iteration}))  # type: ignore[arg-type]

    def _leave_slot(self, trial: Trial) -> None:
        if trial in self.running:
            self.running.remove(trial)

    def _end(self, trial: Trial, status: str) -> None:
        self._leave_slot(trial)
        trial.set_status(status)

    def _start(self, trial: Trial) -> None:
        source = trial.restore_from
        if isinstance(source, SimCheckpoint):
            state, history = source.state
            self._runs[trial.trial_id] = _Run(state, source.iteration)
            self.history[trial.trial_id] = list(history)
        elif trial.trial_id not in self._runs:
            self._runs[trial.trial_id] = _Run(self._initial(trial.config))
            self.history[trial.trial_id] = []
        trial.restore_from = None
        trial.set_status(Trial.RUNNING)
        self.running.append(trial)

    def _train(self, trial: Trial) -> None:
        run = self._runs[trial.trial_id]
        run.iteration += 1
        self.iterations += 1
        if self.fail_at.get(trial.trial_id) == run.iteration:
            self._end(trial, Trial.ERROR)
            self.scheduler.on_trial_error(self, trial)
            return
        run.state = self._step(run.state, trial.config, run.iteration)
        self.history[trial.trial_id].append(dict(trial.config))
        result = {
            TRAINING_ITERATION: run.iteration,
            TIME_TOTAL_S: float(run.iteration),
            **self._metrics(run.state, trial.config, run.iteration),
        }
        if run.iteration >= self.max_t:
            trial.update_last_result(result)
            self.scheduler.on_trial_complete(self, trial, result)
            self._end(trial, Trial.TERMINATED)
            return
        decision = self.scheduler.on_trial_result(self, trial, result)
        trial.update_last_result(result)
        if decision == TrialScheduler.PAUSE:
            self.pause_trial(trial)
        elif decision == TrialScheduler.STOP:
            self.scheduler.on_trial_complete(self, trial, result)
            self._end(trial, Trial.TERMINATED)
        else:
            assert decision in (TrialScheduler.CONTINUE, TrialScheduler.NOOP), decision

    def _add_trials(self) -> int:
        """Make trials ahead as the controller does; how many were made."""
        pending = sum(1 for t in self.trials if t.status == Trial.PENDING)
        count = min(self.max_pending - pending, self.per_round, len(self._new))
        for _ in range(count):
            trial = self._new.pop(0)
            self.trials.append(trial)
            self.scheduler.on_trial_add(self, trial)
        return max(count, 0)

    def _fill_slots(self) -> None:
        """Start what the scheduler chooses while there is room."""
        while self.concurrency is None or len(self.running) < self.concurrency:
            trial = self.scheduler.choose_trial_to_run(self)
            if trial is None:
                return
            self._start(trial)

    def run(self) -> SimulationReport:
        """Run until nothing runs, no trial was made and the scheduler has nothing to start;
        or until the budget is spent."""
        while self.budget is None or self.iterations < self.budget:
            made = self._add_trials()
            self._fill_slots()
            if not self.running:
                if made:
                    continue
                break
            for trial in list(self.running):
                if trial in self.running and (self.budget is None or self.iterations < self.budget):
                    self._train(trial)
        stuck = [t for t in self.trials + self._new if not t.is_finished()]
        if self.budget is not None and self.iterations >= self.budget:
            stuck = []
        return SimulationReport(self.iterations, self.trials, stuck)


# ----------------------------------------------------------------------------- the targets


def simulate_grid(
    scheduler: TrialScheduler,
    order_seed: int | None = None,
    concurrency: int | None = 2,
    max_pending: int = 1000,
) -> tuple[SimulationReport, dict[str, Any]]:
    """Run the 81 grid configurations (in a shuffled order if ``order_seed`` is given) under a
    scheduler; the report and the configuration with the best last accuracy."""
    configs = grid_configs()
    if order_seed is not None:
        random.Random(order_seed).shuffle(configs)
    sim = Simulation(
        scheduler,
        configs,
        initial=lambda config: None,
        step=lambda state, config, iteration: None,
        metrics=lambda state, config, iteration: {"accuracy": grid_curve(config, iteration)},
        max_t=GRID_MAX_T,
        concurrency=concurrency,
        max_pending=max_pending,
    )
    report = sim.run()
    best = max(report.trials, key=lambda t: t.last_result.get("accuracy", -math.inf))
    return report, best.config


def asha_for_grid() -> ASHAScheduler:
    return ASHAScheduler(
        metric="accuracy", mode="max", max_t=GRID_MAX_T, grace_period=1, reduction_factor=3
    )


def simulate_pbt_problem(scheduler: TrialScheduler, seed: int) -> tuple[float, int]:
    """Train ``PBT_POPULATION`` trials of random initial learning rates for ``PBT_MAX_T``
    iterations each (no more compute in all) under a scheduler; the best final loss, and the
    iterations spent."""
    rng = random.Random(seed)
    random.seed(seed)  # PBT's exploration draws from the random module
    configs = [{"lr": sample_lr(rng)} for _ in range(PBT_POPULATION)]
    sim = Simulation(
        scheduler,
        configs,
        initial=lambda config: 1.0,
        step=lambda loss, config, iteration: pbt_step(loss, config),
        metrics=lambda loss, config, iteration: {"loss": loss},
        max_t=PBT_MAX_T,
        budget=PBT_POPULATION * PBT_MAX_T,
    )
    report = sim.run()
    best = min(sim.model_state(t) for t in report.trials)
    return best, report.iterations


def pbt_for_problem() -> PopulationBasedTraining:
    return PopulationBasedTraining(
        time_attr=TRAINING_ITERATION,
        metric="loss",
        mode="min",
        perturbation_interval=3,
        hyperparam_mutations={"lr": sample_lr},
        quantile_fraction=0.25,
    )


@dataclass
class Outcome:
    asha_found_best: bool
    asha_fraction: float  # of the grid's iterations
    pbt_loss: float
    random_loss: float


def evaluate(seeds: int = 5) -> Outcome:
    """Both targets: ASHA over the grid in ``seeds`` trial orders (it must find the best every
    time; the worst budget fraction counts), PBT against random search over ``seeds`` seeds."""
    found, fractions = True, []
    for seed in range(seeds):
        report, best = simulate_grid(asha_for_grid(), order_seed=seed)
        found = found and best == grid_best_config()
        fractions.append(report.iterations / (len(report.trials) * GRID_MAX_T))
    pbt = [simulate_pbt_problem(pbt_for_problem(), seed)[0] for seed in range(seeds)]
    rand = [simulate_pbt_problem(FIFOScheduler(), seed)[0] for seed in range(seeds)]
    return Outcome(found, max(fractions), statistics.fmean(pbt), statistics.fmean(rand))


def best_fixed_lr_loss(steps: int = 999) -> float:
    """The lowest final loss of any fixed learning rate on the PBT problem (a grid of
    ``steps`` rates over (0, 1)): what only a schedule can beat."""
    return min(pbt_objective([{"lr": i / (steps + 1)}] * PBT_MAX_T) for i in range(1, steps + 1))


# ----------------------------------------------------------------------------- the real Tuner


def _resume(default: dict[str, Any]) -> dict[str, Any]:
    """The state saved in the checkpoint this trial resumes from, or ``default``."""
    from ember import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return default
    with checkpoint.as_directory() as folder, open(os.path.join(folder, "state.json")) as f:
        state: dict[str, Any] = json.load(f)
    return state


def _report(metrics: dict[str, Any], state: dict[str, Any]) -> None:
    """Report one iteration's metrics with a checkpoint of ``state``."""
    from ember import tune

    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "state.json"), "w") as f:
            json.dump(state, f)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def grid_trainable(config: dict[str, Any]) -> None:
    """The grid problem as a function trainable: one cheap iteration per report."""
    iteration = _resume({"iteration": 0})["iteration"]
    while iteration < GRID_MAX_T:
        iteration += 1
        _report({"accuracy": grid_curve(config, iteration)}, {"iteration": iteration})


def pbt_trainable(config: dict[str, Any]) -> None:
    """The PBT problem as a function trainable; a clone goes on from its donor's model."""
    state = _resume({"iteration": 0, "loss": 1.0})
    while state["iteration"] < PBT_MAX_T:
        state = {"iteration": state["iteration"] + 1, "loss": pbt_step(state["loss"], config)}
        _report({"loss": state["loss"]}, state)


def _budget_stopper(budget: int | None) -> Any:
    """A stopper that counts the training iterations of an experiment (every result is one)
    and, given a budget, ends the experiment once it is spent."""
    from ember import tune

    class Budget(tune.Stopper):
        def __init__(self) -> None:
            self.spent = 0

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            self.spent += 1
            return False

        def stop_all(self) -> bool:
            return budget is not None and self.spent >= budget

    return Budget()


def tuner_grid(scheduler: TrialScheduler, storage: str, name: str) -> tuple[int, bool, float]:
    """The grid through the Tuner: iterations spent, whether the best configuration by last
    accuracy is the grid's best, and the seconds taken."""
    from ember import tune

    budget = _budget_stopper(None)
    started = time.monotonic()
    results = tune.Tuner(
        grid_trainable,
        param_space={key: tune.grid_search(values) for key, values in GRID.items()},
        tune_config=tune.TuneConfig(metric="accuracy", mode="max", scheduler=scheduler),
        run_config=tune.RunConfig(storage_path=storage, name=name, stop=budget, verbose=0),
    ).fit()
    elapsed = time.monotonic() - started
    if results.num_errors:
        raise RuntimeError(f"{results.num_errors} trials of {name} failed: {results.errors}")
    best = results.get_best_result(metric="accuracy", mode="max", scope="last")
    return budget.spent, best.config == grid_best_config(), elapsed


def tuner_pbt_problem(
    scheduler: TrialScheduler, seed: int, storage: str, name: str
) -> tuple[float, int]:
    """The PBT problem through the Tuner, ``PBT_POPULATION`` trials of random initial rates
    with no more than ``PBT_POPULATION * PBT_MAX_T`` iterations in all: the best last loss and
    the iterations spent."""
    from ember import tune

    rng = random.Random(seed)
    random.seed(seed)  # PBT's exploration draws from the random module
    rates = [sample_lr(rng) for _ in range(PBT_POPULATION)]
    budget = _budget_stopper(PBT_POPULATION * PBT_MAX_T)
    results = tune.Tuner(
        pbt_trainable,
        param_space={"lr": tune.grid_search(rates)},
        tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=scheduler),
        run_config=tune.RunConfig(storage_path=storage, name=name, stop=budget, verbose=0),
    ).fit()
    if results.num_errors:
        raise RuntimeError(f"{results.num_errors} trials of {name} failed: {results.errors}")
    best = min(r.metrics["loss"] for r in results if "loss" in r.metrics)
    return best, budget.spent


def run_tuner(seeds: int, repeats: int) -> None:
    """Both targets through ``ember.tune.Tuner`` on 2 CPUs: each grid scheduler ``repeats``
    times (ASHA's decisions depend on which trial reports first), PBT and random search over
    ``seeds`` seeds; prints a markdown table."""
    import ember

    grid_iterations = len(grid_configs()) * GRID_MAX_T
    grid_schedulers: dict[str, Callable[[], TrialScheduler]] = {
        "ASHA (grace_period=1, reduction_factor=3)": asha_for_grid,
        "HyperBand (max_t=81, reduction_factor=3)": lambda: HyperBandScheduler(
            metric="accuracy", mode="max", max_t=GRID_MAX_T
        ),
    }
    rows = []
    ember.init(num_cpus=2)
    try:
        with tempfile.TemporaryDirectory(prefix="tune-schedulers-") as storage:
            for name, make in grid_schedulers.items():
                runs = []
                for repeat in range(repeats):
                    label = f"{name.split()[0].lower()}{repeat}"
                    spent, found, elapsed = tuner_grid(make(), storage, label)
                    runs.append((spent, found))
                    print(
                        f"{name}: {spent}/{grid_iterations} iterations "
                        f"({spent / grid_iterations:.1%}), best "
                        f"{'found' if found else 'MISSED'}, {elapsed:.0f} s",
                        flush=True,
                    )
                found_in = sum(f for _, f in runs)
                low, high = min(s for s, _ in runs), max(s for s, _ in runs)
                counts = f"{low}" if low == high else f"{low}-{high}"
                share = f"{low / grid_iterations:.1%}" + (
                    "" if low == high else f"-{high / grid_iterations:.1%}"
                )
                rows.append(
                    (
                        f"{name.split()[0]}, 3^4 grid (81 configs x {GRID_MAX_T} iterations)",
                        "finds the grid's best config with <= 1/3 of its iterations",
                        f"best found in {found_in}/{repeats} runs, with {counts} of "
                        f"{grid_iterations} iterations ({share})",
                        found_in == repeats and high <= grid_iterations / 3,
                    )
                )
            pbt, rand = [], []
            for seed in range(seeds):
                loss, used = tuner_pbt_problem(pbt_for_problem(), seed, storage, f"pbt{seed}")
                pbt.append(loss)
                rand.append(tuner_pbt_problem(FIFOScheduler(), seed, storage, f"random{seed}")[0])
                print(
                    f"seed {seed}: PBT {pbt[-1]:.4f} ({used} iterations), "
                    f"random search {rand[-1]:.4f}",
                    flush=True,
                )
    finally:
        ember.shutdown()
    mean_pbt, mean_rand = statistics.fmean(pbt), statistics.fmean(rand)
    rows.append(
        (
            f"PBT vs random search ({PBT_POPULATION} trials, {PBT_POPULATION * PBT_MAX_T} "
            "iterations)",
            "PBT beats random search at equal compute",
            f"mean best final loss over {seeds} seeds: PBT {mean_pbt:.4f}, random search "
            f"{mean_rand:.4f} (best fixed rate: {best_fixed_lr_loss():.4f})",
            mean_pbt < mean_rand,
        )
    )
    print()
    print("| Problem (`ember.tune.Tuner`, 2 CPUs) | Target | Result | Met |")
    print("|---|---|---|---|")
    for problem, target, outcome, met in rows:
        print(f"| {problem} | {target} | {outcome} | {'yes' if met else 'no'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None, help="10 (simulator), 5 (--tuner)")
    parser.add_argument("--tuner", action="store_true", help="run through ember.tune.Tuner")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each grid scheduler")
    args = parser.parse_args()
    if args.tuner:
        run_tuner(args.seeds or 5, args.repeats)
        return
    args.seeds = args.seeds or 10
    grid_iterations = len(grid_configs()) * GRID_MAX_T
    best = grid_best_config()
    greedy = max(grid_configs(), key=lambda c: grid_curve(c, 1))
    print(f"Grid: 81 configurations x {GRID_MAX_T} iterations = {grid_iterations} iterations")
    print(f"  best final: {best} ({grid_curve(best, GRID_MAX_T):.3f})")
    print(f"  best after 1 iteration: {greedy} (final {grid_curve(greedy, GRID_MAX_T):.3f})")
    print(f"  {args.seeds} trial orders, 2 trials at a time:")
    schedulers: dict[str, Callable[[], TrialScheduler]] = {
        "FIFO": FIFOScheduler,
        "ASHA (grace_period=1, reduction_factor=3)": asha_for_grid,
        "HyperBand (max_t=81, reduction_factor=3)": lambda: HyperBandScheduler(
            metric="accuracy", mode="max", max_t=GRID_MAX_T
        ),
        "MedianStoppingRule (grace_period=3 iterations)": lambda: MedianStoppingRule(
            time_attr=TRAINING_ITERATION, metric="accuracy", mode="max", grace_period=3
        ),
    }
    for name, make in schedulers.items():
        runs = [simulate_grid(make(), order_seed=seed) for seed in range(args.seeds)]
        found = sum(config == best for _, config in runs)
        worst = max(report.iterations for report, _ in runs) / grid_iterations
        print(f"  {name:48} found the best {found}/{args.seeds}, at most {worst:6.1%} of it")
    outcome = evaluate(args.seeds)
    verdict = "met" if outcome.asha_found_best and outcome.asha_fraction <= 1 / 3 else "MISSED"
    print(f"  target (ASHA finds it every time, <= 33.3%): {verdict}")
    print(
        f"PBT problem: {PBT_POPULATION} trials x {PBT_MAX_T} iterations, "
        f"mean best final loss over {args.seeds} seeds:"
    )
    print(f"  PBT (perturbation_interval=3): {outcome.pbt_loss:.4f}")
    print(f"  random search (fixed rates):   {outcome.random_loss:.4f}")
    print(f"  best fixed rate, for reference: {best_fixed_lr_loss():.4f}")
    verdict = "met" if outcome.pbt_loss < outcome.random_loss else "MISSED"
    print(f"  target (PBT beats random search): {verdict}")


if __name__ == "__main__":
    main()
