"""Connecting this process to Ember: ``init``, ``shutdown`` and the runtime behind the API.

``init()`` with no address starts a single-machine node in the background and connects the
driver to it; ``local_mode=True`` instead runs everything in this process. Calls that need a
runtime before ``init()`` start one with defaults, as Ray does.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import logging
import os
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ember._api import progress_bars
from ember._core.progress_bars import MAGIC
from ember._protocol import ids
from ember._runtime import state
from ember._runtime.launch import cluster_files
from ember._runtime.launch.launcher import (
    LocalNode,
    node_resources,
    spawn_node,
)
from ember._runtime.memory import available_memory
from ember.exceptions import AuthenticationError

if TYPE_CHECKING:
    from ember._runtime.client.core_client import CoreClient
    from ember._runtime.object_store.remote_store import RemoteStore
    from ember._runtime.runtime import Runtime

_lock = threading.RLock()
_node: LocalNode | None = None
# The dashboard of the cluster this driver joined, when its head runs on this host.
_joined_dashboard = ""


def runtime() -> Runtime:
    """The runtime of this process, started with defaults if ``init()`` was not called."""
    rt = state.current()
    if rt is None:
        init()
        rt = state.current()
        assert rt is not None  # init() set it
    return rt


def is_initialized() -> bool:
    return state.current() is not None


def init(
    address: str | None = None,
    *,
    num_cpus: int | float | None = None,
    num_gpus: int | float | None = None,
    resources: dict[str, float] | None = None,
    labels: dict[str, str] | None = None,
    object_store_memory: int | None = None,
    local_mode: bool = False,
    ignore_reinit_error: bool = False,
    include_dashboard: bool | None = None,
    dashboard_host: str | None = None,
    dashboard_port: int | None = None,
    job_config: Any = None,
    configure_logging: bool = True,
    logging_level: int | str = logging.INFO,
    logging_format: str | None = None,
    log_to_driver: bool = True,
    namespace: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    **kwargs: Any,
) -> RayContext:
    """Start Ember on this machine and connect this driver; with ``address`` ("auto" or
    "HOST:PORT"), connect to a running cluster through this host's node instead.

    Every keyword of Ray's ``init`` is either honoured or refused with an error naming it.
    Hidden keywords honoured: ``_temp_dir`` (where the session folder goes), ``_node_ip_address``
    (the address this node shows), ``_memory`` (the node's ``memory`` resource, bytes),
    ``_system_config`` (Ember's settings: ``process_config.SYSTEM_CONFIG_KEYS``),
    ``_redis_password`` (Ray's default only: Ember's clusters use a token) and
    ``_enable_object_reconstruction`` (True only: Ember always rebuilds lost objects)."""
    global _node
    with _lock:
        if state.current() is not None:
            if ignore_reinit_error:
                return _context_info()
            raise RuntimeError(
                "Maybe you called ember.init twice by accident? This error can be suppressed "
                "by passing ignore_reinit_error=True, or call ember.shutdown() first."
            )
        hidden = _hidden_init_args(kwargs)
        if job_config is not None:
            raise NotImplementedError(
                "init(job_config=...) is not supported by Ember: pass namespace=... and "
                "runtime_env=... to init() directly."
            )
        job_env: dict[str, Any] = {}
        if runtime_env is not None:  # (bad input fails before anything starts)
            from ember._api import runtime_env as runtime_env_api

            job_env = runtime_env_api.check(runtime_env)
        _configure_logging(configure_logging, logging_level, logging_format)
        ns = namespace or f"anonymous-{ids.random_id(8).hex()}"
        if address is None:
            address = os.environ.get("EMBER_ADDRESS")
        if address not in (None, "local"):
            given = {
                "num_cpus": num_cpus is not None,
                "num_gpus": num_gpus is not None,
                "resources": bool(resources),
                "labels": bool(labels),
                "object_store_memory": object_store_memory is not None,
                "local_mode": local_mode,
                "include_dashboard": include_dashboard is not None,
                "dashboard_host": dashboard_host is not None,
                "dashboard_port": dashboard_port is not None,
                **{name: True for name in hidden if name in _NODE_ARGS},
            }
            if any(given.values()):
                names = ", ".join(name for name, on in given.items() if on)
                raise ValueError(
                    "When connecting to a running cluster (address=...), each node's resources "
                    f"and settings are set by `ember start` on that node: drop {names} from "
                    "init()."
                )
            client = _connect_cluster(address, ns, log_to_driver)
            state.set_current(client)
            return _start_job(client, job_env)
        host = hidden.get("_node_ip_address") or "127.0.0.1"
        total = node_resources(num_cpus, num_gpus, resources, host, memory=hidden.get("_memory"))
        board = _dashboard_socket(include_dashboard, dashboard_host, dashboard_port, local_mode)
        if local_mode:
            if labels:
                raise ValueError(
                    "local_mode runs everything in this process, which has no node labels: "
                    "drop labels or local_mode."
                )
            from ember._runtime.client.local import LocalRuntime
            from ember._runtime.launch.process_config import system_config

            system_config(hidden.get("_system_config"))  # (checked as a node would check it)

            total.setdefault("memory", float(available_memory()))  # (no store beside it)
            state.set_current(LocalRuntime(total, ns, job_env))
            return _context_info()
        try:
            spawned = spawn_node(
                resources=total,
                object_store_memory=object_store_memory,
                prestart_workers=min(int(total.get("CPU", 1)), 8),
                settings=hidden.get("_system_config"),
                labels=labels,
                node_ip=hidden.get("_node_ip_address"),
                temp_dir=hidden.get("_temp_dir"),
            )
            # Imported while the node boots: the two overlap on a multi-core machine.
            from ember._runtime.client.core_client import CoreClient  # noqa: F401
            from ember._runtime.object_store.store import StoreFiles  # noqa: F401

            node = spawned.wait()
        except BaseException:
            if board is not None:
                board.close()
            raise
        try:
            if board is not None:
                _start_dashboard(board, node)
            client = _client(
                node.node_address,
                node.control_address,
                node.shm_dir,
                node.spill_dir,
                node.node_id,
                None,
                ns,
                log_to_driver,
            )
        except BaseException:
            node.stop()
            raise
        _node = node
        # (so that `ember list` and the state API find this session from another process)
        cluster_files.write_session(node.node_id.hex(), node.control_address, node.proc.pid)
        state.set_current(client)
        return _start_job(client, job_env)


# Ray's hidden ``init`` keywords that Ember honours; those in _NODE_ARGS set up the node that
# init() starts, so they make no sense when joining a cluster.
_HIDDEN_INIT_ARGS = (
    "_temp_dir",
    "_node_ip_address",
    "_memory",
    "_system_config",
    "_redis_password",
    "_enable_object_reconstruction",
)
_NODE_ARGS = ("_temp_dir", "_node_ip_address", "_memory", "_system_config")
# Ray's keywords that Ember does not implement: refused by name rather than ignored.
_UNSUPPORTED_INIT_ARGS = (
    "logging_config",
    "enable_resource_isolation",
    "cgroup_path",
    "system_reserved_cpu",
    "system_reserved_memory",
    "proxy_server_url",
    "_plasma_directory",
    "object_spilling_directory",
    "_driver_object_store_memory",
    "_redis_username",
    "_metrics_export_port",
    "_tracing_startup_hook",
    "_node_name",
)
_RAY_DEFAULT_REDIS_PASSWORD = "5241590000000000"


def _hidden_init_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The hidden keywords Ember honours, checked; any other keyword is refused by name."""
    unsupported = sorted(k for k in kwargs if k in _UNSUPPORTED_INIT_ARGS)
    if unsupported:
        raise NotImplementedError(
            f"init() does not support {', '.join(unsupported)} in Ember: remove "
            f"{'it' if len(unsupported) == 1 else 'them'}."
        )
    unknown = sorted(k for k in kwargs if k not in _HIDDEN_INIT_ARGS)
    if unknown:
        raise TypeError(
            f"init() got unexpected keyword argument(s) {', '.join(unknown)}; see "
            "help(ember.init) for the keywords it takes."
        )
    hidden = {k: v for k, v in kwargs.items() if v is not None}
    if hidden.pop("_enable_object_reconstruction", True) is not True:
        raise ValueError(
            "init(_enable_object_reconstruction=False): Ember always rebuilds lost objects from "
            "their lineage (within max_retries); set max_retries=0 on a task to opt it out."
        )
    password = hidden.pop("_redis_password", _RAY_DEFAULT_REDIS_PASSWORD)
    if password != _RAY_DEFAULT_REDIS_PASSWORD:
        raise ValueError(
            "init(_redis_password=...): Ember clusters authenticate with a token, not a Redis "
            "password; drop _redis_password and set EMBER_TOKEN to the cluster's token."
        )
    temp_dir = hidden.get("_temp_dir")
    if temp_dir is not None and (not isinstance(temp_dir, str) or not os.path.isabs(temp_dir)):
        raise ValueError(f"init(_temp_dir=...) must be an absolute path, got {temp_dir!r}")
    return hidden


def _dashboard_socket(
    include: bool | None, host: str | None, port: int | None, local_mode: bool
) -> socket.socket | None:
    """Where the dashboard of the node ``init()`` starts will listen (bound now: a port in
    use fails here, before anything starts), or None without one. As in Ray, ``None`` starts
    it if its dependencies are installed, and a port not given falls back to a free one."""
    if include is False:
        return None
    if local_mode:
        if include:
            raise ValueError(
                "local_mode runs everything in this process, without a node to show: drop "
                "include_dashboard=True or local_mode."
            )
        return None
    if importlib.util.find_spec("aiohttp") is None:
        if include:
            raise ImportError(
                "init(include_dashboard=True) needs aiohttp: pip install aiohttp "
                "prometheus_client (or reinstall ember)."
            )
        return None
    from ember._runtime.launch import dashboard

    if host is not None and not isinstance(host, str):
        raise ValueError(f"dashboard_host must be an address (a str), got {host!r}")
    return dashboard.listen_socket(host or dashboard.DEFAULT_HOST, port, "dashboard_port")


def _start_dashboard(sock: socket.socket, node: LocalNode) -> None:
    """Spawned without waiting for it. Listening beyond this host, it asks browsers for a
    token of its own (a single-machine node has no cluster token), shown in its URL."""
    from ember._runtime.launch import cluster_files, dashboard

    host = sock.getsockname()[0]
    node.dashboard = dashboard.spawn_dashboard(
        sock,
        control_address=node.control_address,
        token=None,
        login_token=None if dashboard.is_loopback(host) else cluster_files.new_token(),
        owner_pid=node.proc.pid,
        log_dir=node.log_dir,
        shown_host="127.0.0.1",
    )
    logging.getLogger("ember").info(
        "Started a local Ember instance. View the dashboard at %s", node.dashboard.login_url
    )


_LOG_HANDLER: logging.Handler | None = None
_LOG_FORMAT = "%(asctime)s\t%(levelname)s %(filename)s:%(lineno)s -- %(message)s"


def _configure_logging(configure: bool, level: int | str, fmt: str | None) -> None:
    """The driver's ``ember`` logger, as Ray sets up its ``ray`` logger: a handler of its own
    on stderr at ``level`` (with ``fmt``); ``configure=False`` leaves logging to the user."""
    global _LOG_HANDLER
    logger = logging.getLogger("ember")
    if not configure:
        if _LOG_HANDLER is not None:
            logger.removeHandler(_LOG_HANDLER)
            logger.propagate = True
            _LOG_HANDLER = None
        return
    if isinstance(level, str):
        named = logging.getLevelName(level.upper())
        if not isinstance(named, int):
            raise ValueError(
                f"init(logging_level={level!r}) is not a logging level: use e.g. logging.INFO "
                "or 'info'"
            )
        level = named
    if _LOG_HANDLER is None:
        _LOG_HANDLER = logging.StreamHandler()
        logger.addHandler(_LOG_HANDLER)
        logger.propagate = False
    _LOG_HANDLER.setFormatter(logging.Formatter(fmt or _LOG_FORMAT))
    logger.setLevel(level)


def _client(
    node_address: str,
    control_address: str,
    shm_dir: str,
    spill_dir: str,
    node_id: bytes,
    token: str | None,
    namespace: str,
    log_to_driver: bool,
    store: RemoteStore | None = None,  # in client mode
) -> CoreClient:
    from ember._runtime.client.core_client import CoreClient

    client = CoreClient(
        kind="driver",
        node_address=node_address,
        control_address=control_address,
        shm_dir=shm_dir,
        spill_dir=spill_dir,
        store=store,
        client_id=node_id[:4] + ids.random_id(8),
        job_id=ids.random_id(4),
        namespace=namespace,
        node_id=node_id,
        log_to_driver=log_to_driver,
        token=token,
    )
    client.log_handler = _print_logs
    return client


def _connect_client(address: str, namespace: str, log_to_driver: bool) -> CoreClient:
    """Client mode: this host has no node; the head's node manager serves as this driver's
    node, over TCP, and keeps its objects (``_runtime/object_store/remote_store.py``)."""
    from ember._runtime.launch import admin
    from ember._runtime.object_store.remote_store import RemoteStore

    try:
        token = admin.token_for(address)
    except ValueError:
        raise ValueError(
            f"no token for the cluster at {address}: set the environment variable EMBER_TOKEN "
            "to the cluster's token (`ember start --head` printed it)"
        ) from None
    try:
        table = admin.nodes(address, token)
    except admin.TokenRefused as e:  # Ray's error for a token the cluster refuses
        raise AuthenticationError(f"{e}; set EMBER_TOKEN to the cluster's token") from None
    heads = [n for n in table if n["alive"] and "node:__internal_head__" in n["total"]]
    if not heads:
        raise ConnectionError(f"the cluster at {address} has no live head node")
    head = heads[0]
    client: list[CoreClient] = []
    store = RemoteStore(lambda: client[0].node, head["address"], token)
    client.append(
        _client(
            head["address"],
            "tcp:" + address,
            "",
            "",
            head["node_id"],
            token,
            namespace,
            log_to_driver,
            store,
        )
    )
    return client[0]


def _connect_cluster(address: str, namespace: str, log_to_driver: bool) -> CoreClient:
    """Connect through this host's node of the cluster at ``address`` ("auto" or HOST:PORT)."""
    global _joined_dashboard
    if address.startswith("ember://"):
        return _connect_client(address[len("ember://") :], namespace, log_to_driver)
    record = cluster_files.find_node(address)
    _joined_dashboard = record.get("dashboard_url", "").removeprefix("http://")
    return _client(
        record["local_address"],
        "tcp:" + record["address"],
        record["shm_dir"],
        record["spill_dir"],
        bytes.fromhex(record["node_id"]),
        record["token"],
        namespace,
        log_to_driver,
    )


# Called first by shutdown(), while the runtime still runs (compiled graphs end their loops).
before_shutdown: list[Callable[[], None]] = []


def shutdown() -> None:
    """Disconnect, and stop the node and workers that init() started."""
    global _node, _joined_dashboard
    for hook in before_shutdown if state.current() is not None else ():
        hook()
    with _lock:
        rt = state.current()
        state.set_current(None)
        if rt is not None:
            rt.close()
            progress_bars.close_all()
        node, _node = _node, None
        _joined_dashboard = ""
        if node is not None:
            cluster_files.remove_session(node.node_id.hex())
            node.stop()
            # If it was killed, or died, it could not clean up; then its logs stay.
            code = node.proc.returncode
            kept = node.remove_files(keep_logs=code not in (0, -signal.SIGTERM))
            if kept:
                sys.stderr.write(
                    f"ember: the node manager ended with exit code {code}; its logs are kept "
                    f"in {kept}\n"
                )


atexit.register(shutdown)


def _start_job(client: CoreClient, job_env: dict[str, Any]) -> RayContext:
    """Upload what the job's runtime env names (its tasks and actors inherit it)."""
    if job_env:
        from ember._api import runtime_env as runtime_env_api
        from ember._protocol import messages as m

        try:
            client.runtime_env = runtime_env_api.job_env(client, job_env)
        except BaseException:
            shutdown()
            raise
        if job_env.get("config", {}).get("eager_install", True):
            client.node.send(m.InstallRuntimeEnv(runtime_env=client.runtime_env))
    return _context_info()


class RayContext(Mapping[str, Any]):
    """What ``init()`` returns, as Ray's: ``address_info`` (where this driver's node and the
    cluster are), ``dashboard_url`` (HOST:PORT of the dashboard ``init()`` started, or of the
    joined cluster's when its head is on this host; else "") and the versions;
    ``with ember.init(): ...`` shuts down at the end. Reading it as a dict (``ctx["node_id"]``)
    reads ``address_info``, deprecated as in Ray."""

    def __init__(self, address_info: dict[str, Any]) -> None:
        self.address_info = address_info
        self.dashboard_url: str = address_info["webui_url"]
        self.python_version = "{}.{}.{}".format(*sys.version_info[:3])

    @functools.cached_property
    def ray_version(self) -> str:
        """The installed release's (read on first use: reading it costs ~15 ms)."""
        import importlib.metadata

        return importlib.metadata.version("ember")

    def __getitem__(self, key: str) -> Any:
        warnings.warn(
            f'ctx["{key}"] is deprecated: use ctx.address_info["{key}"]',
            DeprecationWarning,
            stacklevel=2,
        )
        return self.address_info[key]

    def __len__(self) -> int:
        return len(self.address_info)

    def __iter__(self) -> Iterator[str]:
        return iter(self.address_info)

    def __enter__(self) -> RayContext:
        return self

    def __exit__(self, *exc: object) -> None:
        shutdown()

    def disconnect(self) -> None:
        shutdown()

    def __repr__(self) -> str:
        return f"RayContext(address_info={self.address_info!r})"


def _context_info() -> RayContext:
    """Ray's ``address_info`` keys; where Ember has no such thing (Redis, metrics, a dashboard
    agent), Ray's own value for "none"."""
    rt = runtime()
    node = rt.this_node()
    control = getattr(rt, "control_address", "")
    address = control[len("tcp:") :] if control.startswith("tcp:") else control
    return RayContext(
        {
            "node_ip_address": node["host"],
            "redis_address": None,
            "object_store_address": _node.shm_dir if _node is not None else "",
            "raylet_socket_name": node["local_address"],
            "webui_url": _node.dashboard.address
            if _node and _node.dashboard
            else _joined_dashboard,
            "session_dir": _node.session_dir if _node is not None else "",
            "metrics_export_port": -1,
            "gcs_address": address,
            "address": address,
            "dashboard_agent_listen_port": -1,
            "node_id": rt.node_id.hex(),
        }
    )


def _print_logs(lines: list[str], err: bool) -> None:
    if any(MAGIC in line for line in lines):  # tqdm_ray's bars: drawn, not printed
        lines = progress_bars.show_lines(lines)
        if not lines:
            return
    text = "".join(line + "\n" for line in lines)
    try:
        progress_bars.write_text(text, sys.stderr if err else sys.stdout)
    except (OSError, ValueError):  # the program closed or replaced its stream
        if sys.__stderr__ is not None:
            sys.__stderr__.write(text)
