#!/usr/bin/env python
"""Observability benchmark workloads (task events, state API, timeline, dashboard) for Ember
and Ray, one workload per fresh process.

Usage::

    python benchmarks/observability.py FRAMEWORK WORKLOAD [--repeat N]
    python benchmarks/run.py --observability     # all of them, ember and ray, in a table

Both frameworks run with their dashboard on (Ray needs ``pip install "ray[default]"``), and
the same code drives both: ``ray.util.state``, ``ray.timeline`` and the dashboard's URL from
``init()``'s context.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import workloads as wl  # noqa: E402  (registry types and the BENCH_RESULT driver)

OBS_WORKLOADS: dict[str, wl.Workload] = {}
MB = 1024 * 1024
N_TASKS = 100_000


def obs_workload(name, metrics, doc, **kwargs):
    def deco(fn):
        OBS_WORKLOADS[name] = wl.Workload(
            name, fn, tuple(wl.Metric(*m) for m in metrics), doc, init=False, **kwargs
        )
        return fn

    return deco


def _noop(ray):
    @ray.remote
    def noop():
        return None

    return noop


def _rates(ray, noop, n_sync=500, n_async=2000):
    t0 = time.perf_counter()
    for _ in range(n_sync):
        ray.get(noop.remote())
    sync = n_sync / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    ray.get([noop.remote() for _ in range(n_async)])
    return sync, n_async / (time.perf_counter() - t0)


@obs_workload(
    "events_overhead",
    [
        ("sync_on_over_off", "ratio", "higher"),
        ("async_on_over_off", "ratio", "higher"),
    ],
    "tasks sync (500 get-after-submit) and async (2000 then get), with task events and the "
    "dashboard on, over the same with both off (include_dashboard=False and "
    "enable_task_events=False); each sample starts both sessions afresh, which one first in "
    "turn",
    warmup=False,
)
def events_overhead(ctx):
    ray = ctx.ray

    def measure(on):
        ray.init(num_cpus=wl.NUM_CPUS, include_dashboard=on)
        try:
            noop = _noop(ray)
            if not on:
                noop = noop.options(enable_task_events=False)
            _rates(ray, noop, 100, 200)  # warm the workers
            return _rates(ray, noop)
        finally:
            ray.shutdown()

    turn = [0]

    def once():
        # In turn which session goes first: the second one starts while the first one's
        # processes are still ending, which alone made it 20-50 % slower.
        turn[0] += 1
        if turn[0] % 2:
            on, off = measure(True), measure(False)
        else:
            off, on = measure(False), measure(True)
        ctx.info.setdefault("on", []).append([round(x) for x in on])
        ctx.info.setdefault("off", []).append([round(x) for x in off])
        return {"sync_on_over_off": on[0] / off[0], "async_on_over_off": on[1] / off[1]}

    return once


def _mine(ray, key):
    """This session's processes whose command line or name holds ``key`` (other sessions
    may run on the machine)."""
    found = []
    for p in wl.framework_processes(ray):
        try:
            if key in " ".join(p.cmdline()) or key in p.name():
                found.append(p)
        except Exception:
            continue
    if not found:
        raise RuntimeError(f"no process of this session matches {key!r}")
    return found


def _dashboard_rss(ray):
    """RSS of the dashboard process and its children (Ray's dashboard runs some modules in
    processes of their own), not its per-node agent."""
    key = "ember::dashboard" if ray.__name__ == "ember" else "dashboard/dashboard.py"
    heads = [p for p in _mine(ray, key) if "agent" not in " ".join(p.cmdline())]
    tree = {q.pid: q for p in heads for q in (p, *p.children(recursive=True))}
    return sum(q.memory_info().rss for q in tree.values())


def _events_pid(ray):
    """The process that keeps the task events: Ember's node manager, Ray's GCS."""
    return _mine(ray, "ember::node" if ray.__name__ == "ember" else "gcs_server")[0].pid


def _rss(pid):
    import psutil

    return psutil.Process(pid).memory_info().rss


def _finished(summary):
    """FINISHED tasks in ``summarize_tasks()``'s answer (Ray's dict: ``{"cluster": {"summary":
    {name: {"state_counts": ...}}}}``)."""
    groups = summary["cluster"]["summary"]
    return sum(g["state_counts"].get("FINISHED", 0) for g in groups.values())


def _median_time(fn, n=5):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _page_load_s(url):
    """Seconds from navigation to the load event of the dashboard's first page, in headless
    Chromium (Debian's, through selenium)."""
    src = os.path.join(os.path.dirname(HERE), "src")
    if src not in sys.path:  # (Ember's helper drives either dashboard, also in Ray's run)
        sys.path.append(src)
    from ember.testing import headless_chromium

    with headless_chromium(tempfile.mkdtemp(prefix="bench-chromium-")) as driver:
        loads = []
        for _ in range(3):
            driver.get("about:blank")
            driver.get(url)
            timing = driver.execute_script(
                "const n = performance.getEntriesByType('navigation')[0];"
                "return [n.loadEventEnd, n.startTime];"
            )
            loads.append((timing[0] - timing[1]) / 1000)
        return statistics.median(loads)


@obs_workload(
    "obs_100k",
    [
        ("run_100k_s", "s", "lower"),
        ("list_tasks_s", "s", "lower"),
        ("list_filtered_s", "s", "lower"),
        ("summarize_tasks_s", "s", "lower"),
        ("timeline_s", "s", "lower"),
        ("dashboard_rss_mb", "MB", "lower"),
        ("events_growth_mb", "MB", "lower"),
        ("page_load_s", "s", "lower"),
    ],
    f"{N_TASKS:,} no-op tasks (in batches of 10,000), then: list_tasks (limit 100), "
    "list_tasks filtered on state=FINISHED, summarize_tasks, timeline written to a file "
    "(medians of 3-5 calls); the dashboard's first page load in headless Chromium; then the "
    "dashboard process's RSS, and the growth of the process that keeps task events (Ember's "
    "node, Ray's GCS) over the run",
    warmup=False,
    max_repeat=1,
)
def obs_100k(ctx):
    ray = ctx.ray
    from importlib import import_module

    state = import_module(f"{ray.__name__}.util.state")

    def once():
        info = ray.init(num_cpus=wl.NUM_CPUS, include_dashboard=True)
        ctx.defer(ray.shutdown)
        if ray.__name__ == "ray":  # (its state API finds other Ray sessions on the machine too)
            os.environ["RAY_ADDRESS"] = info.address_info["address"]
        noop = _noop(ray)
        ray.get([noop.remote() for _ in range(100)])
        events_pid = _events_pid(ray)
        before = _rss(events_pid)
        t0 = time.perf_counter()
        for _ in range(N_TASKS // 10_000):
            ray.get([noop.remote() for _ in range(10_000)])
        run_s = time.perf_counter() - t0
        # Events reach the store in batches: wait until all are in, or (Ray's summary stops
        # at 10,000 rows) until the count stops growing.
        deadline, finished, last = time.monotonic() + 120, 0, -1
        while finished < N_TASKS and (finished == 0 or finished != last):
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
            summary = state.summarize_tasks(raise_on_missing_output=False)
            last, finished = finished, _finished(summary)
        ctx.info["finished_seen"] = finished
        list_s = _median_time(lambda: state.list_tasks(limit=100, raise_on_missing_output=False))
        filtered_s = _median_time(
            lambda: state.list_tasks(
                filters=[("state", "=", "FINISHED")], limit=100, raise_on_missing_output=False
            )
        )
        summarize_s = _median_time(lambda: state.summarize_tasks(raise_on_missing_output=False))
        trace = os.path.join(tempfile.mkdtemp(prefix="bench-timeline-"), "timeline.json")
        timeline_s = _median_time(lambda: ray.timeline(filename=trace), n=3)
        ctx.info["timeline_mb"] = round(os.path.getsize(trace) / MB, 1)
        url = info.dashboard_url if hasattr(info, "dashboard_url") else info["webui_url"]
        page_s = _page_load_s(url if url.startswith("http") else f"http://{url}")
        dashboard_rss = _dashboard_rss(ray) / MB  # (after serving its page)
        growth = (_rss(events_pid) - before) / MB
        return {
            "run_100k_s": run_s,
            "list_tasks_s": list_s,
            "list_filtered_s": filtered_s,
            "summarize_tasks_s": summarize_s,
            "timeline_s": timeline_s,
            "dashboard_rss_mb": dashboard_rss,
            "events_growth_mb": growth,
            "page_load_s": page_s,
        }

    return once


if __name__ == "__main__":
    sys.exit(wl.main(registry=OBS_WORKLOADS, description=__doc__.split("\n\n")[0]))
