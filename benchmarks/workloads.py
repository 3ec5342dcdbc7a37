#!/usr/bin/env python
"""Benchmark workloads for Ember and Ray, run one workload per fresh process.

Usage::

    python benchmarks/workloads.py FRAMEWORK WORKLOAD [--repeat N]

FRAMEWORK is ``ember`` or ``ray`` (any importable module with Ray's core API works).
The module is imported as ``ray``, ``ray.init(num_cpus=2)`` is called (unless the
workload measures start-up itself), the workload runs once as a warm-up and then
``--repeat`` times, and one line ``BENCH_RESULT {json}`` is printed with the median
and every sample of each metric. ``ray.shutdown()`` is called afterwards.

The driver deliberately imports nothing heavy at module level (numpy, psutil and
multiprocessing are imported inside the workloads) so that ``idle_memory`` measures
what the framework itself loads.

``run.py`` imports this module only to read the workload table (``WORKLOADS``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

RESULT_MARKER = "BENCH_RESULT "
SHUTDOWN_MARKER = "BENCH_SHUTDOWN "
# Every process started by a benchmark run inherits this variable (run.py sets a unique
# value per workload subprocess). It is used to find all processes a framework started,
# including ones that are not descendants of the driver, and to clean up leftovers.
TAG_ENV = "EMBER_BENCH_TAG"
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

MB = 1024 * 1024
BIG_BYTES = 100 * MB  # "100 MB" arrays: 104,857,600 bytes of float64
BIG_N = BIG_BYTES // 8
GB = 1e9  # bandwidths are reported in GB/s with GB = 10**9 bytes
NUM_CPUS = 2


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: str  # "higher" or "lower"
    ref: bool = False  # a reference measurement (not the framework itself)


@dataclass
class Workload:
    name: str
    fn: Callable[[Ctx], Callable[[], dict[str, float]]]
    metrics: tuple[Metric, ...]
    doc: str
    init: bool = True  # harness calls ray.init(num_cpus=2)
    warmup: bool = True  # harness calls the sample function once before measuring
    max_repeat: int | None = None
    single_thread_blas: bool = False  # run.py pins BLAS/OpenMP threads to 1
    frameworks: tuple[str, ...] | None = None  # run.py runs it only on these (None: all)


WORKLOADS: dict[str, Workload] = {}


def workload(name, metrics, doc, **kwargs):
    def deco(fn):
        WORKLOADS[name] = Workload(name, fn, tuple(Metric(*m) for m in metrics), doc, **kwargs)
        return fn

    return deco


@dataclass
class Ctx:
    ray: object
    framework: str
    repeat: int
    info: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    cleanups: list = field(default_factory=list)

    def defer(self, fn):
        self.cleanups.append(fn)

    def note(self, text):
        self.notes.append(text)


def _elapsed(t0):
    return time.perf_counter() - t0


def _check(cond, what):
    if not cond:
        raise AssertionError(f"wrong result: {what}")


# --------------------------------------------------------------------------- start-up


_STARTUP_CODE = """
import time
t0 = time.perf_counter()
import {module} as ray
t1 = time.perf_counter()
ray.init(num_cpus={num_cpus})
t2 = time.perf_counter()

@ray.remote
def f():
    return 42

assert ray.get(f.remote()) == 42
t3 = time.perf_counter()
print("STARTUP_FIRST", t1 - t0, t2 - t1, t3 - t2, flush=True)
ray.shutdown()
print("STARTUP_SHUTDOWN", time.perf_counter() - t3, flush=True)
"""


@workload(
    "startup",
    [("startup", "s", "lower"), ("shutdown", "s", "lower")],
    "fresh interpreter -> import -> init(num_cpus=2) -> first task result (wall time from "
    "outside, interpreter start included); shutdown = ray.shutdown() time in that process",
    init=False,
)
def startup(ctx):
    import queue
    import tempfile
    import threading

    code = _STARTUP_CODE.format(module=ctx.ray.__name__, num_cpus=NUM_CPUS)

    def pump(stream, q):
        for line in stream:
            q.put(line)
        q.put(None)

    def once():
        with tempfile.TemporaryFile() as err:
            lines = queue.Queue()
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-c", code],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
            # Read from a thread: a leaked daemon holding the pipe must not block us.
            threading.Thread(target=pump, args=(proc.stdout, lines), daemon=True).start()
            first = shut = None
            deadline = t0 + 120
            exited_at = None
            try:
                while shut is None and time.perf_counter() < deadline:
                    try:
                        line = lines.get(timeout=0.05)
                    except queue.Empty:
                        if proc.poll() is not None:
                            exited_at = exited_at or time.perf_counter()
                            if time.perf_counter() - exited_at > 1.0:
                                break  # exited without printing both markers
                        continue
                    if line is None:
                        break
                    if line.startswith("STARTUP_FIRST"):
                        first = _elapsed(t0)
                        parts = [float(x) for x in line.split()[1:]]
                    elif line.startswith("STARTUP_SHUTDOWN"):
                        shut = float(line.split()[1])
                proc.wait(timeout=max(1.0, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                pass
            finally:
                if proc.poll() is None:
                    _killpg(proc.pid)
                    proc.wait()
            if first is None or shut is None:
                err.seek(0)
                lines = err.read().decode(errors="replace").strip().splitlines() or ["?"]
                raise ChildError(f"{lines[-1]} (start-up child, exit code {proc.returncode})")
        ctx.info["import_s"], ctx.info["init_s"], ctx.info["first_task_s"] = parts
        ctx.info["exit_s"] = _elapsed(t0)
        return {"startup": first, "shutdown": shut}

    def last_note():
        i = ctx.info
        if "exit_s" in i:
            ctx.note(
                f"last sample: import {i['import_s']:.3f}s, init {i['init_s']:.3f}s, "
                f"first task {i['first_task_s']:.3f}s, process exit at {i['exit_s']:.3f}s"
            )

    ctx.defer(last_note)
    return once


class ChildError(RuntimeError):
    """The start-up child process failed; the message is its last stderr line."""


def _killpg(pgid):
    import signal

    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- memory


def framework_processes(ray):
    """All live processes belonging to this framework instance, including the driver.

    Union of (a) the driver and its descendants (psutil parent chain), (b) every process
    whose environment carries this run's EMBER_BENCH_TAG value (environment is inherited,
    so this also finds daemons that were re-parented to init or started a new session),
    and (c) for Ray, any process whose command line mentions the Ray session directory.
    """
    import psutil

    me = psutil.Process()
    procs = {me.pid: me}
    for p in me.children(recursive=True):
        procs[p.pid] = p
    tag = os.environ.get(TAG_ENV)
    session_dir = None
    try:  # Ray only, best effort (private API)
        session_dir = ray._private.worker._global_node.get_session_dir_path()
    except Exception:
        pass
    for p in psutil.process_iter(["pid"]):
        if p.pid in procs:
            continue
        try:
            if tag and p.environ().get(TAG_ENV) == tag:
                procs[p.pid] = p
            elif session_dir and any(session_dir in a for a in p.cmdline()):
                procs[p.pid] = p
        except (psutil.Error, OSError):
            continue
    # descendants of anything found through (b)/(c)
    for p in list(procs.values()):
        try:
            for c in p.children(recursive=True):
                procs.setdefault(c.pid, c)
        except psutil.Error:
            pass
    return list(procs.values())


def _label(p):
    """Short process label: executable name, plus the script for interpreters."""
    try:
        argv = p.cmdline()
    except Exception:
        argv = []
    name = p.name()
    scripts = [os.path.basename(a) for a in argv[1:] if a.endswith(".py")]
    if scripts:
        return f"{name}:{scripts[0]}"
    first = argv[0].strip() if argv else ""
    return os.path.basename(first)[:40] if first else name


@workload(
    "idle_memory",
    [("idle_memory", "MB", "lower"), ("idle_procs", "procs", "lower")],
    "after init + one task + 2 s idle: summed RSS of the driver and every process the "
    "framework started (descendants, same-tag processes, Ray session processes)",
    warmup=False,
)
def idle_memory(ctx):
    import psutil

    ray = ctx.ray

    noop = _remote_noop(ray)

    ray.get(noop.remote())

    def once():
        ray.get(noop.remote())
        time.sleep(2.0)
        rows = []
        for p in framework_processes(ray):
            try:
                with p.oneshot():
                    if p.status() == psutil.STATUS_ZOMBIE:
                        continue
                    rss = p.memory_info().rss
                    try:
                        pss = p.memory_full_info().pss
                    except (psutil.Error, AttributeError):
                        pss = float("nan")
                    name = _label(p)
                rows.append((rss, pss, p.pid, name))
            except psutil.Error:
                continue
        rows.sort(reverse=True)
        ctx.info["processes"] = [
            {"pid": pid, "rss_mb": round(rss / MB, 1), "pss_mb": round(pss / MB, 1), "cmd": n}
            for rss, pss, pid, n in rows
        ]
        ctx.info["pss_mb"] = round(sum(r[1] for r in rows) / MB, 1)
        return {"idle_memory": sum(r[0] for r in rows) / MB, "idle_procs": len(rows)}

    def summary():
        procs = ctx.info.get("processes", [])
        top = ", ".join(f"{os.path.basename(p['cmd'])}={p['rss_mb']:.0f}" for p in procs)
        ctx.note(f"PSS total {ctx.info.get('pss_mb')} MB; RSS per process (MB): {top}")

    ctx.defer(summary)
    return once


# --------------------------------------------------------------------------- tasks


def _remote_noop(ray):
    @ray.remote
    def noop():
        return None

    return noop


@workload(
    "tasks_sync",
    [("tasks_sync", "tasks/s", "higher")],
    "submit one no-op task and ray.get it, 500 times in a row",
)
def tasks_sync(ctx):
    ray, n = ctx.ray, 500

    noop = _remote_noop(ray)

    def once():
        t0 = time.perf_counter()
        for _ in range(n):
            ray.get(noop.remote())
        return {"tasks_sync": n / _elapsed(t0)}

    return once


@workload(
    "tasks_async",
    [("tasks_async", "tasks/s", "higher")],
    "submit 1000 no-op tasks, then ray.get the list",
)
def tasks_async(ctx):
    ray, n = ctx.ray, 1000

    noop = _remote_noop(ray)

    def once():
        t0 = time.perf_counter()
        refs = [noop.remote() for _ in range(n)]
        ray.get(refs)
        return {"tasks_async": n / _elapsed(t0)}

    return once


@workload(
    "task_chain",
    [("task_chain", "tasks/s", "higher")],
    "chain of 200 tasks, each taking the previous task's ObjectRef as its argument",
)
def task_chain(ctx):
    ray, n = ctx.ray, 200

    @ray.remote
    def inc(x):
        return x + 1

    def once():
        t0 = time.perf_counter()
        ref = inc.remote(0)
        for _ in range(n - 1):
            ref = inc.remote(ref)
        out = ray.get(ref)
        dt = _elapsed(t0)
        _check(out == n, f"chain result {out} != {n}")
        return {"task_chain": n / dt}

    return once


@workload(
    "nested_tasks",
    [("nested_tasks", "children/s", "higher")],
    "a task submits 10 child tasks and gets them; 20 such parent tasks run one after another",
)
def nested_tasks(ctx):
    ray, parents, children = ctx.ray, 20, 10

    @ray.remote
    def child(i):
        return i

    @ray.remote
    def parent(k):
        return sum(ray.get([child.remote(i) for i in range(k)]))

    def once():
        t0 = time.perf_counter()
        for _ in range(parents):
            out = ray.get(parent.remote(children))
        dt = _elapsed(t0)
        _check(out == sum(range(children)), f"parent returned {out}")
        return {"nested_tasks": parents * children / dt}

    return once


NESTED_DEPTHS = (1000, 3000, 5000)


@workload(
    "nested_deep",
    [(f"nested_deep_{d // 1000}k", "s", "lower") for d in NESTED_DEPTHS],
    "f(n) = get(f.remote(n - 1)) + 1: n tasks each blocked in get() on the next, for n = "
    "1000, 3000 and 5000 one after another; Ember only (Ray starts a process per blocked "
    "task: 200 levels took it 41 s and 16 GB on the 2-core machine)",
    max_repeat=3,
    frameworks=("ember",),
)
def nested_deep(ctx):
    ray = ctx.ray

    @ray.remote
    def f(n):
        return 0 if n == 0 else ray.get(f.remote(n - 1)) + 1

    def once():
        out = {}
        for depth in NESTED_DEPTHS:
            t0 = time.perf_counter()
            got = ray.get(f.remote(depth))
            out[f"nested_deep_{depth // 1000}k"] = _elapsed(t0)
            _check(got == depth, f"f({depth}) returned {got}")
        return out

    return once


# --------------------------------------------------------------------------- actors


def _make_actor_class(ray):
    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def ping(self):
            self.n += 1
            return self.n

    return Counter


@workload(
    "actor_sync",
    [("actor_sync", "calls/s", "higher")],
    "one actor, 500 method calls made one at a time (call, get, call, get, ...)",
)
def actor_sync(ctx):
    ray, n = ctx.ray, 500
    actor = _make_actor_class(ray).remote()
    ray.get(actor.ping.remote())

    def once():
        t0 = time.perf_counter()
        for _ in range(n):
            ray.get(actor.ping.remote())
        return {"actor_sync": n / _elapsed(t0)}

    return once


@workload(
    "actor_async",
    [("actor_async", "calls/s", "higher")],
    "one actor, submit 1000 method calls, then ray.get the list",
)
def actor_async(ctx):
    ray, n = ctx.ray, 1000
    actor = _make_actor_class(ray).remote()
    ray.get(actor.ping.remote())

    def once():
        t0 = time.perf_counter()
        out = ray.get([actor.ping.remote() for _ in range(n)])
        dt = _elapsed(t0)
        _check(out == sorted(out) and len(set(out)) == n, "actor calls out of order")
        return {"actor_async": n / dt}

    return once


@workload(
    "actor_n_n",
    [("actor_n_n", "calls/s", "higher")],
    "2 actors; 2 caller tasks each submit 500 calls alternating over both actors, then get",
)
def actor_n_n(ctx):
    ray, n = ctx.ray, 500
    counter = _make_actor_class(ray)
    actors = [counter.remote() for _ in range(2)]
    ray.get([a.ping.remote() for a in actors])

    @ray.remote
    def caller(handles, calls):
        refs = [handles[i % len(handles)].ping.remote() for i in range(calls)]
        return len(ray.get(refs))

    def once():
        t0 = time.perf_counter()
        out = ray.get([caller.remote(actors, n) for _ in range(2)])
        dt = _elapsed(t0)
        _check(out == [n, n], f"callers returned {out}")
        return {"actor_n_n": 2 * n / dt}

    return once


@workload(
    "compiled_dag",
    [("compiled_dag", "us", "lower"), ("dag_actor_call", "us", "lower")],
    "round trip of a compiled graph of one actor method (`experimental_compile`, then "
    "`get(compiled.execute(i))`) against a plain call of the same method "
    "(`get(actor.echo.remote(i))`) on the same actor; median of 1000 of each per sample",
)
def compiled_dag(ctx):
    ray, n = ctx.ray, 1000
    dag = importlib.import_module(f"{ray.__name__}.dag")

    @ray.remote
    class Echo:
        def echo(self, x):
            return x

    actor = Echo.remote()
    ray.get(actor.echo.remote(0))
    with dag.InputNode() as inp:
        graph = actor.echo.bind(inp)
    compiled = graph.experimental_compile()
    ctx.defer(compiled.teardown)

    def median_call(call):
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            got = ray.get(call(i))
            times.append(time.perf_counter() - t0)
            _check(got == i, f"round trip {i} returned {got}")
        return statistics.median(times) * 1e6

    def once():
        return {
            "compiled_dag": median_call(compiled.execute),
            "dag_actor_call": median_call(actor.echo.remote),
        }

    return once


# --------------------------------------------------------------------------- objects


@workload(
    "put_small",
    [("put_small", "puts/s", "higher")],
    "ray.put of a small int, 2000 times (refs kept alive until the sample ends)",
)
def put_small(ctx):
    ray, n = ctx.ray, 2000

    def once():
        refs = []
        t0 = time.perf_counter()
        for i in range(n):
            refs.append(ray.put(i))
        dt = _elapsed(t0)
        del refs
        return {"put_small": n / dt}

    return once


@workload(
    "get_small",
    [("get_small", "gets/s", "higher")],
    "ray.get of one small put object, 2000 times",
)
def get_small(ctx):
    ray, n = ctx.ray, 2000
    ref = ray.put(12345)

    def once():
        t0 = time.perf_counter()
        for _ in range(n):
            out = ray.get(ref)
        dt = _elapsed(t0)
        _check(out == 12345, f"got {out}")
        return {"get_small": n / dt}

    return once


def _big_array():
    import numpy as np

    return np.random.default_rng(0).random(BIG_N)


def _shm_array(like):
    """A preallocated array the size of ``like`` in a shared-memory file, written once (the
    file is deleted at once; the mapping keeps it)."""
    import mmap
    import tempfile

    import numpy as np

    folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.NamedTemporaryFile(dir=folder) as f:
        f.truncate(like.nbytes)
        mapped = mmap.mmap(f.fileno(), like.nbytes)
    out = np.frombuffer(mapped, dtype=like.dtype)
    np.copyto(out, like)
    return out


@workload(
    "put_100mb",
    [
        ("put_100mb", "GB/s", "higher"),
        ("memcpy_copyto", "GB/s", "higher", True),
        ("memcpy_shm", "GB/s", "higher", True),
        ("np_copy", "GB/s", "higher", True),
    ],
    "ray.put of a 100 MB float64 array; references: np.copyto into a preallocated array "
    "(memcpy), np.copyto into a preallocated array in shared memory (/dev/shm) and np.copy "
    "(allocates + copies) of the same array, measured in the same run",
)
def put_100mb(ctx):
    import numpy as np

    ray = ctx.ray
    src = _big_array()
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the destination pages in
    shm = _shm_array(src)

    def once():
        t0 = time.perf_counter()
        ref = ray.put(src)
        put_dt = _elapsed(t0)
        del ref
        t0 = time.perf_counter()
        np.copyto(dst, src)
        copyto_dt = _elapsed(t0)
        t0 = time.perf_counter()
        np.copyto(shm, src)
        shm_dt = _elapsed(t0)
        t0 = time.perf_counter()
        tmp = np.copy(src)
        copy_dt = _elapsed(t0)
        del tmp
        return {
            "put_100mb": BIG_BYTES / put_dt / GB,
            "memcpy_copyto": BIG_BYTES / copyto_dt / GB,
            "memcpy_shm": BIG_BYTES / shm_dt / GB,
            "np_copy": BIG_BYTES / copy_dt / GB,
        }

    return once


@workload(
    "get_100mb",
    [
        ("get_100mb", "GB/s", "higher"),
        ("get_100mb_time", "ms", "lower"),
        ("memcpy_copyto_get", "GB/s", "higher", True),
    ],
    "ray.get of a put 100 MB float64 array; zero-copy check: result is read-only and the get "
    "is much faster than a memcpy of the same bytes (whether two gets share one buffer is "
    "reported too)",
)
def get_100mb(ctx):
    import numpy as np

    ray = ctx.ray
    src = _big_array()
    dst = np.empty_like(src)
    np.copyto(dst, src)
    ref = ray.put(src)
    a = ray.get(ref)
    b = ray.get(ref)
    _check(isinstance(a, np.ndarray) and a.shape == src.shape, "get returned a different object")
    _check(bool(np.array_equal(a, src)), "get returned different data")
    ctx.info["readonly"] = not a.flags.writeable
    ctx.info["shares_memory"] = bool(np.shares_memory(a, b))
    del a, b

    def once():
        t0 = time.perf_counter()
        out = ray.get(ref)
        dt = _elapsed(t0)
        _check(out.nbytes == BIG_BYTES, "wrong size")
        ctx.info["readonly"] = ctx.info["readonly"] and not out.flags.writeable
        del out
        t0 = time.perf_counter()
        np.copyto(dst, src)
        copy_dt = _elapsed(t0)
        return {
            "get_100mb": BIG_BYTES / dt / GB,
            "get_100mb_time": dt * 1e3,
            "memcpy_copyto_get": BIG_BYTES / copy_dt / GB,
        }

    def summary():
        i = ctx.info
        ctx.note(f"result read-only: {i['readonly']}; two gets share memory: {i['shares_memory']}")

    ctx.defer(summary)
    return once


@workload(
    "task_return_100mb",
    [
        ("task_return_100mb", "GB/s", "higher"),
        ("task_return_100mb_time", "ms", "lower"),
        ("memcpy_copyto_task", "GB/s", "higher", True),
        ("memcpy_shm_task", "GB/s", "higher", True),
    ],
    "a task returns a 100 MB float64 array its worker already holds (built by the worker's "
    "first call and kept in the process, so building it is not timed); timed from the driver: "
    "submit -> the task runs and returns it -> ray.get returns it as a read-only zero-copy "
    "view; GB/s = 100 MB / that time; references: np.copyto of 100 MB into a preallocated "
    "array (memcpy) and into one in shared memory, in the driver, in the same sample; 3 tasks "
    "one after another per sample",
)
def task_return_100mb(ctx):
    import numpy as np

    ray, per_sample = ctx.ray, 3
    src = _big_array()
    dst = np.empty_like(src)
    np.copyto(dst, src)
    shm = _shm_array(src)

    @ray.remote
    def held(n):
        import sys
        import types

        import numpy as np

        cache = sys.modules.setdefault("_bench_held", types.ModuleType("_bench_held"))
        if getattr(cache, "array", None) is None:
            cache.array = np.ones(n)
        return cache.array

    def once():
        total = copy = copy_shm = 0.0
        for _ in range(per_sample):
            t0 = time.perf_counter()
            arr = ray.get(held.remote(BIG_N))
            total += _elapsed(t0)
            _check(arr.nbytes == BIG_BYTES and arr[0] == 1.0 and arr[-1] == 1.0, "bad array")
            ctx.info["readonly"] = not arr.flags.writeable
            del arr
            t0 = time.perf_counter()
            np.copyto(dst, src)
            copy += _elapsed(t0)
            t0 = time.perf_counter()
            np.copyto(shm, src)
            copy_shm += _elapsed(t0)
        return {
            "task_return_100mb": per_sample * BIG_BYTES / total / GB,
            "task_return_100mb_time": total / per_sample * 1e3,
            "memcpy_copyto_task": per_sample * BIG_BYTES / copy / GB,
            "memcpy_shm_task": per_sample * BIG_BYTES / copy_shm / GB,
        }

    ctx.defer(lambda: ctx.note(f"returned array read-only: {ctx.info.get('readonly')}"))
    return once


@workload(
    "wait_1k",
    [("wait_1k", "refs/s", "higher")],
    "ray.wait(refs, num_returns=1000) over 1000 refs of finished no-op tasks; each sample "
    "repeats the wait for at least 0.2 s (and at least 5 times)",
)
def wait_1k(ctx):
    ray, n, min_waits, min_time = ctx.ray, 1000, 5, 0.2

    noop = _remote_noop(ray)

    refs = [noop.remote() for _ in range(n)]
    ray.get(refs)

    def once():
        waits = 0
        t0 = time.perf_counter()
        while waits < min_waits or _elapsed(t0) < min_time:
            ready, rest = ray.wait(refs, num_returns=n)
            waits += 1
        dt = _elapsed(t0)
        _check(len(ready) == n and not rest, f"wait returned {len(ready)} ready")
        return {"wait_1k": n * waits / dt}

    return once


@workload(
    "wait_1k_tasks",
    [("wait_1k_tasks", "refs/s", "higher")],
    "submit 1000 no-op tasks and ray.wait(refs, num_returns=1000) for all of them: the "
    "'single client wait 1k refs' case of Ray's own microbenchmark",
)
def wait_1k_tasks(ctx):
    ray, n = ctx.ray, 1000

    noop = _remote_noop(ray)

    def once():
        t0 = time.perf_counter()
        ready, rest = ray.wait([noop.remote() for _ in range(n)], num_returns=n)
        dt = _elapsed(t0)
        _check(len(ready) == n and not rest, f"wait returned {len(ready)} ready")
        return {"wait_1k_tasks": n / dt}

    return once


@workload(
    "wait_loop_1k",
    [("wait_loop_1k", "refs/s", "higher")],
    "submit 1000 no-op tasks, then ray.wait(refs, num_returns=1) in a loop, each time on the "
    "refs it left not ready, until none is left",
)
def wait_loop_1k(ctx):
    ray, n = ctx.ray, 1000

    noop = _remote_noop(ray)

    def once():
        t0 = time.perf_counter()
        rest = [noop.remote() for _ in range(n)]
        done = 0
        while rest:
            ready, rest = ray.wait(rest, num_returns=1)
            done += len(ready)
        dt = _elapsed(t0)
        _check(done == n, f"wait returned {done} ready in all")
        return {"wait_loop_1k": n / dt}

    return once


# --------------------------------------------------------------------------- makespan


def fifo_makespan(durations, cpus):
    """The makespan of the ideal schedule that every workload below is held to: tasks start
    in submission order, each on the first CPU that is free, with no overhead at all."""
    import heapq

    free = [0.0] * cpus
    for d in durations:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def makespan_mixes(seed=7):
    """Task lengths (s) per mix: long tasks ahead of short ones, a log-uniform mix from 10 ms
    to 1 s (seeded), and many 10 ms tasks."""
    import random

    rng = random.Random(seed)
    return {
        "long_first": [3.0, 1.0, 1.0, 1.0],
        "mixed": [0.01 * 100 ** rng.random() for _ in range(30)],
        "10ms": [0.01] * 200,
    }


def makespan_sampler(ray, task, cpus, prefix, mixes=None):
    """A sample function running each mix once: submit all its tasks at once, get them, and
    report the makespan as a ratio to ``fifo_makespan`` on ``cpus`` CPUs (1.0 is ideal)."""
    mixes = mixes or makespan_mixes()

    def once():
        out = {}
        for name, durations in mixes.items():
            t0 = time.perf_counter()
            done = ray.get([task.remote(d) for d in durations], timeout=600)
            _check(len(done) == len(durations), f"{name} results")
            out[f"{prefix}_{name}"] = _elapsed(t0) / fifo_makespan(durations, cpus)
        return out

    return once


def makespan_metrics(prefix, mixes=None):
    return [(f"{prefix}_{name}", "x ideal", "lower") for name in mixes or makespan_mixes()]


@workload(
    "makespan",
    makespan_metrics("makespan"),
    "CPU-bound tasks (a busy loop) submitted at once, all with num_cpus=1; each metric is the "
    "wall time from the first submit to the last result divided by the ideal first-free-CPU "
    "FIFO schedule on the 2 CPUs: long_first = 3, 1, 1, 1 s (ideal 3 s); mixed = 30 tasks "
    "log-uniform in 10 ms..1 s; 10ms = 200 tasks of 10 ms (ideal 1 s)",
    max_repeat=3,
)
def makespan(ctx):
    ray = ctx.ray

    @ray.remote
    def spin(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    return makespan_sampler(ray, spin, NUM_CPUS, "makespan")


# --------------------------------------------------------------------------- vs. Pool


def _square(i):  # module level so multiprocessing can pickle it by reference
    return i * i


@workload(
    "tiny_tasks_vs_pool",
    [
        ("tiny_tasks", "s", "lower"),
        ("pool_apply_async", "s", "lower", True),
        ("pool_map", "s", "lower", True),
    ],
    "1000 tiny tasks f(i) -> i*i via [f.remote(i) ...] + get, vs multiprocessing.Pool(2) "
    "(spawn, created and warmed before timing) with apply_async per item and with map",
)
def tiny_tasks_vs_pool(ctx):
    import multiprocessing

    ray, n = ctx.ray, 1000
    expect = [i * i for i in range(n)]
    pool = multiprocessing.get_context("spawn").Pool(2)
    ctx.defer(pool.join)
    ctx.defer(pool.terminate)  # cleanups run in reverse order: terminate, then join
    pool.map(_square, range(100))

    @ray.remote
    def square(i):
        return i * i

    def once():
        t0 = time.perf_counter()
        out = ray.get([square.remote(i) for i in range(n)])
        t_fw = _elapsed(t0)
        _check(out == expect, "framework results")
        t0 = time.perf_counter()
        handles = [pool.apply_async(_square, (i,)) for i in range(n)]
        out = [h.get() for h in handles]
        t_apply = _elapsed(t0)
        _check(out == expect, "apply_async results")
        t0 = time.perf_counter()
        out = pool.map(_square, range(n))
        t_map = _elapsed(t0)
        _check(out == expect, "map results")
        return {"tiny_tasks": t_fw, "pool_apply_async": t_apply, "pool_map": t_map}

    return once


# --------------------------------------------------------------------------- seed: matmul


MATMUL_POWER = 20
MATMUL_SIZE = 1000
MATMUL_KMAX = 8


def continmat(power, seed, size=MATMUL_SIZE):
    """Multiply a random size x size matrix by itself `power` times (scaled to stay finite)."""
    import numpy as np

    m = np.random.default_rng(seed).random((size, size)) * (2.0 / size)
    r = m
    for _ in range(power):
        r = r @ m
    return float(r[0, 0])


@workload(
    "matmul_seed",
    [
        ("matmul_speedup_k8", "x", "higher"),
        ("matmul_serial_k8", "s", "lower", True),
        ("matmul_parallel_k8", "s", "lower"),
    ],
    "seed experiment: k continmat(20) calls on 1000x1000 matrices, serially in the driver vs "
    "as k remote tasks; BLAS/OpenMP threads pinned to 1 in driver and workers; speedup = "
    "serial/parallel at k=8; per-k table (k=1..8) measured once before the samples",
    warmup=False,
    max_repeat=3,
    single_thread_blas=True,
)
def matmul_seed(ctx):
    ray = ctx.ray
    remote_continmat = ray.remote(continmat)

    @ray.remote
    def worker_env():
        return {k: os.environ.get(k) for k in THREAD_ENV}

    driver_env = {k: os.environ.get(k) for k in THREAD_ENV}
    ctx.info["driver_thread_env"] = driver_env
    ctx.info["worker_thread_env"] = ray.get(worker_env.remote())

    def serial(k):
        """Run k tasks serially in-process; returns cumulative time after each one."""
        marks = []
        t0 = time.perf_counter()
        for i in range(k):
            continmat(MATMUL_POWER, i)
            marks.append(_elapsed(t0))
        return marks

    def parallel(k):
        t0 = time.perf_counter()
        ray.get([remote_continmat.remote(MATMUL_POWER, i) for i in range(k)])
        return _elapsed(t0)

    continmat(MATMUL_POWER, 0)  # warm up BLAS in the driver
    # per-k table, measured once (doubles as warm-up): serial time for k tasks is the
    # time at which the k-th of the serially run tasks finished.
    marks = serial(MATMUL_KMAX)
    table = []
    for k in range(1, MATMUL_KMAX + 1):
        p = parallel(k)
        table.append({"k": k, "serial_s": marks[k - 1], "parallel_s": p})
    ctx.info["per_k"] = table

    def once():
        s = serial(MATMUL_KMAX)[-1]
        p = parallel(MATMUL_KMAX)
        return {"matmul_speedup_k8": s / p, "matmul_serial_k8": s, "matmul_parallel_k8": p}

    def summary():
        ctx.note(
            f"numpy threads pinned: driver {driver_env}, workers {ctx.info['worker_thread_env']}"
        )
        cells = "  ".join(
            f"k={r['k']}: {r['serial_s']:.2f}/{r['parallel_s']:.2f}s "
            f"({r['serial_s'] / r['parallel_s']:.2f}x)"
            for r in table
        )
        ctx.note(f"per-k serial/parallel: {cells}")

    ctx.defer(summary)
    return once


# --------------------------------------------------------------------------- driver


def _emit(marker, obj):
    sys.stdout.write(marker + json.dumps(obj) + "\n")
    sys.stdout.flush()


def run_workload(framework, name, repeat, registry=None):
    """Run one workload of ``registry`` (default: this module's ``WORKLOADS``) and print its
    ``BENCH_RESULT`` line; returns the process exit code."""
    registry = WORKLOADS if registry is None else registry
    os.environ.setdefault(TAG_ENV, uuid.uuid4().hex)
    out = {
        "framework": framework,
        "workload": name,
        "version": None,
        "metrics": {},
        "info": {},
        "notes": [],
        "error": None,
    }
    ray = None
    inited = False
    ctx = None
    t_start = time.perf_counter()
    try:
        wl = registry[name]
        ray = importlib.import_module(framework)
        out["version"] = getattr(ray, "__version__", None)
        if wl.init:
            ray.init(num_cpus=NUM_CPUS)
            inited = True
        ctx = Ctx(ray=ray, framework=framework, repeat=repeat)
        once = wl.fn(ctx)
        if wl.warmup:
            once()
        n = min(repeat, wl.max_repeat) if wl.max_repeat else repeat
        samples = {m.name: [] for m in wl.metrics}
        for _ in range(n):
            result = once()
            for m in wl.metrics:
                samples[m.name].append(float(result[m.name]))
        out["metrics"] = {
            m.name: {
                "unit": m.unit,
                "better": m.better,
                "ref": m.ref,
                "median": statistics.median(samples[m.name]),
                "samples": samples[m.name],
            }
            for m in wl.metrics
        }
    except BaseException as exc:  # noqa: B036 - report everything, including Ctrl-C
        out["error"] = f"{type(exc).__name__}: {exc}".strip()[:500]
        traceback.print_exc()
    finally:
        if ctx is not None:
            for fn in reversed(ctx.cleanups):
                try:
                    fn()
                except Exception as exc:
                    traceback.print_exc()
                    ctx.note(f"WARNING: clean-up step failed: {type(exc).__name__}: {exc}"[:300])
            out["info"], out["notes"] = ctx.info, ctx.notes
        out["wall_s"] = _elapsed(t_start)
        _emit(RESULT_MARKER, out)
        if inited:
            t0 = time.perf_counter()
            try:
                ray.shutdown()
                _emit(SHUTDOWN_MARKER, {"ok": True, "seconds": _elapsed(t0)})
            except BaseException as exc:  # noqa: B036
                traceback.print_exc()
                _emit(SHUTDOWN_MARKER, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return 0 if out["error"] is None else 1


def main(argv=None, registry=None, description=None):
    registry = WORKLOADS if registry is None else registry
    parser = argparse.ArgumentParser(description=description or __doc__.split("\n\n")[0])
    parser.add_argument("framework", help="module to import as ray: ember or ray")
    parser.add_argument("workload", choices=sorted(registry))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    return run_workload(args.framework, args.workload, max(1, args.repeat), registry)


if __name__ == "__main__":
    sys.exit(main())
