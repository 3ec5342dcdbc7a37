"""Connecting this process to Ember: ``init``, ``shutdown`` and the runtime behind the API.

``init()`` with no address starts a single-machine node in the background and connects the
driver to it; ``local_mode=True`` instead runs everything in this process. Calls that need a
runtime before ``init()`` start one with defaults, as Ray does.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import Any

from ember._protocol import ids
from ember._runtime import state
from ember._runtime.launcher import LocalNode, spawn_node, total_memory

_lock = threading.RLock()
_node: LocalNode | None = None


def runtime() -> Any:
    rt = state.current()
    if rt is None:
        init()
        rt = state.current()
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
    **kwargs: Any,
) -> dict[str, Any]:
    """Start Ember on this machine (or, later, connect to a cluster) and connect this driver."""
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
                "ignore_reinit_error, log_to_driver, local_mode."
            )
        if address not in (None, "local"):
            raise ValueError(
                f"address={address!r}: connecting to an existing cluster is not supported yet; "
                "call ember.init() without an address to start Ember on this machine."
            )
        total = _resources(num_cpus, num_gpus, resources)
        ns = namespace or f"anonymous-{ids.random_id(8).hex()}"
        if local_mode:
            from ember._runtime.local import LocalRuntime

            state.set_current(LocalRuntime(total, ns))
            return _context_info()
        spawned = spawn_node(
            resources=total,
            object_store_memory=object_store_memory,
            prestart_workers=min(int(total.get("CPU", 1)), 8),
        )
        # Imported while the node boots: the two overlap on a multi-core machine.
        from ember._runtime.core_client import CoreClient
        from ember._runtime.object_store import StoreFiles

        node = spawned.wait()
        try:
            client = CoreClient(
                kind="driver",
                node_address=node.node_address,
                control_address=node.control_address,
                store=StoreFiles(node.shm_dir, node.spill_dir),
                client_id=node.node_id[:4] + ids.random_id(8),
                job_id=ids.random_id(4),
                namespace=ns,
                node_id=node.node_id,
                log_to_driver=log_to_driver,
            )
        except BaseException:
            node.stop()
            raise
        client.log_handler = _print_logs
        _node = node
        state.set_current(client)
        return _context_info()


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


atexit.register(shutdown)

_IGNORED_INIT_ARGS = {
    "dashboard_host",
    "dashboard_port",
    "configure_logging",
    "logging_level",
    "logging_format",
    "runtime_env",
    "_temp_dir",
    "_system_config",
    "job_config",
    "include_dashboard",
    "_node_ip_address",
    "_redis_password",
}


def _resources(
    num_cpus: float | None, num_gpus: float | None, custom: dict[str, float] | None
) -> dict[str, float]:
    for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if value is not None and (isinstance(value, bool) or value < 0):
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    custom = dict(custom or {})
    for key in ("CPU", "GPU"):
        if key in custom:
            raise ValueError(
                f"Use num_{key.lower()}s=... instead of resources={{'{key}': ...}} in init()."
            )
    total: dict[str, float] = {
        "CPU": float(os.cpu_count() or 1) if num_cpus is None else float(num_cpus),
        "GPU": float(num_gpus or 0),
        "memory": float(int(total_memory() * 0.7)),
        "node:127.0.0.1": 1.0,
        "node:__internal_head__": 1.0,
    }
    total.update({k: float(v) for k, v in custom.items()})
    return {k: v for k, v in total.items() if v}


def _context_info() -> dict[str, Any]:
    rt = state.current()
    return {"node_id": rt.node_id.hex(), "namespace": rt.namespace, "job_id": rt.job_id.hex()}


def _print_logs(lines: list[str], err: bool) -> None:
    text = "".join(line + "\n" for line in lines)
    try:
        stream = sys.stderr if err else sys.stdout
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # the program closed or replaced its stream
        sys.__stderr__.write(text)
