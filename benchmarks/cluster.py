#!/usr/bin/env python
"""Multi-node benchmark workloads for Ember and Ray, run one workload per fresh process.

Usage::

    python benchmarks/cluster.py FRAMEWORK WORKLOAD [--repeat N]
    python benchmarks/run.py --cluster            # all of them, ember and ray, in a table

Each workload starts its own cluster of real nodes on this machine: ``ember.testing.Cluster``
for Ember and ``ray.cluster_utils.Cluster`` for Ray, every node with its own processes,
resources and object store, all on 127.0.0.1. The driver connects to the head with
``init(address=cluster.address)``. The cluster is shut down at the end of the workload.
Like ``workloads.py``, it prints one ``BENCH_RESULT {json}`` line.

Workloads:

- ``spill_tasks``: the head's only CPU is held by an actor, so every task spills to the two
  other nodes.
- ``spread_tasks``: the same with the head's CPU free: the burst saturates it and spills.
- ``transfer``: an object made on another node is fetched by the driver on the head over TCP.
  The same run measures a plain loopback socket copy of the same size, as the upper limit.
- ``node_failure``: a node running part of a job is killed (or frozen with SIGSTOP). Measures
  how long the cluster takes to declare it dead and to finish the job on the node that is
  left.

Settings that differ from each framework's defaults are in ``RAY_NODE_ARGS``,
``RAY_HEAD_ARGS``, ``RAY_HEALTH_CHECK``, ``NODE_TIMEOUT`` and ``TRANSFER_NODE_TIMEOUT``, and
are described in ``benchmarks/README.md``.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import workloads as wl  # noqa: E402  (registry types and the BENCH_RESULT driver)

MB = wl.MB
GIB = 1 << 30
GB = wl.GB

# Node failure: both frameworks are configured to declare a silent node dead after 2 s.
NODE_TIMEOUT = 2.0
EMBER_HEARTBEAT = 0.2  # ember.testing.Cluster's default
# Ray's GCS health check: a check every period_ms, each one failing after timeout_ms without
# an answer; failure_threshold failures in a row mark the node dead. A frozen node is then
# declared dead after about threshold * (period + timeout) = 4 * (250 + 250) ms = 2 s, and a
# killed one (connection refused at once) after about threshold * period = 1 s.
RAY_HEALTH_CHECK = {
    "health_check_period_ms": 250,
    "health_check_timeout_ms": 250,
    "health_check_failure_threshold": 4,
    "health_check_initial_delay_ms": 500,
}
# Ray: every node on the loopback address, and no dashboard (it costs start-up time and CPU
# on a 2-core machine, and no workload uses it).
RAY_NODE_ARGS = {"node_ip_address": "127.0.0.1"}
RAY_HEAD_ARGS = {"include_dashboard": False}
# How long one node-failure sample may take from the kill to the job's end before it is
# recorded as "did not finish" (shown as >CAP in the table).
FAILURE_CAP = NODE_TIMEOUT + 8.0

CLUSTER_WORKLOADS: dict[str, wl.Workload] = {}


def cluster_workload(name, metrics, doc, **kwargs):
    kwargs.setdefault("init", False)  # the workload starts its cluster and connects itself

    def deco(fn):
        CLUSTER_WORKLOADS[name] = wl.Workload(
            name, fn, tuple(wl.Metric(*m) for m in metrics), doc, **kwargs
        )
        return fn

    return deco


def _censor(ctx, metric):
    """Count a sample that hit its time limit (the value recorded is the limit)."""
    censored = ctx.info.setdefault("censored", {})
    censored[metric] = censored.get(metric, 0) + 1


# --------------------------------------------------------------------------- clusters


class TestCluster:
    """One API over ``ember.testing.Cluster`` and ``ray.cluster_utils.Cluster``."""

    def __init__(self, ctx, head_args, node_timeout=None, ray_system_config=None):
        """``node_timeout``: Ember's (with a 0.2 s heartbeat); ``ray_system_config``: Ray's
        head ``_system_config``. Each framework keeps its defaults without them."""
        self.ctx = ctx
        self.ray = ctx.ray
        self.framework = ctx.framework
        self.frozen = {}
        self.cluster = None
        self.ember_nodes = []  # every Ember node started, for its log at the end
        self.removed = set()
        ctx.defer(self.shutdown)
        t0 = time.perf_counter()
        if self.framework == "ember":
            from ember.testing import Cluster

            kwargs = {}
            if node_timeout is not None:
                kwargs = {"node_timeout": node_timeout, "heartbeat_interval": EMBER_HEARTBEAT}
            self.cluster = Cluster(initialize_head=True, head_node_args=dict(head_args), **kwargs)
            self.ember_nodes.append(self.cluster.head)
        elif self.framework == "ray":
            from ray.cluster_utils import Cluster

            head = {**RAY_HEAD_ARGS, **RAY_NODE_ARGS, **head_args}
            if ray_system_config is not None:
                head["_system_config"] = dict(ray_system_config)
            self.cluster = Cluster(initialize_head=True, head_node_args=head)
        else:
            raise ValueError(f"no multi-node cluster helper for {self.framework!r}")
        self.head = self.cluster.head if self.framework == "ember" else self.cluster.head_node
        ctx.info["cluster_start_s"] = round(time.perf_counter() - t0, 2)

    def add_node(self, **args):
        if self.framework == "ray":
            args = {**RAY_NODE_ARGS, **args}
        node = self.cluster.add_node(**args)
        if self.framework == "ember":
            self.ember_nodes.append(node)
        return node

    def connect(self):
        self.ray.init(address=self.cluster.address)

    def receiving_pid(self):
        """The head's process that pulls objects from other nodes into its store."""
        if self.framework == "ember":
            return self.head.pid
        return self.head.all_processes["raylet"][0].process.pid

    @staticmethod
    def node_id(node):
        return node.node_id  # hex string, as get_runtime_context().get_node_id() gives it

    def kill(self, node):
        """The node and its workers die at once (SIGKILL), as a machine that crashes."""
        self.removed.add(id(node))
        if self.framework == "ember":
            self.cluster.remove_node(node)  # (also frees its shared-memory folder)
        else:
            self.cluster.remove_node(node, allow_graceful=False)

    def freeze(self, node):
        """The node and its workers stop (SIGSTOP) without closing any connection, as a
        machine that drops off the network: only the heartbeat/health-check timeout can tell."""
        if self.framework == "ember":
            self.cluster.cut_off(node)
            return
        import psutil

        procs = []
        for infos in node.all_processes.values():
            for info in infos:
                with contextlib.suppress(psutil.Error):
                    p = psutil.Process(info.process.pid)
                    procs += [p, *p.children(recursive=True)]
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGSTOP)
        self.frozen[id(node)] = procs

    def remove_frozen(self, node):
        self.removed.add(id(node))
        if self.framework == "ember":
            self.cluster.remove_node(node)  # SIGKILL reaches stopped processes too
            return
        for p in self.frozen.pop(id(node), []):
            with contextlib.suppress(Exception):
                p.kill()
        self.cluster.remove_node(node, allow_graceful=False)

    def report_ember_logs(self):
        """Nodes that died on their own, and whatever Ember's processes wrote to their logs
        (empty when all went well), as notes."""
        logs = [
            (n, os.path.join(n.record["session_dir"], "logs", "node.log")) for n in self.ember_nodes
        ]
        if self.cluster.control is not None:
            logs.append((None, self.cluster.control.log))
        for node, path in logs:
            if node is not None and id(node) not in self.removed:
                code = node.node.proc.poll()
                if code is not None:
                    self.ctx.note(
                        f"WARNING: Ember node {node.node_id[:8]} exited by itself ({code})"
                    )
            try:
                with open(path, errors="replace") as f:
                    tail = [line.strip() for line in f.readlines()[-3:] if line.strip()]
            except OSError:
                continue
            if tail:
                what = f"node {node.node_id[:8]}" if node is not None else "control store"
                self.ctx.note(f"Ember {what} log ends: {' | '.join(tail)}"[:400])

    def shutdown(self):
        if self.cluster is None:
            return
        if self.framework == "ember":
            self.report_ember_logs()
        t0 = time.perf_counter()
        if self.framework == "ray":
            for procs in self.frozen.values():
                for p in procs:
                    with contextlib.suppress(Exception):
                        p.kill()
            if self.ray.is_initialized():
                self.ray.shutdown()
        self.cluster.shutdown()  # (Ember's also calls ember.shutdown())
        self.cluster = None
        self.ctx.note(f"cluster shutdown took {time.perf_counter() - t0:.1f} s")


# --------------------------------------------------------------------------- spilled tasks


SPILL_NOOP_TASKS = 2000
SPILL_SLEEP_TASKS = 200
SPILL_SLEEP_S = 0.01


def _spill_samples(ctx, cluster, worker_ids, prefix):
    """The sample function of the two spill workloads: 10 ms tasks, then no-op tasks, each
    batch submitted at once from the driver on the head; records which node ran each 10 ms
    task."""
    ray = ctx.ray
    head_id = cluster.node_id(cluster.head)
    others = sorted(n for n in worker_ids if n != head_id)
    names = {head_id: "head", **{n: f"node{i + 1}" for i, n in enumerate(others)}}
    sleep_tasks = SPILL_SLEEP_TASKS * len(worker_ids) // 2

    @ray.remote
    def noop():
        return None

    @ray.remote
    def nap(seconds):
        time.sleep(seconds)
        return ray.get_runtime_context().get_node_id()

    spread = []

    def once():
        t0 = time.perf_counter()
        ran = ray.get([nap.remote(SPILL_SLEEP_S) for _ in range(sleep_tasks)], timeout=120)
        sleep_rate = sleep_tasks / wl._elapsed(t0)
        t0 = time.perf_counter()
        out = ray.get([noop.remote() for _ in range(SPILL_NOOP_TASKS)], timeout=120)
        noop_rate = SPILL_NOOP_TASKS / wl._elapsed(t0)
        wl._check(len(out) == SPILL_NOOP_TASKS, "no-op results")
        per_node = collections.Counter(ran)
        shown = {names.get(n, n[:8]): k for n, k in sorted(per_node.items(), key=lambda x: x[0])}
        wl._check(set(per_node) <= set(worker_ids), f"tasks ran on other nodes: {shown}")
        spread.append(" ".join(f"{k}={v}" for k, v in sorted(shown.items())))
        return {f"{prefix}_noop": noop_rate, f"{prefix}_10ms": sleep_rate}

    def summary():
        ctx.info[f"{prefix}_10ms_tasks_per_node"] = spread
        ctx.note(
            f"{prefix}_10ms: which nodes ran the {sleep_tasks} tasks, per run: "
            + "; ".join(spread)
            + f" (cluster start {ctx.info.get('cluster_start_s')} s)"
        )

    ctx.defer(summary)
    return once


@cluster_workload(
    "spill_tasks",
    [("spill_noop", "tasks/s", "higher"), ("spill_10ms", "tasks/s", "higher")],
    f"head with 1 CPU, held by an actor (num_cpus=1, pinned to the head), + 2 nodes with 1 "
    f"CPU each; the driver on the head submits {SPILL_NOOP_TASKS} no-op tasks at once and "
    f"gets them: every task spills to the 2 other nodes. spill_10ms: {SPILL_SLEEP_TASKS} "
    f"tasks of time.sleep({SPILL_SLEEP_S}) the same way (2 nodes: at most 200 tasks/s); which "
    "nodes ran them is listed under Details",
)
def spill_tasks(ctx):
    ray = ctx.ray
    cluster = TestCluster(ctx, {"num_cpus": 1})
    others = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.connect()

    @ray.remote(num_cpus=1, resources={"node:__internal_head__": 0.001})
    class Hog:
        def node(self):
            return ray.get_runtime_context().get_node_id()

    hog = Hog.remote()
    on = ray.get(hog.node.remote(), timeout=60)
    wl._check(on == cluster.node_id(cluster.head), "the CPU hog is not on the head")
    ctx.defer(lambda: ray.kill(hog))  # (also keeps the handle, so the actor, alive until then)
    return _spill_samples(ctx, cluster, [cluster.node_id(n) for n in others], "spill")


@cluster_workload(
    "spread_tasks",
    [("spread_noop", "tasks/s", "higher"), ("spread_10ms", "tasks/s", "higher")],
    f"head with 1 CPU (free) + 2 nodes with 1 CPU each, a fresh cluster; the driver on the "
    f"head submits {SPILL_NOOP_TASKS} no-op tasks at once and gets them: the head's CPU is "
    f"saturated by the burst itself and the rest spills. spread_10ms: "
    f"{SPILL_SLEEP_TASKS * 3 // 2} tasks of time.sleep({SPILL_SLEEP_S}) the same way (3 nodes: "
    "at most 300 tasks/s); which nodes ran them is listed under Details",
)
def spread_tasks(ctx):
    cluster = TestCluster(ctx, {"num_cpus": 1})
    others = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.connect()
    ids = [cluster.node_id(n) for n in (cluster.head, *others)]
    return _spill_samples(ctx, cluster, ids, "spread")


# --------------------------------------------------------------------------- makespan


# The mixes of the single-node workload, and six tasks of 1 s (ideal 2 s on three CPUs).
CLUSTER_MIXES = {**wl.makespan_mixes(), "six_1s": [1.0] * 6}


@cluster_workload(
    "makespan_cluster",
    wl.makespan_metrics("cluster_makespan", CLUSTER_MIXES),
    "head with 1 CPU + 2 nodes with 1 CPU each, a fresh cluster; the driver on the head "
    "submits tasks that hold one CPU for a given time (time.sleep: three 1-CPU nodes on this "
    "machine's cores cannot all spin) all at once; each metric is the makespan divided by the "
    "ideal first-free-CPU FIFO schedule on the 3 CPUs: long_first = 3, 1, 1, 1 s (ideal 3 s); "
    "mixed = 30 tasks log-uniform in 10 ms..1 s; 10ms = 200 tasks of 10 ms; six_1s = six "
    "tasks of 1 s (ideal 2 s)",
    max_repeat=3,
)
def makespan_cluster(ctx):
    ray = ctx.ray
    cluster = TestCluster(ctx, {"num_cpus": 1})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.connect()

    @ray.remote
    def hold(seconds):
        time.sleep(seconds)

    return wl.makespan_sampler(ray, hold, 3, "cluster_makespan", CLUSTER_MIXES)


# --------------------------------------------------------------------------- transfer


TRANSFER_SIZES = {"100mb": 100 * MB, "1gb": GIB}
TRANSFER_NODE_TIMEOUT = 30.0

_SENDER_CODE = r"""
import socket, sys
port, size = int(sys.argv[1]), int(sys.argv[2])
buf = memoryview(bytearray(b"\1") * size)  # filled, so every page is allocated
for line in sys.stdin:
    n = int(line)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.recv(1)
        s.sendall(buf[:n])
"""


class LoopbackCopy:
    """The TCP limit on this machine: a sender process writes n bytes with sendall on one
    loopback connection; this process reads them with recv_into into a preallocated, already
    touched buffer. Timed from the go byte to the last byte received.

    ``copy(n, sink="tmpfs")`` receives the same way into an 8 MiB buffer and writes each piece
    with pwrite into a new file in /dev/shm (timed to the last write), which is what a node's
    object store has to do with a pulled object: the same bytes over TCP plus fresh shared
    memory pages. Both are references, not targets' subjects."""

    def __init__(self, ctx, max_size):
        import numpy as np

        self.listener = socket.create_server(("127.0.0.1", 0))
        port = self.listener.getsockname()[1]
        self.buf = np.ones(max_size, dtype=np.uint8)  # touched: no page faults while timing
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SENDER_CODE, str(port), str(max_size)],
            stdin=subprocess.PIPE,
            text=True,
        )
        ctx.defer(self.close)

    def copy(self, n, tries=1, sink="buffer"):
        """GB/s of the fastest of ``tries`` copies of ``n`` bytes (one connection each)."""
        best = None
        for _ in range(tries):
            self.proc.stdin.write(f"{n}\n")
            self.proc.stdin.flush()
            self.listener.settimeout(60)
            conn, _ = self.listener.accept()
            with conn:
                if sink == "tmpfs":
                    dt = self._into_tmpfs(conn, n)
                else:
                    dt = self._into_buffer(conn, n)
            best = dt if best is None else min(best, dt)
        return n / best / GB

    def _into_buffer(self, conn, n):
        view = memoryview(self.buf)[:n]
        t0 = time.perf_counter()
        conn.sendall(b"g")
        got = 0
        while got < n:
            k = conn.recv_into(view[got:])
            if not k:
                raise ConnectionError("the loopback sender closed early")
            got += k
        return wl._elapsed(t0)

    def _into_tmpfs(self, conn, n):
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        path = os.path.join(folder, f"ember-bench-loopback-{os.getpid()}")
        chunk = memoryview(bytearray(8 << 20))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            t0 = time.perf_counter()
            os.ftruncate(fd, n)
            conn.sendall(b"g")
            got = 0
            while got < n:
                k = conn.recv_into(chunk[: min(len(chunk), n - got)])
                if not k:
                    raise ConnectionError("the loopback sender closed early")
                done = 0
                while done < k:
                    done += os.pwrite(fd, chunk[done:k], got + done)
                got += k
            return wl._elapsed(t0)
        finally:
            os.close(fd)
            os.unlink(path)

    def close(self):
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.listener.close()


@cluster_workload(
    "transfer",
    [
        ("transfer_100mb", "GB/s", "higher"),
        ("loopback_100mb", "GB/s", "higher", True),
        ("loopback_tmpfs_100mb", "GB/s", "higher", True),
        ("transfer_1gb", "GB/s", "higher"),
        ("transfer_1gb_fresh", "GB/s", "higher"),
        ("loopback_1gb", "GB/s", "higher", True),
        ("loopback_tmpfs_1gb", "GB/s", "higher", True),
        ("stall_1gb", "s", "lower"),
    ],
    "head (1 CPU) + 1 node with resource 'src'; a task pinned there returns a uint8 array of "
    "100 MB (100 * 2**20 bytes) or 1 GB (2**30 bytes); after wait(fetch_local=False) says it "
    "exists, the driver on the head times get() (pulled over TCP into the head's store, then "
    "mapped). loopback_*: a plain socket copy of the same size between two processes, one "
    "connection, sendall -> recv_into a preallocated touched buffer; loopback_tmpfs_*: the "
    "same, received through an 8 MiB buffer and pwrite into a new /dev/shm file (what a "
    "store must do with a pulled object); each the fastest of 3 copies (100 MB) or 2 (1 GB) "
    "per sample. stall_1gb: the longest ray.nodes() call made every 20 ms from another "
    "thread of the driver during the 1 GB get (Ember answers it through the head node, Ray "
    "from the GCS). Objects are freed and given 1.5 s to go between transfers; object stores "
    "hold 2.5 GiB. Right before each timed get and each tmpfs reference copy a /dev/shm file "
    "of 1.2x the size is written and deleted, so that all of them start from recently freed "
    "memory (a VM artefact, see _recycle_pages); transfer_1gb_fresh is one more 1 GB get per "
    "sample without that step, as a program would see it here (Ember's store may reuse the "
    "file of a freed earlier copy for it; the warm-up run under Details shows a first pull). "
    "Ember node timeout 30 s here (see the code)",
)
def transfer(ctx):
    import numpy as np

    ray = ctx.ray
    store = int(2.5 * GIB)
    # Ember: a node timeout of 30 s instead of ember.testing's 3 s (Ray keeps its default,
    # about 30 s for a killed node). An Ember node does not heartbeat while it receives a
    # pull (stall_* below), and a slow 1 GB pull on this machine once took over 3 s: the
    # control store then declared the head dead and it stopped, ending the run.
    cluster = TestCluster(
        ctx, {"num_cpus": 1, "object_store_memory": store}, node_timeout=TRANSFER_NODE_TIMEOUT
    )
    cluster.add_node(num_cpus=1, resources={"src": 1}, object_store_memory=store)
    cluster.connect()
    loop = LoopbackCopy(ctx, max(TRANSFER_SIZES.values()))

    @ray.remote(resources={"src": 1})
    def make(n):
        import numpy as np

        return np.ones(n, dtype=np.uint8)

    receiver = cluster.receiving_pid()
    cpu = collections.defaultdict(list)  # size name -> [(user, system) s of the receiver]
    recycled = collections.defaultdict(list)  # size name -> [GB/s of _recycle_pages]

    def fetch(name, n, recycle=True):
        """(GB/s of the get, longest ray.nodes() call made meanwhile from another thread)."""
        ref = make.remote(n)
        ready, _ = ray.wait([ref], timeout=120, fetch_local=False)
        wl._check(bool(ready), "the object was not made within 120 s")
        if recycle:
            recycled[name].append(_recycle_pages(int(n * 1.2)))
        probe = _Probe(ray)
        before = _cpu_times(receiver)
        t0 = time.perf_counter()
        arr = ray.get(ref, timeout=120)
        dt = wl._elapsed(t0)
        after = _cpu_times(receiver)
        stall = probe.stop()
        if before and after and recycle:
            cpu[name].append((after[0] - before[0], after[1] - before[1], dt))
        wl._check(isinstance(arr, np.ndarray) and arr.nbytes == n, "wrong object")
        wl._check(arr[0] == 1 and arr[n // 2] == 1 and arr[-1] == 1, "wrong data")
        del arr, ref
        gc.collect()
        time.sleep(1.5)  # let both stores free it (Ember frees after a 1 s grace)
        return n / dt / GB, stall

    def once():
        out = {}
        for name, n in TRANSFER_SIZES.items():
            tries = 3 if n < GIB else 2
            if name == "1gb":
                out["transfer_1gb_fresh"], _ = fetch(name, n, recycle=False)
            out[f"transfer_{name}"], stall = fetch(name, n)
            if name == "1gb":
                out["stall_1gb"] = stall
            out[f"loopback_{name}"] = loop.copy(n, tries)
            _recycle_pages(int(n * 1.2))
            out[f"loopback_tmpfs_{name}"] = loop.copy(n, tries, sink="tmpfs")
        ctx.info.setdefault("first_run", {k: round(v, 2) for k, v in out.items()})
        return out

    def summary():
        first = ctx.info.get("first_run")
        if first:
            ctx.note(f"first (warm-up) run, not counted, GB/s: {first}")
        for name, speeds in recycled.items():
            cells = ", ".join(f"{v:.2f}" for v in speeds)
            ctx.note(
                f"transfer_{name}: writing the /dev/shm file of 1.2x the size just before each "
                f"get (see _recycle_pages) ran at GB/s: {cells}"
            )
        for name, runs in cpu.items():
            cells = ", ".join(f"{u:.2f}+{s:.2f} of {t:.2f}" for u, s, t in runs[1:])
            ctx.note(
                f"transfer_{name}: CPU time (user+system s) of the head's receiving process "
                f"(Ember node manager / Ray raylet) during get, of the get's wall time: {cells}"
            )

    ctx.defer(summary)
    return once


# --------------------------------------------------------------------------- node failure


FAILURE_TASKS = 10
FAILURE_TASK_S = 0.3


def _recycle_pages(n):
    """Write and delete a file of ``n`` bytes in /dev/shm; returns its write speed in GB/s.

    On this machine (a VM whose guest hands freed memory back to the host: virtio-balloon
    free page reporting) memory that has been free for a while is slow to use again: writing
    a new tmpfs file then runs at ~0.5 GB/s instead of 2-3 GB/s, as the host backs every page
    anew. Which side of a measurement gets such pages depends on what happened to be freed
    just before. Calling this right before each timed transfer gives every measurement (the
    frameworks' gets and the tmpfs reference alike) recently freed, fast memory; its own
    speed, reported under Details, shows how slow fresh memory was at that moment."""
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    path = os.path.join(folder, f"ember-bench-recycle-{os.getpid()}")
    chunk = memoryview(bytearray(b"\1" * (8 << 20)))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        t0 = time.perf_counter()
        done = 0
        while done < n:
            done += os.pwrite(fd, chunk[: min(len(chunk), n - done)], done)
        return n / wl._elapsed(t0) / GB
    finally:
        os.close(fd)
        os.unlink(path)


class _Probe:
    """Calls ray.nodes() every 20 ms from a thread until stopped; stop() returns the longest
    call (or, if one is still running, how long it has been running)."""

    def __init__(self, ray):
        self.ray = ray
        self.longest = 0.0
        self.started = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            self.started = time.perf_counter()
            try:
                self.ray.nodes()
            except Exception:  # a failed call counts as its duration
                pass
            self.longest = max(self.longest, time.perf_counter() - self.started)
            self.started = None
            self.done.wait(0.02)

    def stop(self):
        self.done.set()
        started = self.started
        if started is not None:
            self.longest = max(self.longest, time.perf_counter() - started)
        self.thread.join(timeout=60)
        return self.longest


def _cpu_times(pid):
    """(user, system) CPU seconds of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _await_victim(refs, rest, marks, tag, nodes):
    """A node that is running one of the job's unfinished tasks right now (each task leaves a
    file named after its index and node when it starts)."""
    by_id = {TestCluster.node_id(n): n for n in nodes}
    pending = {refs.index(r) for r in rest}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for name in os.listdir(marks):
            run, index, node_id = name.split(".")
            if run == tag and int(index) in pending and node_id in by_id:
                return by_id[node_id]
        time.sleep(0.002)
    raise AssertionError("no task of the job started on a worker node within 10 s")


def _watch_death(ray, node_id, until):
    """Poll ray.nodes() from a thread; returns (thread, result dict with 't' once dead)."""
    found = {}

    def poll():
        while time.perf_counter() < until and "t" not in found:
            try:
                alive = {n["NodeID"]: n["Alive"] for n in ray.nodes()}
            except Exception as exc:  # report, keep polling
                found.setdefault("errors", []).append(repr(exc)[:120])
                alive = {}
            if alive and not alive.get(node_id, False):
                found["t"] = time.perf_counter()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return thread, found


@cluster_workload(
    "node_failure",
    [
        ("kill_detect", "s", "lower"),
        ("kill_recovery", "s", "lower"),
        ("cutoff_detect", "s", "lower"),
        ("cutoff_recovery", "s", "lower"),
    ],
    f"head (1 CPU) + 2 nodes with resource 'w'; a job of {FAILURE_TASKS} tasks "
    f"(resources={{'w': 1}}, max_retries=3, each sleeps {FAILURE_TASK_S} s); once all but 2 "
    "are done, the node running one of the last 2 is killed (kill_*: SIGKILL of the node and "
    "its workers, Ember cluster.remove_node / Ray remove_node(allow_graceful=False)) or "
    "frozen (cutoff_*: SIGSTOP of the node and its workers, Ember cluster.cut_off; only the "
    "heartbeat/health-check timeout can tell). detect = kill -> ray.nodes() shows it dead; "
    "recovery = kill -> get() of the whole job returns (includes re-running the lost task). "
    f"Node timeout {NODE_TIMEOUT:g} s on both (Ray: GCS health checks, see RAY_HEALTH_CHECK). "
    f"A sample that takes over {FAILURE_CAP:g} s is recorded as {FAILURE_CAP:g} and shown as "
    f">{FAILURE_CAP:g}. The dead node is replaced before the next sample",
    max_repeat=3,
    warmup=False,
)
def node_failure(ctx):
    import importlib

    ray = ctx.ray
    strategies = importlib.import_module(f"{ctx.framework}.util.scheduling_strategies")
    cluster = TestCluster(
        ctx, {"num_cpus": 1}, node_timeout=NODE_TIMEOUT, ray_system_config=RAY_HEALTH_CHECK
    )
    nodes = []
    marks = tempfile.mkdtemp(prefix="ember-bench-marks-")
    ctx.defer(lambda: shutil.rmtree(marks, ignore_errors=True))

    @ray.remote(resources={"w": 1}, max_retries=3)
    def work(tag, seconds, marks):
        node_id = ray.get_runtime_context().get_node_id()
        open(os.path.join(marks, f"{tag}.{node_id}"), "w").close()
        time.sleep(seconds)
        return node_id

    def add_worker_node():
        node = cluster.add_node(num_cpus=1, resources={"w": 1})
        nodes.append(node)
        return node

    def warm(node):
        # A task pinned to the new node, so that it has a worker before the next job.
        pin = strategies.NodeAffinitySchedulingStrategy(cluster.node_id(node), soft=False)
        out = ray.get(work.options(scheduling_strategy=pin).remote("w.0", 0, marks), timeout=60)
        wl._check(out == cluster.node_id(node), "the warm-up task ran elsewhere")

    add_worker_node()
    add_worker_node()
    cluster.connect()
    for node in nodes:
        warm(node)
    runs = []
    counter = iter(range(1, 10**6))

    def experiment(how):
        tag = f"r{next(counter)}"
        refs = [work.remote(f"{tag}.{i}", FAILURE_TASK_S, marks) for i in range(FAILURE_TASKS)]
        _, rest = ray.wait(refs, num_returns=FAILURE_TASKS - 2, timeout=60)
        wl._check(len(rest) == 2, f"the job did not get to its last 2 tasks ({len(rest)} left)")
        victim = _await_victim(refs, rest, marks, tag, nodes)
        victim_id = cluster.node_id(victim)
        t_kill = time.perf_counter()
        (cluster.kill if how == "kill" else cluster.freeze)(victim)
        thread, death = _watch_death(ray, victim_id, t_kill + FAILURE_CAP)
        finished = True
        try:
            out = ray.get(refs, timeout=max(0.1, t_kill + FAILURE_CAP - time.perf_counter()))
            recovery = time.perf_counter() - t_kill
        except Exception as exc:  # GetTimeoutError in both; anything else is reported
            if type(exc).__name__ != "GetTimeoutError":
                raise
            finished, out, recovery = False, None, FAILURE_CAP
            _censor(ctx, f"{how}_recovery")
        thread.join(timeout=FAILURE_CAP + 5)
        detect = death["t"] - t_kill if "t" in death else FAILURE_CAP
        if "t" not in death:
            _censor(ctx, f"{how}_detect")
        # Clean up: the frozen node goes for good, the job must end, a new node replaces it.
        if how == "cutoff":
            cluster.remove_frozen(victim)
        nodes.remove(victim)
        if not finished:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=30)
            ctx.info.setdefault("late_finish", []).append(len(ready))
        if out is not None:
            wl._check(len(out) == FAILURE_TASKS, "job results")
        warm(add_worker_node())
        runs.append(
            {
                "how": how,
                "detect_s": round(detect, 3),
                "recovery_s": round(recovery, 3),
                "finished": finished,
                "poll_errors": death.get("errors", [])[:2],
            }
        )
        return detect, recovery

    def once():
        kill_detect, kill_recovery = experiment("kill")
        cut_detect, cut_recovery = experiment("cutoff")
        return {
            "kill_detect": kill_detect,
            "kill_recovery": kill_recovery,
            "cutoff_detect": cut_detect,
            "cutoff_recovery": cut_recovery,
        }

    def summary():
        ctx.info["runs"] = runs
        if ctx.framework == "ray":
            cfg = ", ".join(f"{k}={v}" for k, v in RAY_HEALTH_CHECK.items())
            ctx.note(f"Ray _system_config: {cfg}")
        else:
            timeout, beat = NODE_TIMEOUT, EMBER_HEARTBEAT
            ctx.note(f"Ember Cluster(node_timeout={timeout:g}, heartbeat_interval={beat:g})")
        cells = "; ".join(
            f"{r['how']}: detect {r['detect_s']:.2f} s, done "
            + (f"{r['recovery_s']:.2f} s" if r["finished"] else f"not within {FAILURE_CAP:g} s")
            for r in runs
        )
        ctx.note(f"per run: {cells}")
        late = ctx.info.get("late_finish")
        if late:
            ctx.note(
                f"jobs that missed the {FAILURE_CAP:g} s limit had {late} of {FAILURE_TASKS} "
                "results 30 s after the frozen node was killed for good"
            )

    ctx.defer(summary)
    return once


# --------------------------------------------------------------------------- driver


def main(argv=None):
    # Ray: make "127.0.0.1" mean loopback (by default Ray replaces it with this host's
    # address). Must be set before ray is imported, so it is set here, not in run.py.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    return wl.main(argv, registry=CLUSTER_WORKLOADS, description=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
