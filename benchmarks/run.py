#!/usr/bin/env python
"""Run the Ember-vs-Ray benchmarks and print a comparison table.

    python benchmarks/run.py [--cluster] [--only NAME,...] [--repeat N]
                             [--frameworks ember,ray] [--json out.json] [--md out.md]
                             [--timeout S] [--python PATH] [--list]

Without ``--cluster`` the single-node workloads of ``workloads.py`` run; with it, the
multi-node ones of ``cluster.py`` (each starts a cluster of several nodes on this machine:
``ember.testing.Cluster`` / ``ray.cluster_utils.Cluster``) and the table is printed in
markdown.

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
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cluster as cw  # noqa: E402  (the multi-node workload table; nothing heavy either)
import observability as ow  # noqa: E402  (the observability workload table; nothing heavy)
import tune_workloads as tw  # noqa: E402  (the Tune workload table; nothing heavy either)
import workloads as wl  # noqa: E402  (the workload table; imports nothing heavy)

WORKLOAD_SCRIPT = os.path.join(HERE, "workloads.py")
CLUSTER_SCRIPT = os.path.join(HERE, "cluster.py")
TUNE_SCRIPT = os.path.join(HERE, "tune_workloads.py")
OBS_SCRIPT = os.path.join(HERE, "observability.py")
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


class AtMost:
    needs_ray = False

    def __init__(self, value, text):
        self.value, self.text = value, text

    def check(self, metric, res, _unused=None):
        v = _median(res, metric)
        return None if v is None else v <= self.value


class AllOf:
    """Every one of several targets (each on its own is checked the same way)."""

    def __init__(self, *targets):
        self.targets = targets
        self.needs_ray = any(t.needs_ray for t in targets)
        self.text = ", ".join(t.text for t in targets)

    def check(self, metric, res, other=None):
        oks = [t.check(metric, res, other) for t in self.targets]
        return None if None in oks else all(oks)


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
    "compiled_dag": VsOwnRef("dag_actor_call", 5, "<= 1/5 of an actor call"),
    "wait_1k": VsRay(3, ">= 3x ray"),
    "wait_1k_tasks": VsRay(3, ">= 3x ray"),
    "wait_loop_1k": VsRay(3, ">= 3x ray"),
    "put_100mb": VsOwnRef("memcpy_copyto", 0.8, ">= 0.8x memcpy_copyto"),
    "task_return_100mb": VsOwnRef("memcpy_copyto_task", 0.8, ">= 0.8x memcpy_copyto_task"),
    "get_100mb": ZeroCopy(),
    "tiny_tasks": VsOwnRef("pool_apply_async", 0.5, "<= 2x pool_apply_async"),
    "matmul_speedup_k8": AtLeast(1.8, ">= 1.8x at k=8"),
    **{m: AtMost(1.08, "<= 1.08x ideal") for m, *_ in wl.makespan_metrics("makespan")},
}

_WITHIN = cw.NODE_TIMEOUT + 1.0
_WITHIN_TEXT = f"<= {_WITHIN:g} s (timeout {cw.NODE_TIMEOUT:g} s + 1 s)"
CLUSTER_TARGETS = {
    "spill_noop": VsRay(2, ">= 2x ray"),
    "spread_noop": VsRay(2, ">= 2x ray"),
    "transfer_100mb": VsOwnRef("loopback_100mb", 0.7, ">= 0.7x loopback"),
    "transfer_1gb": AllOf(
        VsOwnRef("loopback_1gb", 0.7, ">= 0.7x loopback"), AtLeast(1.0, ">= 1 GB/s")
    ),
    "kill_detect": AtMost(_WITHIN, _WITHIN_TEXT),
    "kill_recovery": AtMost(_WITHIN, _WITHIN_TEXT),
    "cutoff_detect": AtMost(_WITHIN, _WITHIN_TEXT),
    "cutoff_recovery": AtMost(_WITHIN, _WITHIN_TEXT),
    **{
        m: AtMost(1.2, "<= 1.2x ideal")
        for m, *_ in wl.makespan_metrics("cluster_makespan", cw.CLUSTER_MIXES)
    },
}


TUNE_TARGETS = {
    "tune_500_trials": VsRay(5, "<= 1/5 of ray"),
    "tune_40x1s": AtMost(22.0, "<= 22 s (ideal 20 s + 10 %)"),
    "tune_results_per_s": AtLeast(2000, ">= 2,000 results/s"),
    "tune_first_trial_s": AtMost(0.5, "<= 0.5 s"),
}


@dataclass(frozen=True)
class Group:
    """A set of workloads: the script that runs one, its table, and its targets."""

    name: str
    script: str
    workloads: dict
    targets: dict


SINGLE_NODE = Group("single-node", WORKLOAD_SCRIPT, wl.WORKLOADS, TARGETS)
MULTI_NODE = Group("multi-node", CLUSTER_SCRIPT, cw.CLUSTER_WORKLOADS, CLUSTER_TARGETS)
TUNE = Group("tune", TUNE_SCRIPT, tw.TUNE_WORKLOADS, TUNE_TARGETS)
OBS_TARGETS = {
    "sync_on_over_off": AtLeast(0.95, ">= 0.95 (within 5 %)"),
    "async_on_over_off": AtLeast(0.95, ">= 0.95 (within 5 %)"),
    "list_tasks_s": AtMost(0.5, "<= 0.5 s"),
    "list_filtered_s": AtMost(0.5, "<= 0.5 s"),
    "timeline_s": AtMost(2.0, "<= 2 s"),
    "dashboard_rss_mb": VsRay(10, "<= 1/10 of ray"),
    "page_load_s": AtMost(1.0, "<= 1 s"),
}
OBSERVABILITY = Group("observability", OBS_SCRIPT, ow.OBS_WORKLOADS, OBS_TARGETS)


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


@dataclass
class Finished:
    """What a worker process left: its exit code, output, whether it was killed at the
    timeout, the processes it left behind (killed), and its wall-clock seconds."""

    rc: int
    timed_out: bool
    stdout: str
    stderr: str
    leftovers: list
    wall: float


def run_tagged(cmd, extra_env, timeout):
    """Run ``cmd`` in a new session with ``extra_env`` and a fresh tag in ``TAG_ENV``; kill
    its session at ``timeout`` seconds, then kill what it left behind, by tag and session."""
    tag = uuid.uuid4().hex
    env = {**os.environ, **extra_env, wl.TAG_ENV: tag}
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
    return Finished(rc, timed_out, stdout, stderr, leftovers, wall)


def run_one(python, framework, workload, repeat, timeout, extra_env, script=WORKLOAD_SCRIPT):
    cmd = [python, script, framework, workload, "--repeat", str(repeat)]
    done = run_tagged(cmd, extra_env, timeout)
    rc, timed_out, stdout, stderr = done.rc, done.timed_out, done.stdout, done.stderr
    leftovers, wall = done.leftovers, done.wall
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


def censored(res, metric):
    """Did most samples of this metric hit the workload's time limit (so the median is only
    a bound)? Workloads count such samples in info["censored"]."""
    m = _metric(res, metric)
    if m is None:
        return False
    hits = res.get("info", {}).get("censored", {}).get(metric, 0)
    return 2 * hits > len(m.get("samples", []))


def cell(res, metric):
    if res is None:
        return "-"
    m = _metric(res, metric)
    if m is not None:
        bound = (">" if m["better"] == "lower" else "<") if censored(res, metric) else ""
        return bound + fmt(m["median"])
    if res.get("error"):
        return "error: " + res["error"].split(":")[0][:24]  # full message under Details
    return "-"


def status_of(target, metric, results, detailed=False):
    """Ember's PASS/MISS. ``detailed``: also the factor reached against an own reference and,
    for targets that do not need Ray, Ray's own result against the same target."""
    ember, ray = results.get("ember"), results.get("ray")
    if target.needs_ray:
        if ember is None or ray is None:
            return "n/a"
        ok = target.check(metric, ember, ray)
    else:
        ok = target.check(metric, ember) if ember is not None else None
        if ember is None or ok is None or detailed:
            r = target.check(metric, ray) if ray is not None else None
            base = "n/a" if ember is None else "MISS" if ok is None else _pass(ok)
            base += _ref_factors(target, metric, ember) if detailed else ""
            if r is None:
                return base
            return (
                f"{base} (ray: {_pass(r)}{_ref_factors(target, metric, ray) if detailed else ''})"
            )
    if ok is None:
        return "MISS"  # ember errored on this workload
    return _pass(ok)


def _pass(ok):
    return "PASS" if ok else "MISS"


def _ref_factors(target, metric, res):
    """' 0.42x' for each own-reference part of a target (how far the metric got)."""
    parts = target.targets if isinstance(target, AllOf) else (target,)
    out = ""
    for t in parts:
        if isinstance(t, VsOwnRef) and res is not None:
            f = better_factor(
                _median(res, metric), _median(res, t.ref_metric), _better(res, metric)
            )
            if f is not None:
                out += f" {f:.2f}x"
    return out


def build_rows(selected, frameworks, results, group=SINGLE_NODE, detailed=False):
    rows = []
    for name in selected:
        w = group.workloads[name]
        per_fw = {fw: results.get((name, fw)) for fw in frameworks}
        for m in w.metrics:
            ember, ray = per_fw.get("ember"), per_fw.get("ray")
            ratio, bound = None, ""
            if not m.ref and ember is not None and ray is not None:
                ratio = better_factor(_median(ember, m.name), _median(ray, m.name), m.better)
                # A median that is only a bound makes the ratio one too.
                if censored(ray, m.name) and not censored(ember, m.name):
                    bound = ">"
                elif censored(ember, m.name) and not censored(ray, m.name):
                    bound = "<"
                elif censored(ember, m.name):
                    bound = "~"
            target = group.targets.get(m.name)
            rows.append(
                {
                    "workload": name,
                    "metric": m.name,
                    "unit": m.unit + (" (ref)" if m.ref else ""),
                    "values": {fw: _median(per_fw[fw], m.name) for fw in frameworks},
                    "cells": {fw: cell(per_fw[fw], m.name) for fw in frameworks},
                    "ember_vs_ray": ratio,
                    "ratio_bound": bound,
                    "target": target.text if target else "",
                    "status": status_of(target, m.name, per_fw, detailed) if target else "",
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
            line.append(_ratio(r))
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


def _ratio(row):
    if row["ember_vs_ray"] is None:
        return "-"
    return f"{row.get('ratio_bound', '')}{row['ember_vs_ray']:.2f}x"


def markdown_table(rows, frameworks):
    """The table as markdown: workload, metric, unit, one column per framework, ember/ray,
    target, status."""
    both = "ember" in frameworks and "ray" in frameworks
    headers = ["workload", "metric", "unit", *frameworks]
    headers += ["ember/ray"] if both else []
    headers += ["target", "pass/miss"]
    lines = ["| " + " | ".join(headers) + " |"]
    right = {i for i, h in enumerate(headers) if h in frameworks or h == "ember/ray"}
    lines.append(
        "| " + " | ".join("---:" if i in right else "---" for i in range(len(headers))) + " |"
    )
    last = None
    for r in rows:
        line = [r["workload"] if r["workload"] != last else "", r["metric"], r["unit"]]
        last = r["workload"]
        line += [r["cells"][fw] for fw in frameworks]
        line += [_ratio(r)] if both else []
        line += [r["target"] or "-", r["status"] or "-"]
        lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in line) + " |")
    return "\n".join(lines)


def details_lines(selected, frameworks, results):
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
                lines.append(f"{name} [{fw}] {item}")
    return lines


def print_details(selected, frameworks, results):
    lines = details_lines(selected, frameworks, results)
    if lines:
        print("\nDetails:")
        print("\n".join(f"  {line}" for line in lines))


def machine_description():
    """CPU model, cores and memory of this machine, for the report."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        memory = f"{mem:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        memory = "RAM unknown"
    return f"{model}, {os.cpu_count()} CPUs, {memory}, {platform.platform()}"


def write_markdown_report(path, group, meta, rows, frameworks, details, argv):
    suffix = {"multi-node": ", multi-node", "tune": ", Tune", "observability": ", observability"}
    title = "Ember vs Ray" + suffix.get(group.name, "")
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) or "unknown"
    out = [
        f"# {title}",
        "",
        f"- date: {meta['time']}",
        f"- machine: {machine_description()}",
        f"- python: {meta['python']} ({platform.python_version()}); versions: {versions}",
        f"- command: `python benchmarks/run.py {' '.join(argv)}`".rstrip(),
        f"- repeat: {meta['repeat']} (a workload may cap it; medians are shown)",
        f"- load average: {meta['loadavg_start']} at the start, {meta['loadavg_end']} at the end",
        "",
        markdown_table(rows, frameworks),
        "",
        "ember/ray: >1 means Ember is better (ray/ember for times, ember/ray for rates). "
        "'(ref)' rows are reference measurements, not the framework. pass/miss is Ember's "
        "result; for targets that do not need Ray, Ray's own result against the same target "
        "is in brackets, and 'Nx' is the factor reached against the reference. '>X' is a "
        "limit: most samples did not finish within X.",
    ]
    if details:
        out += ["", "## Details", ""] + [f"- {line}" for line in details]
    for name in dict.fromkeys(r["workload"] for r in rows):
        if name == rows[0]["workload"]:
            out += ["", "## Workloads", ""]
        out.append(f"- `{name}`: {group.workloads[name].doc}")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


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


def precompile(module, python, env):
    """Write the framework's bytecode first, as installing a package does: a source tree run
    in place (or with PYTHONDONTWRITEBYTECODE set) would otherwise compile every module it
    imports in each fresh process, and start-up would time the compiler."""
    code = (
        f"import compileall, os, {module} as m; "
        "compileall.compile_dir(os.path.dirname(m.__file__), quiet=1)"
    )
    subprocess.run([python, "-c", code], env={**os.environ, **env}, capture_output=True)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Ember vs Ray benchmarks", formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--cluster", action="store_true", help="the multi-node workloads (cluster.py)"
    )
    parser.add_argument(
        "--tune", action="store_true", help="the Tune workloads (tune_workloads.py)"
    )
    parser.add_argument(
        "--observability",
        action="store_true",
        help="the observability workloads (observability.py): events, state API, dashboard",
    )
    parser.add_argument("--only", help="comma-separated workload (or metric) names")
    parser.add_argument("--repeat", type=int, default=5, help="measured runs per workload")
    parser.add_argument("--frameworks", default="ember,ray", help="default: ember,ray")
    parser.add_argument("--json", dest="json_out", help="write all results to this file")
    parser.add_argument("--md", dest="md_out", help="write a markdown report to this file")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="s per run")
    parser.add_argument("--python", default=sys.executable, help="interpreter for workloads")
    parser.add_argument("--list", action="store_true", help="list workloads and exit")
    args = parser.parse_args(argv)
    group = (
        MULTI_NODE
        if args.cluster
        else TUNE
        if args.tune
        else OBSERVABILITY
        if args.observability
        else SINGLE_NODE
    )
    table = group.workloads

    if args.list:
        for w in table.values():
            metrics = ", ".join(f"{m.name} [{m.unit}]" for m in w.metrics)
            print(f"{w.name}: {metrics}\n    {w.doc}")
        return 0

    metric_owner = {m.name: w.name for w in table.values() for m in w.metrics}
    if args.only:
        selected = []
        for name in (x.strip() for x in args.only.split(",") if x.strip()):
            owner = name if name in table else metric_owner.get(name)
            if owner is None:
                parser.error(f"unknown workload {name!r}; choose from {', '.join(table)}")
            if owner not in selected:
                selected.append(owner)
    else:
        selected = list(table)

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
        precompile(fw, args.python, env)
        frameworks.append(fw)
        env_for[fw] = env
    if not frameworks:
        parser.error("no framework to run")

    total = len(selected) * len(frameworks)
    load_start = _loadavg()
    print(
        f"Running {len(selected)} {group.name} workload(s) x {', '.join(frameworks)}, "
        f"repeat={args.repeat}, "
        f"timeout={args.timeout:.0f}s, python={args.python}, cpus={os.cpu_count()}, "
        f"load average {load_start}",
        flush=True,
    )
    results = {}
    runs = []
    i = 0
    for name in selected:
        w = table[name]
        for fw in frameworks:
            i += 1
            if w.frameworks is not None and fw not in w.frameworks:
                print(f"[{i}/{total}] {name} / {fw}: not run on {fw}", flush=True)
                continue
            env = dict(env_for[fw])
            if w.single_thread_blas:
                env.update({k: "1" for k in wl.THREAD_ENV})
            print(f"[{i}/{total}] {name} / {fw} ...", end=" ", flush=True)
            res = run_one(args.python, fw, name, args.repeat, args.timeout, env, group.script)
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
    markdown = group is not SINGLE_NODE
    rows = build_rows(selected, frameworks, results, group, detailed=markdown)
    if markdown:
        print(markdown_table(rows, frameworks))
        print("ember/ray: >1 means Ember is better. pass/miss is Ember's; Ray's own result")
        print("against the same target is in brackets; Nx = factor reached against a reference.")
    else:
        print_table(rows, frameworks)
    print_details(selected, frameworks, results)

    versions = {r["framework"]: r.get("version") for r in runs if r.get("version")}
    meta = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "group": group.name,
        "python": args.python,
        "platform": platform.platform(),
        "machine": machine_description(),
        "cpu_count": os.cpu_count(),
        "repeat": args.repeat,
        "frameworks": frameworks,
        "versions": versions,
        "loadavg_start": load_start,
        "loadavg_end": load_end,
    }
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"meta": meta, "runs": runs, "rows": rows}, f, indent=2)
        print(f"\nwrote {args.json_out}")
    if args.md_out:
        details = details_lines(selected, frameworks, results)
        shown = sys.argv[1:] if argv is None else list(argv)
        write_markdown_report(args.md_out, group, meta, rows, frameworks, details, shown)
        print(f"wrote {args.md_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
