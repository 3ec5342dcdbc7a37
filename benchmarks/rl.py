#!/usr/bin/env python
"""Reinforcement learning on CartPole-v1: ember.rllib side by side with Stable-Baselines3 and
Ray RLlib 2.60 (issue 10, "Benchmarks and targets").

    python benchmarks/rl.py [--frameworks ember,sb3,rllib] [--algorithms PPO,DQN]
                            [--seeds 0,1,2] [--budget 100000 | --budget PPO=100000,DQN=100000]
                            [--ray-python /tmp/benchvenv/bin/python] [--plot rl.png]
                            [--json rl.json] [--timeout S] [--threads 1]
                            [--override FW.ALGO=JSON]

Every (framework, algorithm, seed) trains in its own fresh process, one after another, seeds
and algorithms interleaved so that all frameworks see the same machine. The process trains up to
the step budget and, every ``--eval-every`` env steps (at the first iteration boundary at or past
each multiple), runs a greedy evaluation: ``--eval-episodes`` episodes on a separate environment,
episode i reset with seed ``EVAL_SEED + i`` (the same start states for every framework). The
clock excludes those evaluations: "seconds" is wall-clock from just before the framework starts
(``init``, building the algorithm) to that point of training, less the time spent evaluating.
It reports the env steps and seconds at which the greedy mean return first reaches 475, the
greedy mean return at the end of the budget and the whole learning curve; the parent prints a
markdown table of medians over seeds and draws the curves.

Each framework runs with its own recommended settings for CartPole-v1: Stable-Baselines3 with
the rl-baselines3-zoo hyperparameters, RLlib with its tuned examples, ember.rllib with the
settings in EMBER_SETTINGS. ``--override`` changes them for a run. Every process uses one
PyTorch thread (``--threads``), as Ray's workers do. A3C runs on Ember with 2 env runners
beside SB3's A2C (SB3 has no A3C); RLlib 2.60 has no A3C, so it is skipped.

``benchmarks/rl_scaling.py`` measures how sampling scales over env-runner actors.

A framework that cannot be imported (ember.rllib not built yet, Ray not installed) is skipped
with a note; ``--ray-python`` names the interpreter of a virtualenv that has ``ray[rllib]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_SRC = os.path.join(os.path.dirname(HERE), "src")

if HERE not in sys.path:
    sys.path.insert(0, HERE)

from rl_settings import (  # noqa: E402
    ALGORITHMS,
    EMBER_SETTINGS,
    FRAMEWORKS,
    LABELS,
    RESULT_MARKER,
    RLLIB_MISSING,
    RLLIB_SETTINGS,
    SB3_CLASSES,
    SB3_MISSING,
    SB3_ZOO,
    WALL_CLOCK_TARGETS,
    WORKLOADS,
)

EVAL_SEED = 10_000


# --------------------------------------------------------------------------- one training run


@dataclass
class Evaluation:
    env_steps: int
    seconds: float  # training wall-clock so far, evaluations excluded
    mean_return: float


@dataclass
class RunResult:
    framework: str
    algorithm: str
    seed: int
    status: str = "ok"  # ok, partial (still training), timeout (its curve so far), skipped, error
    note: str = ""
    budget: int = 0
    env_steps: int = 0
    setup_seconds: float = 0.0  # framework start and algorithm build, part of `seconds`
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    curve: list[Evaluation] = field(default_factory=list)

    def first_reaching(self) -> Evaluation | None:
        threshold = WORKLOADS[self.algorithm].threshold
        return next((e for e in self.curve if e.mean_return >= threshold), None)

    @property
    def final_return(self) -> float | None:
        return self.curve[-1].mean_return if self.curve else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        curve = [Evaluation(**e) for e in data.pop("curve", [])]
        return cls(**data, curve=curve)


def greedy_returns(
    act: Callable[[Any], Any], env_id: str, episodes: int, seed: int = EVAL_SEED
) -> list[float]:
    """Returns of ``episodes`` greedy episodes, stepped in lockstep so that ``act`` gets a batch
    of observations (n, obs_dim) and returns n actions; episode i starts from seed + i."""
    import gymnasium as gym
    import numpy as np

    envs = [gym.make(env_id) for _ in range(episodes)]
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    returns = [0.0] * episodes
    live = list(range(episodes))
    while live:
        actions = np.asarray(act(np.stack([obs[i] for i in live]).astype(np.float32)))
        still = []
        for i, action in zip(live, actions, strict=True):
            step = action.item() if action.ndim == 0 else action
            obs[i], reward, terminated, truncated, _ = envs[i].step(step)
            returns[i] += float(reward)
            if not (terminated or truncated):
                still.append(i)
        live = still
    for env in envs:
        env.close()
    return returns


class Recorder:
    """Training's clock and learning curve: evaluates greedily each time training passes a
    multiple of ``every`` env steps, and keeps the evaluations off the clock."""

    def __init__(
        self,
        result: RunResult,
        every: int,
        episodes: int,
        on_evaluation: Callable[[RunResult], None] | None = None,
    ) -> None:
        self.result, self.every, self.episodes = result, every, episodes
        self.on_evaluation = on_evaluation
        self.start = time.perf_counter()
        self.next_eval = every
        self.act: Callable[[Any], Any] | None = None

    def seconds(self) -> float:
        return time.perf_counter() - self.start - self.result.eval_seconds

    def built(self, act: Callable[[Any], Any]) -> None:
        """The algorithm exists: setup ends here; ``act`` maps observations to greedy actions."""
        self.act = act
        self.result.setup_seconds = self.seconds()

    def progress(self, env_steps: int) -> None:
        if env_steps >= self.next_eval:
            self._evaluate(env_steps)
            self.next_eval = (env_steps // self.every + 1) * self.every

    def finish(self, env_steps: int) -> None:
        self.result.train_seconds = self.seconds()
        self.result.env_steps = env_steps
        if not self.result.curve or self.result.curve[-1].env_steps != env_steps:
            self._evaluate(env_steps)

    def _evaluate(self, env_steps: int) -> None:
        assert self.act is not None, "built() must come before the first evaluation"
        seconds = self.seconds()
        t0 = time.perf_counter()
        env_id = WORKLOADS[self.result.algorithm].env_id
        mean = statistics.fmean(greedy_returns(self.act, env_id, self.episodes))
        self.result.eval_seconds += time.perf_counter() - t0
        self.result.curve.append(Evaluation(env_steps, seconds, mean))
        if self.on_evaluation is not None:
            self.on_evaluation(self.result)


def _zoo_linear(initial: float, horizon: int, budget: int) -> Callable[[float], float]:
    """The zoo's ``lin_X`` over ``horizon`` env steps, as SB3's schedule of the progress
    remaining over a run of ``budget`` steps."""
    return lambda remaining: initial * max(0.0, 1.0 - (1.0 - remaining) * budget / horizon)


def _sb3_kwargs(algorithm: str, budget: int, override: dict[str, Any]) -> dict[str, Any]:
    zoo = {**SB3_ZOO[algorithm], **override}
    horizon = zoo.pop("n_timesteps")
    kwargs = {k: v for k, v in zoo.items() if k != "n_envs"}
    for key, value in kwargs.items():
        if isinstance(value, str) and value.startswith("lin_"):
            kwargs[key] = _zoo_linear(float(value[4:]), horizon, budget)
    if "exploration_fraction" in kwargs:
        kwargs["exploration_fraction"] = min(1.0, kwargs["exploration_fraction"] * horizon / budget)
    return kwargs


def train_sb3(algorithm: str, seed: int, budget: int, rec: Recorder, override: dict) -> None:
    import stable_baselines3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    n_envs = override.get("n_envs", SB3_ZOO[algorithm]["n_envs"])
    workload = WORKLOADS[algorithm]
    env = make_vec_env(workload.env_id, n_envs=n_envs, seed=seed)
    name = SB3_CLASSES.get(algorithm, workload.algorithm)
    algo_class = getattr(stable_baselines3, name)
    model = algo_class(env=env, seed=seed, device="cpu", **_sb3_kwargs(algorithm, budget, override))
    rec.built(lambda obs: model.predict(obs, deterministic=True)[0])

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            rec.progress(self.num_timesteps)
            return True

    model.learn(total_timesteps=budget, callback=Evaluate())
    rec.finish(model.num_timesteps)
    env.close()


def _settings(framework: str, algorithm: str, override: dict) -> dict[str, dict[str, Any]]:
    base = (EMBER_SETTINGS if framework == "ember" else RLLIB_SETTINGS)[algorithm]
    merged = {section: dict(kwargs) for section, kwargs in base.items()}
    for section, kwargs in override.items():
        merged.setdefault(section, {}).update(kwargs)
    return merged


def build_config(framework: str, algorithm: str, seed: int, settings: dict) -> Any:
    """An algorithm config with Ray 2.60's builders, from ``ember.rllib`` or ``ray.rllib``."""
    import importlib

    workload = WORKLOADS[algorithm]
    package = "ember.rllib" if framework == "ember" else "ray.rllib"
    module = importlib.import_module(f"{package}.algorithms.{workload.algorithm.lower()}")
    config = getattr(module, f"{workload.algorithm}Config")().environment(workload.env_id)
    for section, kwargs in settings.items():
        config = getattr(config, section)(**kwargs)
    return config.debugging(seed=seed)


def _rllib_greedy(algo: Any) -> Callable[[Any], Any]:
    """RLlib 2.60's inference path: the RLModule's ``forward_inference`` and its inference
    action distribution made deterministic (argmax for a discrete space)."""
    import torch

    def act(obs: Any) -> Any:
        module = algo.get_module()
        with torch.no_grad():
            out = module.forward_inference({"obs": torch.from_numpy(obs)})
            if "actions" in out:  # DQN's module acts itself
                return out["actions"].numpy()
            dist = module.get_inference_action_dist_cls().from_logits(out["action_dist_inputs"])
            return dist.to_deterministic().sample().numpy()

    return act


def _ember_greedy(algo: Any) -> Callable[[Any], Any]:
    return lambda obs: [algo.compute_single_action(o, explore=False) for o in obs]


def _runtime(framework: str) -> Any:
    """The module whose ``init()``/``shutdown()`` start and stop the framework's actors."""
    import importlib

    return importlib.import_module("ember" if framework == "ember" else "ray")


def _env_steps(result: dict[str, Any]) -> int:
    key = "num_env_steps_sampled_lifetime"
    return int(result.get(key) or result["env_runners"][key])


def train_rllib_api(
    framework: str, algorithm: str, seed: int, budget: int, rec: Recorder, override: dict
) -> None:
    """Ember and RLlib share the API: build, ``train()`` until the budget, ``stop()``."""
    config = build_config(framework, algorithm, seed, _settings(framework, algorithm, override))
    runtime = _runtime(framework)
    rec.start = time.perf_counter()  # imports done: the clock starts with the framework
    runtime.init()
    try:
        algo = config.build_algo()
        rec.built(_ember_greedy(algo) if framework == "ember" else _rllib_greedy(algo))
        steps = 0
        while steps < budget:
            steps = _env_steps(algo.train())
            rec.progress(steps)
        rec.finish(steps)
        algo.stop()
    finally:
        runtime.shutdown()


def _import_check(framework: str, workload: str) -> None:
    """Raise ModuleNotFoundError when this framework cannot run this workload here."""
    import importlib

    import gymnasium  # noqa: F401
    import torch  # noqa: F401

    algorithm = WORKLOADS[workload].algorithm
    module = {
        "ember": f"ember.rllib.algorithms.{algorithm.lower()}",
        "rllib": f"ray.rllib.algorithms.{algorithm.lower()}",
        "sb3": "stable_baselines3",
    }[framework]
    importlib.import_module(module)


def run_training(
    framework: str,
    algorithm: str,
    seed: int,
    budget: int,
    eval_every: int = 5000,
    eval_episodes: int = 10,
    override: dict | None = None,
    on_evaluation: Callable[[RunResult], None] | None = None,
) -> RunResult:
    """One (framework, algorithm, seed) in this process; skipped when its modules are missing.
    ``on_evaluation`` sees the result (status "partial") after every evaluation."""
    result = RunResult(framework, algorithm, seed, budget=budget)
    missing = {"rllib": RLLIB_MISSING, "sb3": SB3_MISSING}.get(framework, {})
    if algorithm in missing:
        result.status, result.note = "skipped", missing[algorithm]
        return result
    try:
        _import_check(framework, algorithm)
    except ModuleNotFoundError as e:
        result.status, result.note = "skipped", f"cannot import {e.name} ({e})"
        return result
    rec = Recorder(result, eval_every, eval_episodes, on_evaluation)
    result.status = "partial"
    if framework == "sb3":
        train_sb3(algorithm, seed, budget, rec, override or {})
    else:
        train_rllib_api(framework, algorithm, seed, budget, rec, override or {})
    result.status = "ok"
    return result


# --------------------------------------------------------------------------- subprocesses


def _run_subprocess(
    python: str, args: list[str], timeout: float, env: dict, script: str = __file__
) -> dict[str, Any]:
    """Run ``script`` (this one) as a worker in a new session; kill what it leaves behind
    (run.py's reaper, by the run's tag and session). Returns its parsed result (printed after
    RESULT_MARKER) or an error dict."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import run  # benchmarks/run.py: the process reaper and result parser

    done = run.run_tagged([python, os.path.abspath(script), *args], env, timeout)
    rc, timed_out, stderr, leftovers = done.rc, done.timed_out, done.stderr, done.leftovers
    found = run._parse(done.stdout, RESULT_MARKER)
    if found is not None and found.get("status") == "partial":  # its curve until it stopped
        why = f"killed at the {timeout:.0f} s timeout" if timed_out else f"exit code {rc}"
        tail = "" if timed_out else "; stderr: " + " | ".join(stderr.strip().splitlines()[-3:])
        found["status"] = "timeout" if timed_out else "error"
        steps = found.pop("env_steps_evaluated", "?")
        found["note"] = f"{why}; its curve goes to {steps} env steps{tail}"
    if found is None:
        tail = " | ".join(stderr.strip().splitlines()[-3:])[-600:]
        why = f"killed after the {timeout:.0f} s timeout" if timed_out else f"exit code {rc}"
        found = {"status": "error", "note": f"{why}, no result; stderr: {tail}"}
    if leftovers:
        found["note"] = (
            found.get("note", "") + f"; {len(leftovers)} process(es) left behind "
            f"and killed: {leftovers[:3]}"
        ).lstrip("; ")
    return found


def _worker_env(framework: str, threads: int) -> dict[str, str]:
    """``threads`` bounds PyTorch's threads in the run's process and every process it starts
    (it reads OMP_NUM_THREADS): on 2 shared cores, more threads than cores slow the small
    networks down by several times, and by how much depends on the other load."""
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if framework == "rllib":
        env["RAY_USAGE_STATS_ENABLED"] = os.environ.get("RAY_USAGE_STATS_ENABLED", "0")
    else:
        path = os.environ.get("PYTHONPATH", "")  # a PYTHONPATH of the caller's comes first
        env["PYTHONPATH"] = os.pathsep.join(p for p in (path, REPO_SRC) if p)
    return env


def _python_for(framework: str, ray_python: str | None) -> str:
    return (ray_python or sys.executable) if framework == "rllib" else sys.executable


# --------------------------------------------------------------------------- report


def _median(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    if math.isinf(value):
        return "not reached"
    return f"{value:,.{digits}f}"


def summarize(results: list[RunResult]) -> dict[tuple[str, str], dict[str, Any]]:
    """Medians over seeds per (algorithm, framework). A seed that never reached the threshold
    counts as infinitely slow, so the median says "not reached" when half of them missed; a
    run killed at its timeout counts with the curve it had, the final return only from runs
    that used their whole budget."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.algorithm, r.framework), []).append(r)
    out = {}
    for key, runs in groups.items():
        ok = [r for r in runs if r.status == "ok"]
        hits = [r.first_reaching() for r in runs if r.status in ("ok", "timeout")]
        out[key] = {
            "runs": runs,
            "ran": len(hits),
            "reached": sum(h is not None for h in hits),
            "steps": _median(h.env_steps if h else math.inf for h in hits),
            "seconds": _median(h.seconds if h else math.inf for h in hits),
            "final": _median(r.final_return for r in ok if r.final_return is not None),
            "train_seconds": _median(r.train_seconds for r in ok),
        }
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or math.isinf(a) or math.isinf(b) or b == 0:
        return None
    return a / b


def markdown_report(results: list[RunResult], eval_every: int, eval_episodes: int) -> str:
    summary = summarize(results)
    algorithms = list(dict.fromkeys(r.algorithm for r in results))
    frameworks = list(dict.fromkeys(r.framework for r in results))
    lines = [
        "| algorithm | env (threshold) | framework | seeds reaching it | env steps to it | "
        "seconds to it | final return | training seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    for algorithm in algorithms:
        for framework in frameworks:
            s = summary.get((algorithm, framework))
            if s is None:
                continue
            name = LABELS[framework]
            w = WORKLOADS[algorithm]
            row = f"| {w.algorithm} | {w.env_id} ({w.threshold:.0f}) | {name} |"
            if s["ran"] == 0:
                why = "; ".join(dict.fromkeys(r.note for r in s["runs"]))
                status = s["runs"][0].status
                lines.append(f"{row} {status} | | | | |")
                notes.append(f"{algorithm} on {name}: {status}: {why}")
                continue
            lines.append(
                f"{row} {s['reached']}/{s['ran']} | {_fmt(s['steps'])} | "
                f"{_fmt(s['seconds'], 1)} | {_fmt(s['final'], 1)} | "
                f"{_fmt(s['train_seconds'], 1)} |"
            )
            for r in s["runs"]:
                if r.status != "ok":
                    notes.append(f"{algorithm} on {name}, seed {r.seed}: {r.status}: {r.note}")
    ratios = []
    for algorithm in algorithms:
        ember = summary.get((algorithm, "ember"), {}).get("seconds")
        for other in ("sb3", "rllib"):
            theirs = summary.get((algorithm, other), {}).get("seconds")
            if theirs is None:
                continue
            ratio = _ratio(ember, theirs)
            target = WALL_CLOCK_TARGETS.get((algorithm, other))
            if ratio is None or target is None:
                status = "–"
            else:
                status = "pass" if ratio <= target else "miss"
            ratios.append(
                f"| {algorithm} | Ember/{LABELS[other]} | {_fmt(ratio, 2)} | "
                f"{'–' if target is None else f'<= {target}'} | {status} |"
            )
    if ratios:
        lines += ["", "| workload | wall-clock to the threshold | ratio | target | status |"]
        lines += ["| --- | --- | --- | --- | --- |", *ratios]
    lines += [
        "",
        f"Medians over seeds. A greedy evaluation of {eval_episodes} episodes every "
        f"{eval_every:,} env steps (at the first training iteration at or past each "
        f"multiple); seconds exclude the evaluations. A seed that never reached "
        "the threshold counts as infinitely slow.",
    ]
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    return "\n".join(lines)


def plot(results: list[RunResult], path: str) -> None:
    """A row per workload, two panels each: greedy mean return against env steps and against
    seconds, a line per framework and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ember": "tab:red", "sb3": "tab:blue", "rllib": "tab:green"}
    rows = list(dict.fromkeys(r.algorithm for r in results if r.curve))
    fig, axes = plt.subplots(len(rows), 2, figsize=(13, 3.6 * len(rows)), squeeze=False)
    labelled = set()
    for r in results:
        if not r.curve:
            continue
        row = axes[rows.index(r.algorithm)]
        key = (r.algorithm, r.framework)
        kwargs = {
            "color": colors.get(r.framework),
            "alpha": 0.8,
            "marker": ".",
            "label": None if key in labelled else LABELS[r.framework],
        }
        labelled.add(key)
        returns = [e.mean_return for e in r.curve]
        row[0].plot([e.env_steps for e in r.curve], returns, **kwargs)
        row[1].plot([e.seconds for e in r.curve], returns, **kwargs)
    xlabels = ("env steps", "seconds (training, evaluations excluded)")
    for name, row in zip(rows, axes, strict=True):
        w = WORKLOADS[name]
        for ax, xlabel in zip(row, xlabels, strict=True):
            ax.axhline(w.threshold, color="grey", linewidth=0.8)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("greedy mean return")
            ax.grid(alpha=0.3)
        row[0].set_title(f"{w.algorithm} on {w.env_id}: return vs env steps")
        row[1].set_title(f"{w.algorithm} on {w.env_id}: return vs wall-clock")
        row[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def _workload(name: str, strict: bool = True) -> Any:
    """The workload's name as WORKLOADS spells it, whatever the case of ``name``."""
    found = next((w for w in WORKLOADS if w.lower() == name.lower()), None)
    if found is None and strict:
        raise SystemExit(f"unknown algorithm {name!r}: choose from {', '.join(WORKLOADS)}")
    return found


def _parse_budget(text: str | None, algorithms: list[str]) -> dict[str, int]:
    budget = {a: WORKLOADS[a].budget for a in algorithms}
    if text:
        if "=" not in text:
            return {a: int(float(text)) for a in algorithms}
        for item in text.split(","):
            name, value = item.split("=", 1)
            budget[_workload(name.strip())] = int(float(value))
    return budget


def _parse_overrides(items: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        framework, _, algorithm = key.partition(".")
        if framework not in FRAMEWORKS or _workload(algorithm, strict=False) is None:
            raise SystemExit(
                f"--override {item!r}: expected FRAMEWORK.ALGO=JSON, e.g. "
                "'sb3.PPO={\"n_epochs\": 10}' or "
                '\'rllib.PPO={"training": {"lr": 0.001}}\''
            )
        out[(framework, _workload(algorithm))] = json.loads(value)
    return out


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python benchmarks/rl.py --seeds 0,1,2 "
        "--ray-python /tmp/benchvenv/bin/python --plot benchmarks/rl.png",
    )
    p.add_argument(
        "--frameworks",
        default=",".join(FRAMEWORKS),
        help="which frameworks, in this order (default: %(default)s)",
    )
    p.add_argument(
        "--algorithms", default=",".join(ALGORITHMS), help="which algorithms (default: %(default)s)"
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    p.add_argument(
        "--budget",
        help="env steps per run: N for every algorithm, or "
        "PPO=N,DQN=N (default: PPO=100000,DQN=100000)",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=5000,
        help="greedy evaluation every N env steps (default: %(default)s)",
    )
    p.add_argument(
        "--eval-episodes",
        type=int,
        default=10,
        help="episodes per greedy evaluation (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="PyTorch threads per process, as OMP_NUM_THREADS (default: %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="seconds for one run's subprocess (default: %(default)s)",
    )
    p.add_argument(
        "--ray-python",
        help="interpreter with ray[rllib] 2.60 for the rllib runs (default: this one)",
    )
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="FW.ALGO=JSON",
        help="change a run's settings: SB3 keyword arguments, or config builder "
        'sections for ember/rllib, e.g. \'rllib.PPO={"training": {"lr": 0.001}}\'',
    )
    p.add_argument("--plot", help="write the learning curves to this PNG")
    p.add_argument("--json", help="write every run's result to this file")
    p.add_argument(
        "--worker", nargs=3, metavar=("FRAMEWORK", "ALGO", "SEED"), help=argparse.SUPPRESS
    )
    return p.parse_args(argv)


def _print_result(result: RunResult) -> None:
    """The result so far, so that a run killed at its timeout still leaves its curve."""
    out = {**asdict(result), "env_steps_evaluated": result.curve[-1].env_steps}
    print(RESULT_MARKER + json.dumps(out), flush=True)


def _worker(args: argparse.Namespace) -> None:
    framework, algorithm, seed = args.worker
    budget = _parse_budget(args.budget, [algorithm])[algorithm]
    override = json.loads(args.override[0]) if args.override else None
    result = run_training(
        framework,
        algorithm,
        int(seed),
        budget,
        args.eval_every,
        args.eval_episodes,
        override,
        on_evaluation=_print_result,
    )
    print(RESULT_MARKER + json.dumps(asdict(result)), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        _worker(args)
        return 0
    frameworks = _split(args.frameworks)
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        raise SystemExit(f"unknown framework(s) {sorted(unknown)}: choose from {FRAMEWORKS}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    algorithms = [_workload(a) for a in _split(args.algorithms)]
    budget = _parse_budget(args.budget, algorithms)
    overrides = _parse_overrides(args.override)
    results: list[RunResult] = []
    for seed in (int(s) for s in _split(args.seeds)):
        for algorithm in algorithms:
            for framework in frameworks:
                worker_args = [
                    "--worker",
                    framework,
                    algorithm,
                    str(seed),
                    "--budget",
                    str(budget[algorithm]),
                    "--eval-every",
                    str(args.eval_every),
                    "--eval-episodes",
                    str(args.eval_episodes),
                ]
                if (framework, algorithm) in overrides:
                    worker_args += ["--override", json.dumps(overrides[(framework, algorithm)])]
                t0, load = time.perf_counter(), os.getloadavg()[0]
                raw = _run_subprocess(
                    _python_for(framework, args.ray_python),
                    worker_args,
                    args.timeout,
                    _worker_env(framework, args.threads),
                )
                raw.update(framework=framework, algorithm=algorithm, seed=seed)
                raw.setdefault("budget", budget[algorithm])
                result = RunResult.from_dict(raw)
                results.append(result)
                hit = result.first_reaching()
                print(
                    f"  {algorithm} {framework} seed {seed}: {result.status} "
                    f"final={_fmt(result.final_return, 1)} "
                    f"{WORKLOADS[algorithm].threshold:.0f} at "
                    f"{hit.env_steps if hit else '-'} steps / "
                    f"{f'{hit.seconds:.1f}' if hit else '-'} s "
                    f"({time.perf_counter() - t0:.0f} s, load {load:.1f}) {result.note}",
                    flush=True,
                )
    print(f"load average at end: {os.getloadavg()[0]:.2f}\n")
    print(markdown_report(results, args.eval_every, args.eval_episodes))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in results], f, indent=1)
    if args.plot:
        plot(results, args.plot)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
