"""The state API's records, at Ray's names and with Ray's field names
(``ray.util.state.common``): what ``list_*`` and ``get_*`` return.

Each record is a dataclass whose fields say whether they can be filtered on and whether they
are shown only with ``detail=True`` (then ``None`` without it). A record is built from a row,
the plain dict a node or the control store answers with (``from_row``): fields the row lacks
are ``None``, keys the record does not know are left out. Records read like dicts too
(``task["state"]``, ``task.get("name")``), as Ray's do.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

DEFAULT_RPC_TIMEOUT = 30
DEFAULT_LIMIT = 100
DEFAULT_LOG_LIMIT = 1000

SupportedFilterType = str | bool | int | float
PredicateType = str  # "=" or "!=" (and, in Ember, "<", "<=", ">", ">=")


class Humanify:
    """Shows raw values as people read them (for the CLI's tables)."""

    @staticmethod
    def timestamp(ms: float) -> str:
        return str(datetime.datetime.fromtimestamp(ms / 1000))

    @staticmethod
    def memory(size: float) -> str:
        for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if size >= scale:
                return f"{size / scale:.3f} {unit}"
        return f"{size:.3f} B"

    @staticmethod
    def duration(ms: int) -> str:
        return str(datetime.timedelta(milliseconds=ms))

    @staticmethod
    def node_resources(resources: dict[str, Any]) -> dict[str, Any]:
        return {
            k: Humanify.memory(v) if "memory" in k and isinstance(v, int | float) else v
            for k, v in resources.items()
        }


def state_column(
    *, filterable: bool, detail: bool = False, format_fn: Callable[[Any], Any] | None = None
) -> Any:
    """A record's field: whether it can be filtered on, and whether only ``detail`` shows it."""
    return field(
        default=None,
        metadata={"filterable": filterable, "detail": detail, "format_fn": format_fn},
    )


S = TypeVar("S", bound="StateSchema")


class StateSchema:
    """What every record offers: its columns (all, base, detail, filterable), a dict of it,
    and reading it as a dict."""

    @classmethod
    def list_columns(cls, detail: bool = True) -> list[str]:
        return [
            f.name
            for f in fields(cls)  # type: ignore[arg-type]
            if detail or not f.metadata.get("detail", False)
        ]

    @classmethod
    def columns(cls) -> set[str]:
        return set(cls.list_columns())

    @classmethod
    def base_columns(cls) -> set[str]:
        return set(cls.list_columns(detail=False))

    @classmethod
    def detail_columns(cls) -> set[str]:
        return set(cls.list_columns(detail=True))

    @classmethod
    def filterable_columns(cls) -> set[str]:
        return {f.name for f in fields(cls) if f.metadata.get("filterable")}  # type: ignore[arg-type]

    @classmethod
    def humanify(cls, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` (a row) with the values that have a format shown as people read them."""
        for f in fields(cls):  # type: ignore[arg-type]
            fn = f.metadata.get("format_fn")
            if fn is not None and state.get(f.name) is not None:
                state[f.name] = fn(state[f.name])
        return state

    @classmethod
    def from_row(cls: type[S], row: dict[str, Any], detail: bool = True) -> S:
        """The record of a row; without ``detail``, the detail columns are ``None``."""
        names = cls.list_columns(detail)
        return cls(**{name: row.get(name) for name in names})

    def asdict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload,no-any-return]

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


def _ms_or_blank(ms: int) -> str:
    return "" if ms == -1 else Humanify.timestamp(ms)


def _size_or_dash(size: int) -> str:
    return "-" if size < 0 else Humanify.memory(size)  # (-1: an actor handle, or unknown)


@dataclass
class ActorState(StateSchema):
    """An actor: state is one of DEPENDENCIES_UNREADY, PENDING_CREATION, ALIVE, RESTARTING,
    DEAD."""

    actor_id: str = state_column(filterable=True)
    class_name: str = state_column(filterable=True)
    state: str = state_column(filterable=True)
    job_id: str = state_column(filterable=True)
    name: str | None = state_column(filterable=True)
    node_id: str | None = state_column(filterable=True)
    pid: int | None = state_column(filterable=True)
    ray_namespace: str | None = state_column(filterable=True)
    serialized_runtime_env: str | None = state_column(filterable=False, detail=True)
    required_resources: dict[str, Any] | None = state_column(filterable=False, detail=True)
    death_cause: dict[str, Any] | None = state_column(filterable=False, detail=True)
    is_detached: bool | None = state_column(filterable=False, detail=True)
    placement_group_id: str | None = state_column(filterable=True, detail=True)
    repr_name: str | None = state_column(filterable=True, detail=True)
    num_restarts: int | None = state_column(filterable=False, detail=True)
    num_restarts_due_to_lineage_reconstruction: int | None = state_column(
        filterable=False, detail=True
    )
    num_restarts_due_to_node_preemption: int | None = state_column(filterable=False, detail=True)
    call_site: str | None = state_column(filterable=False, detail=True)
    label_selector: dict[str, Any] | None = state_column(filterable=False, detail=True)
    fallback_strategy: dict[str, Any] | None = state_column(filterable=False, detail=True)


@dataclass
class PlacementGroupState(StateSchema):
    """A placement group: state is one of PENDING, CREATED, REMOVED, RESCHEDULING."""

    placement_group_id: str = state_column(filterable=True)
    name: str = state_column(filterable=True)
    creator_job_id: str = state_column(filterable=True)
    state: str = state_column(filterable=True)
    bundles: list[dict[str, Any]] | None = state_column(filterable=False, detail=True)
    is_detached: bool | None = state_column(filterable=True, detail=True)
    stats: dict[str, Any] | None = state_column(filterable=False, detail=True)
    topology_strategy: dict[str, Any] | None = state_column(filterable=False, detail=True)
    topology_assignments: dict[str, Any] | None = state_column(filterable=False, detail=True)


@dataclass
class NodeState(StateSchema):
    """A node: state is ALIVE or DEAD."""

    node_id: str = state_column(filterable=True)
    node_ip: str = state_column(filterable=True)
    is_head_node: bool = state_column(filterable=True)
    state: str = state_column(filterable=True)
    state_message: str | None = state_column(filterable=False)
    node_name: str = state_column(filterable=True)
    resources_total: dict[str, Any] = state_column(
        filterable=False, format_fn=Humanify.node_resources
    )
    labels: dict[str, str] = state_column(filterable=False)
    start_time_ms: int | None = state_column(
        filterable=False, detail=True, format_fn=Humanify.timestamp
    )
    end_time_ms: int | None = state_column(
        filterable=False, detail=True, format_fn=Humanify.timestamp
    )


@dataclass
class DriverInfo:
    """A driver job's process, as Ray's ``JobState.driver_info``."""

    id: str
    node_ip_address: str
    pid: str

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class JobState(StateSchema):
    """A job (a connected driver): status is RUNNING, SUCCEEDED, ...; type is DRIVER for a
    driver's job."""

    job_id: str | None = state_column(filterable=True)
    submission_id: str | None = state_column(filterable=True)
    entrypoint: str | None = state_column(filterable=False)
    type: str = state_column(filterable=True)
    status: str = state_column(filterable=True)
    message: str | None = state_column(filterable=False)
    error_type: str | None = state_column(filterable=False)
    driver_info: DriverInfo | None = state_column(filterable=False)
    start_time: int | None = state_column(filterable=False, detail=True)
    end_time: int | None = state_column(filterable=False, detail=True)
    metadata: dict[str, str] | None = state_column(filterable=False, detail=True)
    runtime_env: dict[str, Any] | None = state_column(filterable=False, detail=True)
    driver_agent_http_address: str | None = state_column(filterable=False, detail=True)
    driver_node_id: str | None = state_column(filterable=False, detail=True)
    driver_exit_code: int | None = state_column(filterable=False, detail=True)

    @classmethod
    def from_row(cls, row: dict[str, Any], detail: bool = True) -> JobState:
        job = super().from_row(row, detail)
        if isinstance(job.driver_info, dict):
            job.driver_info = DriverInfo(**job.driver_info)
        return job


@dataclass
class WorkerState(StateSchema):
    """A worker process (or a driver): worker_type is WORKER or DRIVER."""

    worker_id: str = state_column(filterable=True)
    is_alive: bool = state_column(filterable=True)
    worker_type: str = state_column(filterable=True)
    exit_type: str | None = state_column(filterable=True)
    node_id: str = state_column(filterable=True)
    ip: str = state_column(filterable=True)
    pid: int = state_column(filterable=True)
    exit_detail: str | None = state_column(filterable=False, detail=True)
    worker_launch_time_ms: int | None = state_column(
        filterable=False, detail=True, format_fn=_ms_or_blank
    )
    worker_launched_time_ms: int | None = state_column(
        filterable=False, detail=True, format_fn=_ms_or_blank
    )
    start_time_ms: int | None = state_column(
        filterable=False, detail=True, format_fn=Humanify.timestamp
    )
    end_time_ms: int | None = state_column(
        filterable=False, detail=True, format_fn=Humanify.timestamp
    )
    debugger_port: int | None = state_column(filterable=True, detail=True)
    num_paused_threads: int | None = state_column(filterable=True, detail=True)


@dataclass
class TaskState(StateSchema):
    """One attempt of a task: state is one of Ray's task states (PENDING_ARGS_AVAIL,
    PENDING_NODE_ASSIGNMENT, SUBMITTED_TO_WORKER, RUNNING, FINISHED, FAILED, ...); type is
    NORMAL_TASK, ACTOR_CREATION_TASK, ACTOR_TASK or DRIVER_TASK."""

    task_id: str = state_column(filterable=True)
    attempt_number: int = state_column(filterable=True)
    name: str = state_column(filterable=True)
    state: str = state_column(filterable=True)
    job_id: str = state_column(filterable=True)
    actor_id: str | None = state_column(filterable=True)
    type: str = state_column(filterable=True)
    func_or_class_name: str = state_column(filterable=True)
    parent_task_id: str = state_column(filterable=True)
    node_id: str | None = state_column(filterable=True)
    worker_id: str | None = state_column(filterable=True)
    worker_pid: int | None = state_column(filterable=True)
    error_type: str | None = state_column(filterable=True)
    language: str | None = state_column(filterable=True, detail=True)
    required_resources: dict[str, Any] | None = state_column(filterable=False, detail=True)
    runtime_env_info: dict[str, Any] | None = state_column(filterable=False, detail=True)
    placement_group_id: str | None = state_column(filterable=True, detail=True)
    events: list[dict[str, Any]] | None = state_column(filterable=False, detail=True)
    profiling_data: dict[str, Any] | None = state_column(filterable=False, detail=True)
    creation_time_ms: int | None = state_column(
        filterable=False, detail=True, format_fn=Humanify.timestamp
    )
    start_time_ms: int | None = state_column(
        filterable=False, detail=True, format_fn=Humanify.timestamp
    )
    end_time_ms: int | None = state_column(
        filterable=False, detail=True, format_fn=Humanify.timestamp
    )
    task_log_info: dict[str, Any] | None = state_column(filterable=False, detail=True)
    error_message: str | None = state_column(filterable=False, detail=True)
    is_debugger_paused: bool | None = state_column(filterable=True, detail=True)
    call_site: str | None = state_column(filterable=False, detail=True)
    label_selector: dict[str, Any] | None = state_column(filterable=False, detail=True)
    fallback_strategy: dict[str, Any] | None = state_column(filterable=False, detail=True)
    # (Ember's own: the ids of the ObjectRefs passed as arguments)
    arg_object_ids: list[str] | None = state_column(filterable=False, detail=True)


@dataclass
class ObjectState(StateSchema):
    """One reference to an object (an object held by two processes is two records):
    reference_type says why it is held (LOCAL_REFERENCE, USED_BY_PENDING_TASK,
    CAPTURED_IN_OBJECT, PINNED_IN_MEMORY, ACTOR_HANDLE, UNKNOWN_STATUS); pid, ip and type
    are the holder's. ``object_size`` is in bytes (-1 when unknown). Ember adds two detail
    columns: the node whose store holds the object, and whether it is spilled to disk."""

    object_id: str = state_column(filterable=True)
    object_size: int = state_column(filterable=True, format_fn=_size_or_dash)
    task_status: str = state_column(filterable=True)
    attempt_number: int = state_column(filterable=True)
    reference_type: str = state_column(filterable=True)
    call_site: str = state_column(filterable=True)
    type: str = state_column(filterable=True)
    pid: int = state_column(filterable=True)
    ip: str = state_column(filterable=True)
    node_id: str | None = state_column(filterable=True, detail=True)
    spilled: bool | None = state_column(filterable=True, detail=True)


# The kind of rows each record is built from (the kinds ``StateQuery`` asks for).
RECORD_OF_KIND: dict[str, type[StateSchema]] = {
    "actors": ActorState,
    "placement_groups": PlacementGroupState,
    "nodes": NodeState,
    "jobs": JobState,
    "workers": WorkerState,
    "tasks": TaskState,
    "objects": ObjectState,
}

# The column ``get_*`` looks a record up by.
ID_COLUMN: dict[str, str] = {
    "actors": "actor_id",
    "placement_groups": "placement_group_id",
    "nodes": "node_id",
    "workers": "worker_id",
    "tasks": "task_id",
    "objects": "object_id",
    "jobs": "submission_id",
}
