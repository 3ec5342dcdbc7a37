"""The state API, at Ray's names (``ray.util.state``): what runs in the cluster, as records.

``list_*`` return records (``ember.util.state.common``) of the rows that pass ``filters``
(Ray's ``(key, predicate, value)`` tuples, all of which must hold), at most ``limit`` of
them; ``get_*`` look one up by its id; ``summarize_*`` count them by function, class or
call site. The filters and the limit are applied where the rows are (each node, then the
control store), so asking for a few of 100,000 tasks ships only those.

``address``: None asks through this process's runtime when ``init()`` has connected it,
else finds the cluster (or ``init()`` session) on this machine, as ``"auto"`` does; or the
control store's ``HOST:PORT``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, TypeVar

from ember._api import state as _state
from ember._core import state_filters, state_summary
from ember._transport.rpc import RemoteError
from ember.util.state.common import (
    DEFAULT_LIMIT,
    DEFAULT_RPC_TIMEOUT,
    ID_COLUMN,
    RECORD_OF_KIND,
    ActorState,
    JobState,
    NodeState,
    ObjectState,
    PlacementGroupState,
    TaskState,
    WorkerState,
)
from ember.util.state.exception import RayStateApiException, ServerUnavailable
from ember.util.state.logs import get_log, list_logs

__all__ = [
    "get_actor",
    "get_job",
    "get_log",
    "get_node",
    "get_objects",
    "get_placement_group",
    "get_task",
    "get_worker",
    "list_actors",
    "list_jobs",
    "list_logs",
    "list_nodes",
    "list_objects",
    "list_placement_groups",
    "list_tasks",
    "list_workers",
    "summarize_actors",
    "summarize_objects",
    "summarize_tasks",
]

Filters = Sequence[tuple[str, str, Any]] | None
R = TypeVar("R")

# Summaries of actors and objects count every row; a cap keeps a runaway answer bounded.
_SUMMARY_LIMIT = 1_000_000
_GET_LIMIT = 10_000


def _checked_filters(kind: str, filters: Filters) -> list[list[Any]]:
    """Ray's errors, at the call site: a malformed filter or predicate is a ``ValueError``,
    a column that cannot be filtered on a ``RayStateApiException`` naming those that can."""
    checked = state_filters.check(filters)
    allowed = RECORD_OF_KIND[kind].filterable_columns()
    for f in checked:
        f[0] = f[0].lower()
        if f[0] not in allowed:
            raise RayStateApiException(
                f"The given filter column {f[0]} is not supported. Enter filters with "
                f"--filter key=value or --filter key!=value. Supported filter columns: "
                f"{', '.join(sorted(allowed))}"
            )
    return checked


def _rows(
    kind: str,
    address: str | None,
    filters: list[list[Any]],
    limit: int,
    timeout: float,
    detail: bool,
    raise_on_missing_output: bool,
    explain: bool,
) -> list[dict[str, Any]]:
    if state_filters.check_limit(limit) == 0:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    if not timeout or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    try:
        result = _state.query(
            kind, address=address, filters=filters, limit=limit, detail=detail, timeout=timeout
        )
    except TimeoutError as e:  # (Ray's client times out with requests.Timeout)
        raise RayStateApiException(str(e)) from None
    except ConnectionError as e:
        raise ServerUnavailable(str(e)) from None
    except RemoteError as e:  # the cluster refused the question
        raise RayStateApiException(str(e)) from None
    if result.warnings and raise_on_missing_output:
        raise RayStateApiException(
            f"Failed to retrieve all {kind} from the cluster: {'; '.join(result.warnings)}. "
            "To get what could be retrieved instead, set raise_on_missing_output=False."
        )
    if explain:
        for text in result.warnings:
            warnings.warn(text, stacklevel=3)
        if result.total > len(result.rows):
            warnings.warn(
                f"Limit last {len(result.rows)} entries (Total {result.total}). Use filters "
                "to reduce the amount of data to return or set a higher limit to see all.",
                stacklevel=3,
            )
    return result.rows


def _list(
    kind: str,
    address: str | None,
    filters: Filters,
    limit: int,
    timeout: float,
    detail: bool,
    raise_on_missing_output: bool,
    _explain: bool,
) -> list[Any]:
    """What every ``list_*`` does (each keeps Ray's signature and passes its arguments)."""
    record = RECORD_OF_KIND[kind]
    checked = _checked_filters(kind, filters)
    rows = _rows(kind, address, checked, limit, timeout, detail, raise_on_missing_output, _explain)
    return [record.from_row(row, detail) for row in rows]


def _get(
    kind: str,
    id: str,
    address: str | None,
    timeout: float,
    _explain: bool,
    by: str | None = None,
) -> list[Any]:
    """What ``get_*`` does (each keeps Ray's signature and passes its arguments): the records
    whose id (or ``by``) is ``id``."""
    if not isinstance(id, str) or not id:
        raise ValueError(f"the id to look up must be a hex string, got {id!r}")
    column = by or ID_COLUMN[kind]
    rows = _rows(kind, address, [[column, "=", id]], _GET_LIMIT, timeout, True, True, _explain)
    return [RECORD_OF_KIND[kind].from_row(row) for row in rows]


def _one(records: list[R]) -> R | None:
    return records[0] if records else None


# -- list ------------------------------------------------------------------------------------


def list_actors(
    address: str | None = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> list[ActorState]:
    """The actors of the cluster (alive, pending, restarting and dead)."""
    return _list("actors", **locals())


def list_placement_groups(
    address: str | None = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> list[PlacementGroupState]:
    """The placement groups of the cluster."""
    return _list("placement_groups", **locals())


def list_nodes(
    address: str | None = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> list[NodeState]:
    """The nodes of the cluster, alive and dead."""
    return _list("nodes", **locals())


def list_jobs(
    address: str | None = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> list[JobState]:
    """The jobs (drivers) of the cluster."""
    return _list("jobs", **locals())


def list_workers(
    address: str | None = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> list[WorkerState]:
    """The worker processes of every node."""
    return _list("workers", **locals())


def list_tasks(
    address: str | None = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> list[TaskState]:
    """The task attempts the cluster has recorded (a retried task is one per attempt)."""
    return _list("tasks", **locals())


def list_objects(
    address: str | None = None,
    filters: Filters = None,
    limit: int = DEFAULT_LIMIT,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    detail: bool = False,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> list[ObjectState]:
    """The references to objects that the nodes know of: a record per object and holder."""
    return _list("objects", **locals())


# -- get -------------------------------------------------------------------------------------


def get_actor(
    id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT, _explain: bool = False
) -> ActorState | None:
    """The actor with this id (hex), or None."""
    return _one(_get("actors", **locals()))


def get_placement_group(
    id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT, _explain: bool = False
) -> PlacementGroupState | None:
    """The placement group with this id (hex), or None."""
    return _one(_get("placement_groups", **locals()))


def get_node(
    id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT, _explain: bool = False
) -> NodeState | None:
    """The node with this id (hex), or None."""
    return _one(_get("nodes", **locals()))


def get_worker(
    id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT, _explain: bool = False
) -> WorkerState | None:
    """The worker with this id (hex), or None."""
    return _one(_get("workers", **locals()))


def get_task(
    id: Any, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT, _explain: bool = False
) -> TaskState | list[TaskState] | None:
    """The task with this id (hex, or the ``ObjectRef`` it returned): its one attempt, a
    list of its attempts if it was retried, or None."""
    task_id = id if isinstance(id, str) else id.task_id().hex()
    attempts: list[TaskState] = _get("tasks", task_id, address, timeout, _explain)
    if len(attempts) > 1:
        return attempts
    return attempts[0] if attempts else None


def get_objects(
    id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT, _explain: bool = False
) -> list[ObjectState] | None:
    """The references to the object with this id (hex): one per holder; None if none."""
    return _get("objects", id, address, timeout, _explain) or None


def get_job(
    id: str, address: str | None = None, timeout: int = DEFAULT_RPC_TIMEOUT, _explain: bool = False
) -> JobState | None:
    """The job with this submission id, or else this job id (hex: a driver's job has no
    submission id in Ember), or None."""
    return _one(_get("jobs", **locals())) or _one(_get("jobs", **locals(), by="job_id"))


# -- summarize -------------------------------------------------------------------------------


def summarize_tasks(
    address: str | None = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> dict[str, Any]:
    """Tasks counted by function (or class) name and state, as Ray's
    ``{"cluster": TaskSummaries}``; each node counts its own."""
    counts = _rows(
        "task_summary",
        address,
        [],
        _SUMMARY_LIMIT,
        timeout,
        False,
        raise_on_missing_output,
        _explain,
    )
    return {"cluster": state_summary.task_summaries(counts)}


def summarize_actors(
    address: str | None = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> dict[str, Any]:
    """Actors counted by class and state, as Ray's ``{"cluster": ActorSummaries}``."""
    rows = _rows(
        "actors", address, [], _SUMMARY_LIMIT, timeout, False, raise_on_missing_output, _explain
    )
    return {"cluster": state_summary.actor_summaries(rows)}


def summarize_objects(
    address: str | None = None,
    timeout: int = DEFAULT_RPC_TIMEOUT,
    raise_on_missing_output: bool = True,
    _explain: bool = False,
) -> dict[str, Any]:
    """Object references counted by call site, as Ray's ``{"cluster": ObjectSummaries}``
    (Ember records no call sites: they are ``"disabled"``, as in Ray by default)."""
    rows = _rows(
        "objects", address, [], _SUMMARY_LIMIT, timeout, False, raise_on_missing_output, _explain
    )
    return {"cluster": state_summary.object_summaries(rows)}
