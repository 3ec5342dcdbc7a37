#!/usr/bin/env python
"""How ember.rllib's sampling scales over actors (issue 10, "Scaling"), beside RLlib 2.60.

    python benchmarks/rl_scaling.py [--frameworks ember,rllib] [--ray-python PY] [--json F]
    python benchmarks/rl_scaling.py --es-nodes 1,2,4 [--json F]

The first measures PPO's sampled env steps per second with 1 and 2 env runners on this
machine (target on 2 cores: 2 runners >= 1.6x one). PPO's iterations sample 4,000 steps and
make one SGD pass over one minibatch, so that sampling dominates; one warm-up iteration, then
5 measured. The time is RLlib's ``env_runner_sampling_timer`` where the result has it, else the
whole iteration.

``--es-nodes`` measures Evolution Strategies' evaluated episodes per second on a multi-node
``ember.testing.Cluster``: a head that runs nothing and N nodes of one CPU each, so that the N
ES runners (one CPU each) land one per node. The env is Pendulum-v1, whose episodes are always
200 steps, so an episode is the same work whatever the policy has learnt. The nodes are
processes of this machine, so the rate can only grow up to its core count.

Each measurement runs in its own fresh process (``rl.py``'s workers and reaper).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import rl  # noqa: E402  benchmarks/rl.py: configs, workers, the subprocess reaper

RUNNERS = (1, 2)
TARGET = 1.6
PPO_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "ember": {"training": {"train_batch_size": 4000, "minibatch_size": 4000, "num_epochs": 1}},
    "rllib": {
        "training": {
            "train_batch_size_per_learner": 4000,
            "minibatch_size": 4000,
            "num_epochs": 1,
        }
    },
}
ES_ENV = "Pendulum-v1"
ES_ITERATIONS = 8
# 40 perturbed episodes (80 with the mirrored ones) per iteration; a smaller noise table than
# the default, so that starting the nodes is quick (the table is put once, timing comes after).
ES_SETTINGS = {"episodes_per_batch": 40, "train_batch_size": 8000, "noise_size": 2_000_000}


def run_runners(framework: str, runners: int, iterations: int = 5) -> dict[str, Any]:
    """Sampled env steps per second of PPO with ``runners`` env runners."""
    out: dict[str, Any] = {"framework": framework, "runners": runners}
    try:
        rl._import_check(framework, "PPO")
    except ModuleNotFoundError as e:
        return {**out, "status": "skipped", "note": f"cannot import {e.name} ({e})"}
    settings = {**PPO_SETTINGS[framework], "env_runners": {"num_env_runners": runners}}
    config = rl.build_config(framework, "PPO", 0, settings)
    runtime = rl._runtime(framework)
    runtime.init()
    try:
        algo = config.build_algo()
        algo.train()
        steps, seconds, source = 0, 0.0, "iteration"
        for _ in range(iterations):
            result = algo.train()
            steps += int(result["env_runners"]["num_env_steps_sampled"])
            timer = result.get("timers", {}).get("env_runner_sampling_timer")
            if timer is not None:
                seconds, source = seconds + timer, "env_runner_sampling_timer"
            else:
                seconds += result["time_this_iter_s"]
        algo.stop()
    finally:
        runtime.shutdown()
    return {**out, "status": "ok", "rate": steps / seconds, "steps": steps, "timer": source}


def run_es_nodes(nodes: int) -> dict[str, Any]:
    """ES's evaluated episodes per second on a cluster of ``nodes`` one-CPU nodes."""
    import ember
    from ember.rllib.algorithms.es import ESConfig
    from ember.testing import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=1)
        cluster.connect()
        algo = (
            ESConfig()
            .environment(ES_ENV)
            .env_runners(num_env_runners=nodes, num_cpus_per_env_runner=1)
            .training(**ES_SETTINGS)
            .debugging(seed=0)
            .build_algo()
        )
        algo.train()  # warm-up: the noise table reaches every node
        episodes, seconds = 0, 0.0
        for _ in range(ES_ITERATIONS):
            result = algo.train()
            episodes += int(result["env_runners"]["num_episodes"])
            seconds += result["time_this_iter_s"]
        algo.stop()
    finally:
        ember.shutdown()
        cluster.shutdown()
    rate = episodes / seconds
    return {
        "framework": "ember",
        "nodes": nodes,
        "status": "ok",
        "rate": rate,
        "episodes": episodes,
    }


def report(rows: list[dict[str, Any]], key: str, unit: str, target: str) -> str:
    lines = [f"| framework | {key} | {unit} | vs 1 |", "| --- | --- | --- | --- |"]
    notes = []
    base: dict[str, float] = {}
    for row in rows:
        name = rl.LABELS[row["framework"]]
        if row.get("status") != "ok":
            lines.append(f"| {name} | {row[key]} | {row.get('status')} | |")
            notes.append(f"{name}, {key} {row[key]}: {row.get('note')}")
            continue
        if row[key] == 1:
            base[row["framework"]] = row["rate"]
        speedup = rl._ratio(row["rate"], base.get(row["framework"]))
        lines.append(f"| {name} | {row[key]} | {row['rate']:,.0f} | {rl._fmt(speedup, 2)} |")
    lines += ["", target]
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--frameworks", default="ember,rllib", help="for the runner scaling")
    p.add_argument("--es-nodes", help="measure ES on clusters of these node counts, e.g. 1,2,4")
    p.add_argument("--ray-python", help="the interpreter of a virtualenv with ray[rllib]")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads per process")
    p.add_argument("--timeout", type=float, default=600.0, help="limit per measurement (s)")
    p.add_argument("--json", help="write the rows to this file")
    p.add_argument("--worker", nargs=2, metavar=("KIND", "ARG"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        kind, value = args.worker
        if kind == "es":
            out = run_es_nodes(int(value))
        else:
            out = run_runners(kind, int(value))
        print(rl.RESULT_MARKER + json.dumps(out), flush=True)
        return 0
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    if args.es_nodes:
        jobs = [("ember", "es", int(n), "nodes") for n in rl._split(args.es_nodes)]
    else:
        jobs = [
            (framework, framework, runners, "runners")
            for framework in rl._split(args.frameworks)
            for runners in RUNNERS
        ]
    rows = []
    for framework, kind, count, key in jobs:
        t0 = time.perf_counter()
        row = rl._run_subprocess(
            rl._python_for(framework, args.ray_python),
            ["--worker", kind, str(count)],
            args.timeout,
            rl._worker_env(framework, args.threads),
            script=__file__,
        )
        rows.append({"framework": framework, key: count, **row})
        print(f"  {framework} {key}={count}: {row} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.es_nodes:
        print(report(rows, "nodes", "ES episodes/s", "ES runners, one per one-CPU node."))
    else:
        target = f"Target: Ember with 2 runners >= {TARGET}x one runner."
        print(report(rows, "runners", "sampled env steps/s", target))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
