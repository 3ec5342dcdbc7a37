"""The settings a started process (a node manager, a control store) gets from its starter.

The launcher writes them as JSON on the new process's stdin (not on its command line, which
any user can read: they may hold the cluster's token); the process reads them back with
``read_config``. Both ends use the frozen dataclasses here, so a setting is named and typed
in one place and a misspelt one fails where it is made, not as a missing key in another
process.
"""

from __future__ import annotations

import json
import os
import sys
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

# The folder holding the ``ember`` package (this file is <it>/ember/_runtime/launch/...):
# what a process started from this one needs on its path to import the same Ember. ``ember``
# itself on the path would let its modules shadow top-level ones (``ember/cloudpickle.py``).
PACKAGE_PARENT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)

# Settings that ``ember.init(_system_config={...})`` may change (any other key, such as one
# of Ray's own, is refused by name).
SYSTEM_CONFIG_KEYS = ("ref_grace_s", "memory_usage_threshold", "memory_monitor_refresh_ms")


@dataclass(frozen=True)
class NodeConfig:
    node_id: bytes
    session_dir: str  # its sockets, spilled objects and (by default) logs
    shm_dir: str  # the object store's folder in shared memory
    spill_dir: str
    log_dir: str
    log: str  # the node manager's own log
    object_store_memory: int
    resources: dict[str, float]
    labels: dict[str, str] | None = None  # ``ember start --labels``, ``init(labels=...)``
    owner_pid: int = 0  # the driver it ends with (0: a long-lived `ember start` node)
    prestart_workers: int = 0
    # How long an object shared between processes outlives its last ref (a process's DecRef
    # may overtake the IncRef of the process it passed the ref to: ``_core/refcount.py``).
    ref_grace_s: float = 1.0
    # The memory monitor's (None: from the environment, see ``node/memory_monitor.py``).
    memory_usage_threshold: float | None = None
    memory_monitor_refresh_ms: float | None = None
    # On a cluster: the control store it joins, the cluster's token and this host's address.
    control_address: str | None = None
    token: str | None = None
    node_ip: str | None = None
    control_store_timeout: float = 60.0  # unreachable that long: the node stops
    # On a head started with external storage and supervision: how to start its control
    # store again (its pid, and ``launcher.spawn_control_store``'s arguments).
    control_store_pid: int | None = None
    control_store_settings: dict[str, Any] | None = None
    ready_fd: int | None = None  # where it says that it listens (set by the launcher)


@dataclass(frozen=True)
class ControlStoreConfig:
    address: str  # tcp:host:port to listen on
    token: str | None
    fresh: bool = True  # a new cluster's tables, not a restart's (with external storage)
    storage: str | None = None  # e.g. redis://...; None: in memory
    node_timeout: float | None = None  # None: the store's defaults
    heartbeat_interval: float | None = None
    ready_fd: int | None = None


@dataclass(frozen=True)
class DashboardConfig:
    control_address: str  # the control store's: tcp:HOST:PORT, or unix:... on one machine
    token: str | None  # the cluster's, for the control store (None on one machine)
    login_token: str | None  # what browsers must show (None: anyone who reaches it may look)
    listen_fd: int  # the socket it serves on, bound by its starter (who knows the URL)
    url: str  # http://HOST:PORT, as shown to the user
    owner_pid: int  # the head's node manager: the dashboard ends with it


Config = TypeVar("Config", NodeConfig, ControlStoreConfig, DashboardConfig)


def encode(config: NodeConfig | ControlStoreConfig | DashboardConfig) -> bytes:
    fields = {k: v.hex() if isinstance(v, bytes) else v for k, v in vars(config).items()}
    return json.dumps(fields).encode()


def decode(kind: type[Config], data: bytes | str) -> Config:
    hints = typing.get_type_hints(kind)
    fields: dict[str, Any] = {
        k: bytes.fromhex(v) if hints.get(k) is bytes else v for k, v in json.loads(data).items()
    }
    return kind(**fields)


def read_config(kind: type[Config]) -> Config:
    """A started process's settings, from its stdin (see ``launcher._spawn``)."""
    config = decode(kind, sys.stdin.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return config


def setting(value: float | None, name: str, default: float) -> float:
    """A setting given to the process, else from the environment under Ember's name or
    Ray's (``EMBER_TASK_OOM_RETRIES``, ``RAY_task_oom_retries``), else ``default``."""
    if value is not None:
        return value
    for var in (f"EMBER_{name.upper()}", f"RAY_{name}"):
        text = os.environ.get(var)
        if text:
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"{var} must be a number, got {text!r}") from None
    return default


def system_config(settings: dict[str, Any] | None) -> dict[str, Any]:
    """The node settings of ``init(_system_config=...)``, checked."""
    unknown = sorted(set(settings or {}) - set(SYSTEM_CONFIG_KEYS))
    if unknown:
        raise ValueError(
            f"_system_config has keys Ember does not know: {', '.join(map(repr, unknown))}; "
            f"it takes {', '.join(SYSTEM_CONFIG_KEYS)}."
        )
    out: dict[str, Any] = {}
    for key in SYSTEM_CONFIG_KEYS:
        if settings and key in settings:
            value = settings[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"_system_config[{key!r}] must be a number >= 0, got {value!r}")
            if key == "memory_usage_threshold" and value > 1:
                raise ValueError(
                    f"_system_config['memory_usage_threshold'] is a fraction of the node's "
                    f"memory, between 0 and 1; got {value!r}"
                )
            out[key] = float(value)
    return out
