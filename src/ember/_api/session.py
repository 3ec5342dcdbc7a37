"""Connecting this process to Ember: ``init``, ``shutdown`` and the runtime behind the API.

``init()`` with no address starts a single-machine node in the background and connects the
driver to it; ``local_mode=True`` instead runs everything in this process. Calls that need a
runtime before ``init()`` start one with defaults, as Ray does.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from ember._protocol import ids
from ember._runtime import state
from ember._runtime.launch.launcher import LocalNode, node_resources, spawn_node

if TYPE_CHECKING:
    from ember._runtime.client.core_client import CoreClient
    from ember._runtime.object_store.remote_store import RemoteStore
    from ember._runtime.runtime import Runtime

_lock = threading.RLock()
_node: LocalNode | None = None


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
    object_store_memory: int | None = None,
    namespace: str | None = None,
    ignore_reinit_error: bool = False,
    log_to_driver: bool = True,
    local_mode: bool = False,
    include_dashboard: bool | None = None,
    runtime_env: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Start Ember on this machine and connect this driver; with ``address`` ("auto" or
    "HOST:PORT"), connect to a running cluster through this host's node instead."""
    global _node
    with _lock:
        if state.current() is not None:
            if ignore_reinit_error:
                return _context_info()
            raise RuntimeError(
                "Maybe you called ember.init twice by accident? This error can be suppressed "
                "by passing ignore_reinit_error=True, or call ember.shutdown() first."
            )
        unknown = set(kwargs) - _IGNORED_INIT_ARGS
        if unknown:
            raise TypeError(
                f"init() got unexpected keyword argument(s) {sorted(unknown)}; Ember accepts "
                "address, num_cpus, num_gpus, resources, object_store_memory, namespace, "
                "ignore_reinit_error, log_to_driver, local_mode, runtime_env."
            )
        job_env: dict[str, Any] = {}
        if runtime_env is not None:  # (bad input fails before anything starts)
            from ember._api import runtime_env as runtime_env_api

            job_env = runtime_env_api.check(runtime_env)
        ns = namespace or f"anonymous-{ids.random_id(8).hex()}"
        if address is None:
            address = os.environ.get("EMBER_ADDRESS")
        if address not in (None, "local"):
            if local_mode or num_cpus is not None or num_gpus is not None or resources:
                raise ValueError(
                    "When connecting to a running cluster (address=...), resources are set by "
                    "`ember start` on each node: drop num_cpus, num_gpus, resources and "
                    "local_mode from init()."
                )
            client = _connect_cluster(address, ns, log_to_driver)
            state.set_current(client)
            return _start_job(client, job_env)
        total = node_resources(num_cpus, num_gpus, resources)
        if local_mode:
            if job_env:
                raise ValueError(
                    "local_mode runs everything in this process, which has no runtime env: "
                    "drop runtime_env or local_mode."
                )
            from ember._runtime.client.local import LocalRuntime

            state.set_current(LocalRuntime(total, ns))
            return _context_info()
        spawned = spawn_node(
            resources=total,
            object_store_memory=object_store_memory,
            prestart_workers=min(int(total.get("CPU", 1)), 8),
            settings=kwargs.get("_system_config"),
        )
        # Imported while the node boots: the two overlap on a multi-core machine.
        from ember._runtime.client.core_client import CoreClient  # noqa: F401
        from ember._runtime.object_store.store import StoreFiles  # noqa: F401

        node = spawned.wait()
        try:
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
        state.set_current(client)
        return _start_job(client, job_env)


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
    except admin.TokenRefused as e:
        raise ConnectionError(f"{e}; check EMBER_TOKEN") from None
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
    from ember._runtime.launch import cluster_files

    if address.startswith("ember://"):
        return _connect_client(address[len("ember://") :], namespace, log_to_driver)
    record = cluster_files.find_node(address)
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


def shutdown() -> None:
    """Disconnect, and stop the node and workers that init() started."""
    global _node
    with _lock:
        rt = state.current()
        state.set_current(None)
        if rt is not None:
            rt.close()
        node, _node = _node, None
        if node is not None:
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

_IGNORED_INIT_ARGS = {
    "dashboard_host",
    "dashboard_port",
    "configure_logging",
    "logging_level",
    "logging_format",
    "_temp_dir",
    "_system_config",
    "job_config",
    "include_dashboard",
    "_node_ip_address",
    "_redis_password",
}


def _start_job(client: CoreClient, job_env: dict[str, Any]) -> dict[str, Any]:
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


def _context_info() -> dict[str, Any]:
    rt = runtime()
    return {"node_id": rt.node_id.hex(), "namespace": rt.namespace, "job_id": rt.job_id.hex()}


def _print_logs(lines: list[str], err: bool) -> None:
    text = "".join(line + "\n" for line in lines)
    try:
        stream = sys.stderr if err else sys.stdout
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # the program closed or replaced its stream
        if sys.__stderr__ is not None:
            sys.__stderr__.write(text)
