#!/usr/bin/env python
"""Tune benchmark workloads for Ember and Ray Tune, run one workload per fresh process.

Usage::

    python benchmarks/tune_workloads.py FRAMEWORK WORKLOAD [--repeat N]
    python benchmarks/run.py --tune          # all of them, ember and ray, in a table

Each workload imports the framework as ``ray``, uses ``ray.tune``'s public API only (the same
code for both), writes its experiments to a temporary folder with Tune's default loggers
(JSON, CSV and TensorBoard when tensorboardX is installed) and prints its table quietly
(``verbose=0``). Ray needs ``pip install "ray[tune]"`` in the benchmark's environment.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import workloads as wl  # noqa: E402  (registry types and the BENCH_RESULT driver)

TUNE_WORKLOADS: dict[str, wl.Workload] = {}


def tune_workload(name, metrics, doc, **kwargs):
    def deco(fn):
        TUNE_WORKLOADS[name] = wl.Workload(
            name, fn, tuple(wl.Metric(*m) for m in metrics), doc, **kwargs
        )
        return fn

    return deco


def _storage(ctx):
    folder = tempfile.mkdtemp(prefix="tune-bench-")
    ctx.defer(lambda: shutil.rmtree(folder, ignore_errors=True))
    return folder


def _fit(ctx, trainable, storage, **tune_config):
    """``Tuner(...).fit()``; the config names the framework, whose ``tune`` the trial uses."""
    tune = _tune({"fw": ctx.framework})
    param_space = {"fw": ctx.framework, **tune_config.pop("param_space", {})}
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(**tune_config),
        run_config=tune.RunConfig(storage_path=storage, verbose=0),
    )
    return tuner.fit()


def no_work(config):
    tune = _tune(config)
    for i in range(10):
        tune.report({"score": i})


@tune_workload(
    "tune_overhead",
    [("tune_500_trials", "s", "lower")],
    "Tuner.fit() of 500 trials of a function that reports 10 results and does no work, "
    "1 CPU each on 2 CPUs (wall time of fit())",
    warmup=False,
    max_repeat=3,
)
def tune_overhead(ctx):
    return _timed_trials(ctx, no_work, 500, "tune_500_trials")


def _timed_trials(ctx, trainable, n, metric):
    """A sampler timing ``fit()`` of ``n`` trials of ``trainable``, which must all succeed."""
    storage = _storage(ctx)

    def once():
        t0 = time.perf_counter()
        results = _fit(ctx, trainable, storage, num_samples=n)
        elapsed = wl._elapsed(t0)
        wl._check(len(results) == n and results.num_errors == 0, f"{n} trials without errors")
        return {metric: elapsed}

    return once


def one_second(config):
    tune = _tune(config)
    for i in range(10):
        end = time.perf_counter() + 0.1
        while time.perf_counter() < end:  # CPU work, not sleep: the two CPUs are really used
            pass
        tune.report({"step": i})


@tune_workload(
    "tune_efficiency",
    [("tune_40x1s", "s", "lower")],
    "40 trials of 1 s of CPU work each (10 reports of 0.1 s) on 2 CPUs: ideal 20 s",
    warmup=False,
    max_repeat=3,
)
def tune_efficiency(ctx):
    ctx.info["ideal_s"] = 20.0
    return _timed_trials(ctx, one_second, 40, "tune_40x1s")


def many_results(config):
    tune = _tune(config)
    for i in range(config["n"]):
        tune.report({"i": i, "loss": 1.0 / (i + 1), "acc": i / config["n"]})


@tune_workload(
    "tune_throughput",
    [("tune_results_per_s", "results/s", "higher")],
    "2 trials reporting 5,000 results each as fast as they can, with the JSON, CSV and "
    "TensorBoard loggers on: results per second over the whole fit()",
    max_repeat=3,
)
def tune_throughput(ctx):
    storage = _storage(ctx)
    n = 5000

    def once():
        t0 = time.perf_counter()
        results = _fit(
            ctx,
            many_results,
            storage,
            param_space={"n": n, "k": _tune({"fw": ctx.framework}).grid_search([0, 1])},
        )
        elapsed = wl._elapsed(t0)
        wl._check(all(r.metrics["i"] == n - 1 for r in results), "every result arrived")
        return {"tune_results_per_s": 2 * n / elapsed}

    return once


def first_report(config):
    tune = _tune(config)
    tune.report({"started": time.time()})


@tune_workload(
    "tune_first_trial",
    [("tune_first_trial_s", "s", "lower")],
    "time from Tuner.fit() to the first trial's code running (its first line reads the "
    "clock), with the framework already started",
)
def tune_first_trial(ctx):
    storage = _storage(ctx)

    def once():
        t0 = time.time()
        results = _fit(ctx, first_report, storage)
        return {"tune_first_trial_s": results[0].metrics["started"] - t0}

    return once


def _tune(config):
    import importlib

    return importlib.import_module(config["fw"] + ".tune")


def main(argv=None):
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (HERE, os.environ.get("PYTHONPATH", "")) if p
    )
    return wl.main(argv, registry=TUNE_WORKLOADS, description=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
