"""Starting a single-machine node in the background for ``ember.init()``.

The node manager runs as a child process in its own session (so Ctrl-C in the driver's
terminal reaches only the driver), watches the driver's pid, and exits with it. ``init()``
returns as soon as the node listens; the node starts its first workers meanwhile.

Each node has a session folder (its sockets, spilled objects and, by default, its logs) that
goes when the node ends on request; logs are kept only where the user asked for them
(``$EMBER_LOG_DIR``, ``ember start --log-dir``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ember._core.labels import check_node_labels
from ember._protocol import ids
from ember._runtime.launch import cluster_files
from ember._runtime.launch.process_config import (
    PACKAGE_PARENT,
    ControlStoreConfig,
    DashboardConfig,
    NodeConfig,
    encode,
    system_config,
)
from ember._runtime.memory import available_memory, total_memory

if TYPE_CHECKING:
    import socket

    from ember._runtime.launch.dashboard import DashboardProcess

_SHM = "/dev/shm"


@dataclass
class LocalNode:
    proc: subprocess.Popen[bytes]
    node_address: str
    control_address: str
    session_dir: str
    shm_dir: str
    spill_dir: str
    node_id: bytes
    resources: dict[str, float]
    log_dir: str
    tcp_address: str | None = None
    dashboard: DashboardProcess | None = None  # a head's, which ends before it

    def stop(self, timeout: float = 5.0) -> None:
        if self.dashboard is not None:
            end_process(self.dashboard.proc, timeout)

        def wedged() -> None:  # it writes where every thread was to its log (kept), then goes
            with contextlib.suppress(OSError):
                self.proc.send_signal(cluster_files.DUMP_STACKS)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=0.5)

        end_process(self.proc, timeout, wedged)

    def remove_files(self, keep_logs: bool = False) -> str | None:
        """What a node that was killed (not stopped) leaves: its shared memory and session
        folder; with ``keep_logs``, not its logs: returns their folder if they stayed there.
        Kept logs ($EMBER_LOG_DIR) are elsewhere and stay anyway."""
        return cluster_files.remove_node_files(
            self.shm_dir, self.session_dir, self.log_dir, keep_logs
        )


def end_process(
    proc: subprocess.Popen[bytes], timeout: float, wedged: Callable[[], None] | None = None
) -> None:
    """Ask ``proc`` to end (SIGTERM) and wait; if it has not within ``timeout``, call
    ``wedged`` (a last look at it) and kill it."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if wedged is not None:
                wedged()
            proc.kill()
    proc.wait(timeout=timeout)


def _store_dirs(name: str, wanted: int | None) -> tuple[str, int]:
    """Where objects live, and the store's capacity in bytes."""
    capacity = wanted if wanted is not None else int(total_memory() * 0.3)
    if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK):
        st = os.statvfs(_SHM)
        free = st.f_bavail * st.f_frsize
        if free < capacity:
            warnings.warn(
                f"{_SHM} has only {free / 2**30:.1f} GiB free, less than the object store's "
                f"{capacity / 2**30:.1f} GiB: objects beyond that spill to disk, which is "
                "slower. In a container, give it more shared memory (docker run --shm-size=...).",
                stacklevel=4,
            )
            capacity = max(1, int(free * 0.9))
        return os.path.join(_SHM, f"ember-{name}"), capacity
    warnings.warn(
        f"{_SHM} is not available: the object store uses a folder in {tempfile.gettempdir()}, "
        "so large objects are slower to share.",
        stacklevel=4,
    )
    return os.path.join(cluster_files.ember_tmp(), f"objects-{name}"), capacity


@dataclass
class SpawnedNode:
    """A node manager that was started and may not listen yet; ``wait()`` for it."""

    proc: subprocess.Popen[bytes]
    read_fd: int
    config: NodeConfig

    def wait(self, timeout: float = 30.0) -> LocalNode:
        """The node, once it listens; if it fails to start (or this is interrupted), it is
        stopped and its folders go (the error carries its log)."""
        config = self.config
        try:
            ready = _wait_ready(self.proc, self.read_fd, timeout, "node manager", config.log)
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            cluster_files.remove_node_files(config.shm_dir, config.session_dir)
            raise
        return LocalNode(
            self.proc,
            ready["node"],
            ready["control"],
            config.session_dir,
            config.shm_dir,
            config.spill_dir,
            config.node_id,
            config.resources,
            config.log_dir,
            ready.get("tcp"),
        )


def _wait_ready(
    proc: subprocess.Popen[bytes], read_fd: int, timeout: float, what: str, log: str
) -> dict[str, Any]:
    try:
        line = _read_line(read_fd, timeout=timeout, proc=proc)
    finally:
        os.close(read_fd)
    if not line:
        proc.kill()
        proc.wait()
        said = cluster_files.log_tail(log).strip()
        raise RuntimeError(
            f"The Ember {what} did not start"
            + (f". Its log says:\n{said}" if said else " (it wrote nothing to its log).")
        )
    ready: dict[str, Any] = json.loads(line)
    return ready


def _spawn(
    module: str,
    config: NodeConfig | ControlStoreConfig | DashboardConfig,
    log_path: str,
    ready: bool = True,
    keep_fds: tuple[int, ...] = (),
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``python -m module`` in its own session with ``config`` on its stdin (not on its
    command line, which any user can read: it may hold the cluster's token), and (if
    ``ready``) a pipe on which it says it is ready; else the returned descriptor is -1. The
    descriptors ``keep_fds`` stay open in it."""
    read_fd, write_fd = os.pipe() if ready else (-1, -1)
    if ready:
        assert not isinstance(config, DashboardConfig)
        config = dataclasses.replace(config, ready_fd=write_fd)
    path = [PACKAGE_PARENT] + [p for p in sys.path if p and os.path.isdir(p)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    # The token comes in the config; in the environment every task and its subprocesses
    # would inherit it (and /proc/PID/environ keeps showing it even once removed there).
    env.pop("EMBER_TOKEN", None)
    log = open(log_path, "ab")
    with log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module],
            pass_fds=((write_fd,) if ready else ()) + keep_fds,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    if ready:
        os.close(write_fd)
    assert proc.stdin is not None
    with proc.stdin:
        proc.stdin.write(encode(config))
    return proc, read_fd


@dataclass(frozen=True)
class Session:
    """A node's folders: ``dir`` (sockets, spilled objects) is removed when the node ends;
    ``log_dir`` is ``dir/logs``, or a folder of its own under the folder the user asked
    to keep logs in."""

    dir: str
    log_dir: str


def new_session(log_root: str | None = None, temp_dir: str | None = None) -> Session:
    """Make a session's folders (under ``temp_dir``, default the system's temporary folder);
    its logs go under ``log_root`` (default $EMBER_LOG_DIR) and stay there, or, without one,
    in the session folder and go with it."""
    name = ids.random_id(4).hex()
    session_dir = os.path.join(cluster_files.ember_tmp(temp_dir), f"s-{name}")
    os.mkdir(session_dir, 0o700)  # (not makedirs: a folder planted there is refused)
    os.mkdir(os.path.join(session_dir, "spill"), 0o700)
    log_root = log_root or os.environ.get(cluster_files.LOG_DIR_ENV)
    if not log_root:
        log_dir = os.path.join(session_dir, "logs")
        os.mkdir(log_dir, 0o700)
        return Session(session_dir, log_dir)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    log_dir = os.path.join(os.path.abspath(log_root), f"session_{stamp}_{name}")
    try:
        os.makedirs(log_dir, mode=0o700, exist_ok=True)
    except OSError as e:
        shutil.rmtree(session_dir, ignore_errors=True)
        raise ValueError(
            f"cannot keep logs in {log_root} ({e.strerror}): choose a folder you can write "
            f"to ({cluster_files.LOG_DIR_ENV}=... or `ember start --log-dir ...`)"
        ) from None
    return Session(session_dir, log_dir)


def spawn_node(
    *,
    resources: dict[str, float],
    object_store_memory: int | None,
    prestart_workers: int,
    cluster: dict[str, Any] | None = None,
    session: Session | None = None,
    settings: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    node_ip: str | None = None,
    temp_dir: str | None = None,
) -> SpawnedNode:
    """Start the node manager and return at once, so the caller can work while it boots.

    Without ``cluster`` the node runs its own control store and ends with this process; with
    it (``NodeConfig``'s cluster fields: ``control_address``, ``token``, ``node_ip``...) it
    joins that cluster and lives until it is stopped. Its folders are ``session`` (a new one
    by default, under ``temp_dir``). ``settings``: ``init(_system_config=...)``, of which the
    node takes the keys it knows (``process_config.SYSTEM_CONFIG_KEYS``). ``resources``
    without ``memory`` get Ray's: the memory available beside the object store. ``labels``:
    the node's (``_core/labels.py``); ``node_ip``: the address it shows (a single-machine
    node's, ``init(_node_ip_address=...)``)."""
    # Checked before anything starts, for init() and `ember start` alike.
    labels = check_node_labels(labels or {})
    node_settings = system_config(settings)
    session = session or new_session(temp_dir=temp_dir)
    session_dir = session.dir
    name = os.path.basename(session_dir)[2:]
    shm_dir, capacity = _store_dirs(name, object_store_memory)
    if "memory" not in resources:
        # Ray's "memory" resource: what is free for tasks and actors beside the store.
        resources = {**resources, "memory": float(max(0, available_memory() - capacity))}
    # Only this user's processes read and write objects (makedirs would give the store's
    # own folder the default mode: readable by everyone).
    os.mkdir(shm_dir, 0o700)
    config = NodeConfig(
        node_id=ids.random_id(16),
        session_dir=session_dir,
        shm_dir=shm_dir,
        spill_dir=os.path.join(session_dir, "spill"),
        log_dir=session.log_dir,
        log=os.path.join(session.log_dir, "node.log"),
        object_store_memory=capacity,
        resources=resources,
        labels=labels,
        owner_pid=0 if cluster else os.getpid(),
        prestart_workers=prestart_workers,
        **node_settings,
        **(cluster or {"node_ip": node_ip}),
    )
    try:
        os.mkdir(os.path.join(shm_dir, "pool"), 0o700)
        proc, read_fd = _spawn("ember._runtime.node.manager", config, config.log)
    except BaseException:
        cluster_files.remove_node_files(shm_dir, session_dir)
        raise
    return SpawnedNode(proc, read_fd, config)


@dataclass
class ControlStoreProcess:
    proc: subprocess.Popen[bytes]
    address: str  # tcp:host:port
    log: str


def spawn_control_store(
    *,
    host: str,
    port: int,
    token: str,
    storage: str | None = None,
    node_timeout: float | None = None,
    heartbeat_interval: float | None = None,
    timeout: float = 30.0,
    fresh: bool = True,
    wait: bool = True,
    log_dir: str,
) -> ControlStoreProcess:
    """Start a cluster's control store (on the head) and, unless told not to ``wait``, wait
    until it listens. With external ``storage``, ``fresh`` starts a new cluster's tables;
    otherwise it is a restart and picks up the tables where the last one left them. Its log
    goes in ``log_dir`` (the head node's)."""
    config = ControlStoreConfig(
        f"tcp:{host}:{port}",
        token,
        fresh=fresh,
        storage=storage or None,
        node_timeout=node_timeout,
        heartbeat_interval=heartbeat_interval,
    )
    log = os.path.join(log_dir, "control_store.log")
    proc, read_fd = _spawn("ember._runtime.control_store.server", config, log, ready=wait)
    if not wait:
        return ControlStoreProcess(proc, config.address, log)
    ready = _wait_ready(proc, read_fd, timeout, "control store", log)
    return ControlStoreProcess(proc, ready["control"], log)


def _read_line(fd: int, timeout: float, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
            return ""
        if select.select([fd], [], [], min(left, 0.5))[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""
            data += chunk
    return data.decode()


def _wait_joined(address: str, token: str, node: LocalNode, timeout: float = 15.0) -> None:
    """Return once the control store lists the node alive; else say why (the caller stops
    the node)."""
    from ember._runtime.launch import admin

    deadline = time.monotonic() + timeout
    problem = "it never registered"
    while time.monotonic() < deadline and node.proc.poll() is None:
        try:
            table = admin.nodes(address, token, timeout=2.0)
        except (OSError, ConnectionError) as e:
            problem = str(e)
        else:
            if any(n["node_id"] == node.node_id and n["alive"] for n in table):
                return
        time.sleep(0.05)
    if node.proc.poll() is not None:
        problem = f"the node exited with code {node.proc.returncode}"
    log = cluster_files.log_tail(os.path.join(node.log_dir, "node.log")).strip()
    raise RuntimeError(
        f"The node did not join the cluster at {address} ({problem})."
        + (f" Its log says:\n{log}" if log else "")
    )


def node_resources(
    num_cpus: float | None,
    num_gpus: float | None,
    custom: dict[str, float] | None,
    host: str = "127.0.0.1",
    head: bool = True,
    memory: int | None = None,
) -> dict[str, float]:
    """A node's resources as Ray counts them, with the ``node:<ip>`` marker. ``memory``
    (bytes) left None is filled in when the node starts (``spawn_node``)."""
    for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if value is not None and (isinstance(value, bool) or value < 0):
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    custom = dict(custom or {})
    if memory is not None and (isinstance(memory, bool) or memory < 0):
        raise ValueError(f"memory must be a number of bytes >= 0, got {memory!r}")
    for key in ("CPU", "GPU"):
        if key in custom:
            raise ValueError(
                f"{key} is not a custom resource: set it with num_{key.lower()}s=... in init() "
                f"(--num-{key.lower()}s on the command line), not in resources."
            )
    if "memory" in custom:
        raise ValueError(
            "memory is not a custom resource: set it with _memory=... in init() (--memory on "
            "the command line), not in resources."
        )
    total: dict[str, float] = {
        "CPU": float(os.cpu_count() or 1) if num_cpus is None else float(num_cpus),
        "GPU": float(num_gpus or 0),
        f"node:{host}": 1.0,
    }
    if memory is not None:
        total["memory"] = float(int(memory))
    if head:
        total["node:__internal_head__"] = 1.0
    total.update({k: float(v) for k, v in custom.items()})
    return {k: v for k, v in total.items() if v}


def start_cluster_node(
    *,
    address: str | None,
    token: str,
    host: str,
    port: int = 0,
    resources: dict[str, float],
    object_store_memory: int | None = None,
    storage: str | None = None,
    node_timeout: float | None = None,
    heartbeat_interval: float | None = None,
    origin: str = "cli",
    supervise: bool = False,
    control_store_timeout: float | None = None,
    log_dir: str | None = None,
    settings: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    dashboard: socket.socket | None = None,
) -> tuple[dict[str, Any], LocalNode, ControlStoreProcess | None]:
    """Start a long-lived node: a head (``address`` None: a control store on ``host:port``
    and a node) or a node joining the cluster at ``address`` (``HOST:PORT``). Records it for
    ``ember stop`` and ``init(address=...)``; returns the record, the node and the store.

    A node joins only an Ember cluster that takes its token: anything else at ``address``
    fails at once, before a process starts. Whatever fails ends what was started here, and
    its folders (the error carries the log). Logs are kept under ``log_dir`` if given.

    With ``supervise`` and ``storage``, the head node starts the control store again if it
    dies (its tables survive in the storage). A node that cannot reach the control store for
    ``control_store_timeout`` seconds stops. ``settings`` and ``labels`` as in
    ``spawn_node``. A head given a ``dashboard`` socket (``dashboard.listen_socket``) serves
    the dashboard there, to browsers that show the cluster's token."""
    from ember._runtime.launch import admin

    check_node_labels(labels or {})  # (before anything starts)
    store = None
    node = None
    cluster: dict[str, Any] = {"token": token, "node_ip": host}
    if control_store_timeout is not None:
        cluster["control_store_timeout"] = control_store_timeout
    if address is not None:
        admin.nodes(address, token, timeout=5.0)
    session = new_session(log_dir)
    try:
        if address is None:
            store_settings: dict[str, Any] = {
                "host": host,
                "token": token,
                "storage": storage,
                "node_timeout": node_timeout,
                "heartbeat_interval": heartbeat_interval,
                "log_dir": session.log_dir,
            }
            store = spawn_control_store(port=port, **store_settings)
            address = cluster_files.cluster_address(store.address)
            if supervise and storage:
                store_settings["port"] = int(address.rsplit(":", 1)[1])
                cluster["control_store_pid"] = store.proc.pid
                cluster["control_store_settings"] = store_settings
        cluster["control_address"] = f"tcp:{address}"
        node = spawn_node(
            resources=resources,
            object_store_memory=object_store_memory,
            prestart_workers=min(int(resources.get("CPU", 1)), 8),
            cluster=cluster,
            session=session,
            settings=settings,
            labels=labels,
        ).wait()
        _wait_joined(address, token, node)
        if dashboard is not None:
            from ember._runtime.launch.dashboard import spawn_dashboard

            node.dashboard = spawn_dashboard(
                dashboard,
                control_address=f"tcp:{address}",
                token=token,
                login_token=token,
                owner_pid=node.proc.pid,
                log_dir=session.log_dir,
                shown_host=host,
            )
    except BaseException:
        if dashboard is not None:
            dashboard.close()
        if node is not None:
            node.stop()
        if store is not None:
            store.proc.kill()
            store.proc.wait()
        # (a node that did not start removed its shared memory's folder itself)
        cluster_files.remove_node_files(node.shm_dir if node else None, session.dir)
        raise
    record = {
        "node_id": node.node_id.hex(),
        "pid": node.proc.pid,
        "pid_started": cluster_files.started_at(node.proc.pid),
        "control_pid": store.proc.pid if store is not None else None,
        "control_started": cluster_files.started_at(store.proc.pid) if store else None,
        **_dashboard_record(node.dashboard),
        "origin": origin,
        "address": address,
        "token": token,
        "is_head": store is not None,
        "host": host,
        "local_address": node.node_address,
        "tcp_address": node.tcp_address,
        "shm_dir": node.shm_dir,
        "spill_dir": node.spill_dir,
        "session_dir": node.session_dir,
        "log_dir": node.log_dir,
    }
    cluster_files.write_record(record)
    return record, node, store


def _dashboard_record(dashboard: DashboardProcess | None) -> dict[str, Any]:
    """What ``ember stop`` needs to end a head's dashboard, and where it is."""
    if dashboard is None:
        return {}
    return {
        "dashboard_pid": dashboard.proc.pid,
        "dashboard_started": cluster_files.started_at(dashboard.proc.pid),
        "dashboard_url": dashboard.url,
    }
