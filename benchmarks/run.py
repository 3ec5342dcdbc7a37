#!/usr/bin/env python
"""Run the Ember-vs-Ray benchmarks and print a comparison table.

    python benchmarks/run.py [--only NAME,...] [--repeat N] [--frameworks ember,ray]
                             [--json out.json] [--timeout S] [--python PATH] [--list]

Every (workload, framework) pair runs in a fresh subprocess
(``python benchmarks/workloads.py FRAMEWORK WORKLOAD --repeat N``) started in a new
session with a unique EMBER_BENCH_TAG environment value. Frameworks are interleaved per
workload (ember, ray, next workload, ...) so that both see the same machine conditions.
After each subprocess ends (or is killed on timeout) every process still alive that
carries its tag or its session id is killed by PID, and reported as left behind.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import workloads as wl  # noqa: E402  (the workload table; imports nothing heavy)

WORKLOAD_SCRIPT = os.path.join(HERE, "workloads.py")
REPO_SRC = os.path.join(os.path.dirname(HERE), "src")
DEFAULT_TIMEOUT = 300.0


# --------------------------------------------------------------------------- targets


def better_factor(value, other, better):
    """>1 means `value` is better than `other`."""
    if value is None or other is None:
        return None
    if better == "higher":
        return value / other if other else None
    return other / value if value else None


class VsRay:
    """Ember must beat Ray by `factor` (in the metric's better direction)."""

    needs_ray = True

    def __init__(self, factor, text):
        self.factor, self.text = factor, text

    def check(self, metric, ember, ray):
        f = better_factor(_median(ember, metric), _median(ray, metric), _better(ember, metric))
        return None if f is None else f >= self.factor


class VsOwnRef:
    """The metric must be at least `factor` times as good as a reference measured in the same
    process (e.g. put bandwidth vs memcpy bandwidth)."""

    needs_ray = False

    def __init__(self, ref_metric, factor, text):
        self.ref_metric, self.factor, self.text = ref_metric, factor, text

    def check(self, metric, res, _unused=None):
        f = better_factor(_median(res, metric), _median(res, self.ref_metric), _better(res, metric))
        return None if f is None else f >= self.factor


class AtLeast:
    needs_ray = False

    def __init__(self, value, text):
        self.value, self.text = value, text

    def check(self, metric, res, _unused=None):
        v = _median(res, metric)
        return None if v is None else v >= self.value


class ZeroCopy:
    """get must return a read-only array and be >= 10x faster than a memcpy of the same bytes.
    (Whether two gets return the same buffer is reported but not required: separate mappings
    of one shared-memory object are zero-copy too, yet have different addresses.)"""

    needs_ray = False
    text = "zero-copy: read-only, >=10x memcpy"

    def check(self, metric, res, _unused=None):
        v, ref = _median(res, metric), _median(res, "memcpy_copyto_get")
        if v is None or ref is None:
            return None
        return bool(res.get("info", {}).get("readonly") and v >= 10 * ref)


TARGETS = {
    "startup": VsRay(15, "<= 1/15 of ray"),
    "idle_memory": VsRay(5, "<= 1/5 of ray"),
    "tasks_sync": VsRay(5, ">= 5x ray"),
    "tasks_async": VsRay(3, ">= 3x ray"),
    "task_chain": VsRay(3, ">= 3x ray"),
    "nested_tasks": VsRay(3, ">= 3x ray"),
    "actor_sync": VsRay(3, ">= 3x ray"),
    "actor_async": VsRay(2, ">= 2x ray"),
    "wait_1k": VsRay(3, ">= 3x ray"),
    "wait_1k_tasks": VsRay(3, ">= 3x ray"),
    "put_100mb": VsOwnRef("memcpy_copyto", 0.9, ">= 0.9x memcpy_copyto"),
    "get_100mb": ZeroCopy(),
    "tiny_tasks": VsOwnRef("pool_apply_async", 0.5, "<= 2x pool_apply_async"),
    "matmul_speedup_k8": AtLeast(1.8, ">= 1.8x at k=8"),
}


def _metric(res, name):
    if not res:
        return None
    return res.get("metrics", {}).get(name)


def _median(res, name):
    m = _metric(res, name)
    return None if m is None else m["median"]


def _better(res, name):
    m = _metric(res, name)
    return None if m is None else m["better"]


# --------------------------------------------------------------------------- processes


def _proc_stat(pid):
    """(state, session id) of a Linux process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[3])


def _proc_cmd(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return " ".join(f.read().decode(errors="replace").replace("\0", " ").split())[:120]
    except OSError:
        return "?"


def find_run_processes(tag, sid):
    """Live processes that belong to one benchmark subprocess: same session id, or the
    run's EMBER_BENCH_TAG in their environment (catches daemons that called setsid)."""
    needle = f"{wl.TAG_ENV}={tag}".encode()
    found = []
    if os.path.isdir("/proc"):
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            pid = int(entry)
            stat = _proc_stat(pid)
            if stat is None or stat[0] in ("Z", "X"):
                continue
            match = stat[1] == sid
            if not match:
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        match = needle in f.read().split(b"\0")
                except OSError:
                    pass
            if match:
                found.append(pid)
        return found
    try:  # non-Linux: psutil if available
        import psutil
    except ImportError:
        return found
    for p in psutil.process_iter(["pid"]):
        try:
            if p.pid != os.getpid() and p.environ().get(wl.TAG_ENV) == tag:
                found.append(p.pid)
        except (psutil.Error, OSError):
            pass
    return found


def _kill(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def reap_leftovers(tag, sid, grace=3.0):
    """Wait up to `grace` s for the run's processes to exit, then TERM and KILL them by PID.
    Returns descriptions of the processes that were still alive after the grace period."""
    deadline = time.monotonic() + grace
    pids = find_run_processes(tag, sid)
    while pids and time.monotonic() < deadline:
        time.sleep(0.2)
        pids = find_run_processes(tag, sid)
    if not pids:
        return []
    left = [f"{pid} {_proc_cmd(pid)}" for pid in pids]
    _kill(pids, signal.SIGTERM)
    deadline = time.monotonic() + 2.0
    while pids and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = find_run_processes(tag, sid)
    _kill(pids, signal.SIGKILL)
    try:
        os.killpg(sid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return left


def _parse(text, marker):
    found = None
    for line in text.splitlines():
        if line.startswith(marker):
            try:
                found = json.loads(line[len(marker) :])
            except ValueError:
                pass
    return found


def run_one(python, framework, workload, repeat, timeout, extra_env):
    tag = uuid.uuid4().hex
    env = dict(os.environ)
    env.update(extra_env)
    env[wl.TAG_ENV] = tag
    cmd = [python, WORKLOAD_SCRIPT, framework, workload, "--repeat", str(repeat)]
    timed_out = False
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            rc = proc.wait()
        wall = time.perf_counter() - t0
        leftovers = reap_leftovers(tag, proc.pid)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    res = _parse(stdout, wl.RESULT_MARKER)
    shut = _parse(stdout, wl.SHUTDOWN_MARKER)
    if res is None:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        why = f"Timeout: killed after {timeout:.0f}s" if timed_out else f"Crash: exit code {rc}"
        res = {"framework": framework, "workload": workload, "metrics": {}, "info": {}}
        res["notes"] = []
        res["error"] = f"{why}, no result; stderr: {tail[-400:]}"
    problems = []
    if timed_out and res.get("error") is None:
        problems.append(f"killed after {timeout:.0f}s timeout (after reporting its result)")
    if shut is not None and not shut.get("ok"):
        problems.append(f"shutdown failed: {shut.get('error')}")
    if leftovers:
        problems.append(f"{len(leftovers)} process(es) left behind and killed: {leftovers[:5]}")
    res["problems"] = problems
    res["runner_wall_s"] = wall
    res["returncode"] = rc
    return res


# --------------------------------------------------------------------------- output


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a < 1000 and float(v).is_integer():
        return str(int(v))
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def cell(res, metric):
    if res is None:
        return "-"
    m = _metric(res, metric)
    if m is not None:
        return fmt(m["median"])
    if res.get("error"):
        return "error: " + res["error"].split(":")[0][:24]  # full message under Details
    return "-"


def status_of(target, metric, results):
    ember, ray = results.get("ember"), results.get("ray")
    if target.needs_ray:
        if ember is None or ray is None:
            return "n/a"
        ok = target.check(metric, ember, ray)
    else:
        ok = target.check(metric, ember) if ember is not None else None
        if ember is None or ok is None:
            r = target.check(metric, ray) if ray is not None else None
            base = "n/a" if ember is None else "MISS"
            return base if r is None else f"{base} (ray: {'PASS' if r else 'MISS'})"
    if ok is None:
        return "MISS"  # ember errored on this workload
    return "PASS" if ok else "MISS"


def build_rows(selected, frameworks, results):
    rows = []
    for name in selected:
        w = wl.WORKLOADS[name]
        per_fw = {fw: results.get((name, fw)) for fw in frameworks}
        for m in w.metrics:
            ember, ray = per_fw.get("ember"), per_fw.get("ray")
            ratio = None
            if not m.ref and ember is not None and ray is not None:
                ratio = better_factor(_median(ember, m.name), _median(ray, m.name), m.better)
            target = TARGETS.get(m.name)
            rows.append(
                {
                    "workload": name,
                    "metric": m.name,
                    "unit": m.unit + (" (ref)" if m.ref else ""),
                    "values": {fw: _median(per_fw[fw], m.name) for fw in frameworks},
                    "cells": {fw: cell(per_fw[fw], m.name) for fw in frameworks},
                    "ember_vs_ray": ratio,
                    "target": target.text if target else "",
                    "status": status_of(target, m.name, per_fw) if target else "",
                }
            )
    return rows


def print_table(rows, frameworks):
    headers = ["metric", "unit"] + frameworks
    if "ember" in frameworks and "ray" in frameworks:
        headers.append("ember/ray")
    headers += ["target", "status"]
    table = []
    for r in rows:
        line = [r["metric"], r["unit"]] + [r["cells"][fw] for fw in frameworks]
        if "ember/ray" in headers:
            line.append("-" if r["ember_vs_ray"] is None else f"{r['ember_vs_ray']:.2f}x")
        line += [r["target"] or "-", r["status"] or "-"]
        table.append(line)
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *table, strict=False)]
    right = set(range(2, 2 + len(frameworks) + ("ember/ray" in headers)))

    def render(line):
        return "  ".join(
            str(x).rjust(w) if i in right else str(x).ljust(w)
            for i, (x, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()

    print(render(headers))
    print("  ".join("-" * w for w in widths))
    for line in table:
        print(render(line))
    if "ember/ray" in headers:
        print("ember/ray: >1 means Ember is better (ray/ember for times and memory, ember/ray for")
        print("rates). '(ref)' rows are reference measurements (memcpy, Pool), not the framework.")


def print_details(selected, frameworks, results):
    lines = []
    for name in selected:
        for fw in frameworks:
            res = results.get((name, fw))
            if res is None:
                continue
            items = []
            if res.get("error"):
                items.append(f"ERROR: {res['error']}")
            items += res.get("notes", [])
            items += [f"WARNING: {p}" for p in res.get("problems", [])]
            for item in items:
                lines.append(f"  {name} [{fw}] {item}")
    if lines:
        print("\nDetails:")
        print("\n".join(lines))


# --------------------------------------------------------------------------- main


def framework_env(framework):
    env = {}
    if framework == "ray":
        env.setdefault("RAY_USAGE_STATS_ENABLED", os.environ.get("RAY_USAGE_STATS_ENABLED", "0"))
    return env


def _loadavg():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def installed(module, python):
    if python == sys.executable:
        return importlib.util.find_spec(module) is not None
    code = f"import importlib.util,sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Ember vs Ray benchmarks", formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated workload (or metric) names")
    parser.add_argument("--repeat", type=int, default=5, help="measured runs per workload")
    parser.add_argument("--frameworks", default="ember,ray", help="default: ember,ray")
    parser.add_argument("--json", dest="json_out", help="write all results to this file")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="s per run")
    parser.add_argument("--python", default=sys.executable, help="interpreter for workloads")
    parser.add_argument("--list", action="store_true", help="list workloads and exit")
    args = parser.parse_args(argv)

    if args.list:
        for w in wl.WORKLOADS.values():
            metrics = ", ".join(f"{m.name} [{m.unit}]" for m in w.metrics)
            print(f"{w.name}: {metrics}\n    {w.doc}")
        return 0

    metric_owner = {m.name: w.name for w in wl.WORKLOADS.values() for m in w.metrics}
    if args.only:
        selected = []
        for name in (x.strip() for x in args.only.split(",") if x.strip()):
            owner = name if name in wl.WORKLOADS else metric_owner.get(name)
            if owner is None:
                parser.error(f"unknown workload {name!r}; choose from {', '.join(wl.WORKLOADS)}")
            if owner not in selected:
                selected.append(owner)
    else:
        selected = list(wl.WORKLOADS)

    frameworks = []
    env_for = {}
    for fw in (x.strip() for x in args.frameworks.split(",") if x.strip()):
        env = framework_env(fw)
        if not installed(fw, args.python):
            if fw == "ember" and os.path.isdir(os.path.join(REPO_SRC, "ember")):
                path = os.environ.get("PYTHONPATH")
                env["PYTHONPATH"] = REPO_SRC + (os.pathsep + path if path else "")
                print(f"note: ember is not installed; using {REPO_SRC} on PYTHONPATH")
            elif fw != "ember":
                print(f"note: {fw} is not installed for {args.python}; skipping its column")
                continue
        frameworks.append(fw)
        env_for[fw] = env
    if not frameworks:
        parser.error("no framework to run")

    total = len(selected) * len(frameworks)
    load_start = _loadavg()
    print(
        f"Running {len(selected)} workload(s) x {', '.join(frameworks)}, repeat={args.repeat}, "
        f"timeout={args.timeout:.0f}s, python={args.python}, cpus={os.cpu_count()}, "
        f"load average {load_start}",
        flush=True,
    )
    results = {}
    runs = []
    i = 0
    for name in selected:
        w = wl.WORKLOADS[name]
        for fw in frameworks:
            i += 1
            env = dict(env_for[fw])
            if w.single_thread_blas:
                env.update({k: "1" for k in wl.THREAD_ENV})
            print(f"[{i}/{total}] {name} / {fw} ...", end=" ", flush=True)
            res = run_one(args.python, fw, name, args.repeat, args.timeout, env)
            if w.single_thread_blas:
                note = "numpy single-threaded: OMP/OPENBLAS/MKL_NUM_THREADS=1 set by run.py"
                res.setdefault("notes", []).insert(0, note)
            results[(name, fw)] = res
            runs.append(res)
            state = "error" if res.get("error") else "ok"
            extra = f" ({len(res['problems'])} warning(s))" if res.get("problems") else ""
            print(f"{state} in {res['runner_wall_s']:.1f}s{extra}", flush=True)

    load_end = _loadavg()
    print(f"load average at the end: {load_end} (other jobs on the machine skew results)")
    print()
    rows = build_rows(selected, frameworks, results)
    print_table(rows, frameworks)
    print_details(selected, frameworks, results)

    if args.json_out:
        versions = {r["framework"]: r.get("version") for r in runs if r.get("version")}
        meta = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "python": args.python,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "repeat": args.repeat,
            "frameworks": frameworks,
            "versions": versions,
            "loadavg_start": load_start,
            "loadavg_end": load_end,
        }
        with open(args.json_out, "w") as f:
            json.dump({"meta": meta, "runs": runs, "rows": rows}, f, indent=2)
        print(f"\nwrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
