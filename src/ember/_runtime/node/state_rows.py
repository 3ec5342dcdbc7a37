"""What a node tells the state API: one provider per kind of row that lives here (the
tasks its clients own, its workers, its objects, ...), asked by the control store's
``StateQuery`` and filtered here, so that only the rows asked for leave the node."""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ember._core import state_filters, state_summary
from ember._core.actor_lifecycle import ActorState
from ember._core.placement_groups import group_of
from ember._core.resources import shape_dict
from ember._protocol import messages as m

if TYPE_CHECKING:
    from ember._runtime.node.manager import NodeManager
    from ember._runtime.node.worker_pool import WorkerProc

Row = dict[str, Any]
# detail -> rows (a Sequence may make its rows lazily: without filters only those within
# the limit are asked for)
Provider = Callable[[bool], Sequence[Row]]
# (detail, filters, limit) -> (rows, total): a provider that filters its own records, as
# ``state_filters.select`` would its rows, without making a row for each
Selector = Callable[[bool, list[Any], int], tuple[list[Row], int]]


class NodeState:
    def __init__(self, node: NodeManager) -> None:
        self.node = node
        tasks = node.tasks
        self.providers: dict[str, Provider] = {
            "tasks": tasks.rows,
            "task_runs": tasks.runs,
            "workers": self.workers,
            "objects": self.objects,
            "actors": self.actors,
            "task_summary": self.task_summary,
        }
        self.selectors: dict[str, Selector] = {"tasks": tasks.select}
        # What a kind's rows lack (dropped or evicted), told with every answer of that kind.
        self.warnings: dict[str, Callable[[], list[str]]] = {
            "tasks": tasks.warnings,
            "task_runs": tasks.warnings,
        }

    def answer(self, query: m.StateQuery) -> m.Reply:
        provider = self.providers.get(query.kind)
        if provider is None:
            return m.error_reply(
                query.rid, m.ErrorKind.INVALID, f"a node has no state of kind {query.kind!r}"
            )
        try:
            selector = self.selectors.get(query.kind)
            if selector is not None:
                rows, total = selector(query.detail, query.filters, query.limit)
            else:
                found = provider(query.detail)
                if not query.detail and state_filters.needs_detail(found, query.filters):
                    found = provider(True)
                rows, total = state_filters.select(found, query.filters, query.limit)
            warnings = self.warnings.get(query.kind, list)()
        except Exception as e:  # (a bug in a provider: said, not mistaken for a timeout)
            return m.error_reply(
                query.rid,
                m.ErrorKind.INVALID,
                f"the node failed to list its {query.kind}: {type(e).__name__}: {e}",
            )
        return m.Reply(rid=query.rid, value={"rows": rows, "total": total, "warnings": warnings})

    # -- providers ------------------------------------------------------------------------

    def workers(self, detail: bool) -> list[Row]:
        """The node's workers (alive, and the last that ended) and its drivers."""
        node = self.node
        here = {"node_id": node.node_id.hex(), "ip": node.host}
        rows = [_worker_row(w, True, here) for w in node.pool.workers.values()]
        rows += [_worker_row(w, False, here) for w in node.pool.ended.values()]
        for c in node.clients.values():
            if c.kind == "driver" and not c.conn.node:  # (drivers on this node)
                rows.append(
                    {
                        "worker_id": c.client_id.hex(),
                        "is_alive": True,
                        "worker_type": "DRIVER",
                        "exit_type": None,
                        "pid": c.pid,
                        **here,
                    }
                )
        return rows

    def objects(self, detail: bool) -> list[Row]:
        """A row per object (or actor handle) and holder that this node counts."""
        node = self.node
        here = node.node_id.hex()
        rows = []
        for ref in node.objects.index.references():
            if self._for_a_node(ref.holder):
                continue  # (that node lists the processes it holds the ref for)
            pid, kind, ip = self._holder(ref.holder)
            if ref.actor:
                why = "ACTOR_HANDLE"
            elif isinstance(ref.holder, tuple):
                why = "CAPTURED_IN_OBJECT"
            elif ref.holder is None:
                why = "UNKNOWN_STATUS"
            else:
                why = "LOCAL_REFERENCE"
            rows.append(
                {
                    "object_id": ref.oid.hex(),
                    "object_size": ref.size,
                    "task_status": "FINISHED" if not ref.actor else "NIL",
                    "attempt_number": 1,  # (Ray counts the run that made it: 1 for a put)
                    "reference_type": why,
                    "call_site": "disabled",
                    "type": kind,
                    "pid": pid,
                    "ip": ip,
                    "node_id": here,
                    "spilled": not ref.in_shm,
                }
            )
        return rows

    def _holder(self, holder: object) -> tuple[int, str, str]:
        """(pid, DRIVER or WORKER, ip) of a holder of refs, as far as this node knows it: a
        process here or connected from elsewhere, or one this node does not know (gone, or
        on another node: pid -1, that node's address)."""
        node = self.node
        if isinstance(holder, tuple):  # refs inside another object: its owner's
            holder = node.objects.index.owner_of(holder[1])
        if not isinstance(holder, bytes):
            return -1, "WORKER", node.host
        client = node.clients.get(holder)
        if client is not None and client.kind != "node":
            kind = "DRIVER" if client.kind == "driver" else "WORKER"
            return client.pid, kind, self._host_of(client.conn.node or node.node_id)
        other = holder if client is not None else node.cluster.home_of(holder)
        return -1, "WORKER", self._host_of(other)

    def _for_a_node(self, holder: object) -> bool:
        """Whether ``holder`` is another node, connected here, holding for its processes."""
        client = self.node.clients.get(holder) if isinstance(holder, bytes) else None
        return client is not None and client.kind == "node"

    def _host_of(self, node_id: bytes | None) -> str:
        info = self.node.cluster.view.get(node_id) if node_id is not None else None
        return str(info["host"]) if info else self.node.host

    def actors(self, detail: bool) -> list[Row]:
        """The actors this node is the home of, whatever their state."""
        node = self.node
        rows = []
        for rec in node.actors.actors.values():
            state = _ACTOR_STATES[rec.life.state]
            if rec.life.state is ActorState.PENDING and rec.spec is None:
                state = "DEPENDENCIES_UNREADY"
            row: Row = {
                "actor_id": rec.actor_id.hex(),
                "class_name": rec.class_name,
                "state": state,
                "job_id": rec.job_id.hex(),
                "name": rec.name or "",
                "node_id": rec.node.hex() if rec.node else None,
                "pid": rec.pid,
                "ray_namespace": rec.namespace,
            }
            if detail:
                row.update(
                    required_resources=shape_dict(rec.shape),
                    death_cause=(
                        {"actor_died_error_context": {"error_message": rec.life.reason}}
                        if rec.life.state is ActorState.DEAD
                        else None
                    ),
                    is_detached=rec.detached,
                    placement_group_id=group_of(name for name, _ in rec.shape),
                    repr_name="",
                    num_restarts=rec.life.restarts,
                    num_restarts_due_to_lineage_reconstruction=0,
                    num_restarts_due_to_node_preemption=0,
                    call_site=None,
                    label_selector={},
                    fallback_strategy=None,
                )
            rows.append(row)
        return rows

    def task_summary(self, detail: bool) -> list[Row]:
        """This node's tasks counted by name, type and state (summed over nodes)."""
        return state_summary.count_groups(self.node.tasks.groups())


_ACTOR_STATES = {
    ActorState.PENDING: "PENDING_CREATION",
    ActorState.ALIVE: "ALIVE",
    ActorState.RESTARTING: "RESTARTING",
    ActorState.DEAD: "DEAD",
}


def _worker_row(w: WorkerProc, alive: bool, here: Row) -> Row:
    code = w.proc.returncode
    if alive:
        exit_type, detail = None, None
    elif w.oom:
        exit_type, detail = "SYSTEM_ERROR", w.oom
    elif code in (0, -signal.SIGTERM):
        exit_type, detail = "INTENDED_SYSTEM_EXIT", f"exit code {code}"
    else:
        exit_type, detail = "SYSTEM_ERROR", f"exit code {code}"
    return {
        "worker_id": w.worker_id.hex(),
        "is_alive": alive,
        "worker_type": "WORKER",
        "exit_type": exit_type,
        "pid": w.proc.pid,
        "exit_detail": detail,
        "worker_launch_time_ms": int(w.started * 1000),
        "worker_launched_time_ms": int(w.started * 1000),
        "start_time_ms": int(w.started * 1000),
        "end_time_ms": int(w.ended_at * 1000) if w.ended_at else None,
        **here,
    }
