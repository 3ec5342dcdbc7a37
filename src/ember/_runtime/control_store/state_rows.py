"""The rows the control store answers the state API with itself (nodes, jobs, placement
groups), with Ray's field names; ``state_queries`` filters them and applies the limit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ember._core.resources import shape_dict

if TYPE_CHECKING:
    from ember._runtime.control_store.server import ControlStore

Row = dict[str, Any]


def node_rows(store: ControlStore, detail: bool) -> list[Row]:
    """Every node the store knows, alive or dead."""
    return [
        {
            "node_id": e.node_id.hex(),
            "node_ip": e.host,
            "is_head_node": "node:__internal_head__" in e.total,
            "state": "ALIVE" if e.alive else "DEAD",
            "state_message": e.death_reason or None,
            "node_name": e.host,
            "resources_total": {k: v for k, v in e.total.items() if not k.startswith("node:")},
            "labels": e.labels,
            "start_time_ms": e.started_ms,
            "end_time_ms": e.ended_ms or None,
        }
        for e in store.nodes.values()
    ]


def job_rows(store: ControlStore, detail: bool) -> list[Row]:
    """The connected drivers' jobs, and the last that ended (a driver's end is its job's,
    which Ember cannot tell a failure from: SUCCEEDED)."""
    rows = []
    running = [(job_id, info, "RUNNING") for job_id, info in store.jobs.items()]
    ended = [(job_id, info, "SUCCEEDED") for job_id, info in store.ended_jobs.items()]
    for job_id, info, status in running + ended:
        rows.append(
            {
                "job_id": job_id.hex(),
                "submission_id": None,
                "entrypoint": "",
                "type": "DRIVER",
                "status": status,
                "message": None,
                "error_type": None,
                "driver_info": {
                    "id": job_id.hex(),
                    "node_ip_address": info["host"],
                    "pid": str(info["pid"]),
                },
                "start_time": info.get("start_time"),
                "end_time": info.get("end_time"),
                "metadata": {},
                "runtime_env": {},
                "driver_agent_http_address": None,
                "driver_node_id": None,
                "driver_exit_code": None,
            }
        )
    return rows


def placement_group_rows(store: ControlStore, detail: bool) -> list[Row]:
    """Every placement group, with its bundles and where each is placed."""
    return [
        {
            "placement_group_id": g.pg_id.hex(),
            "name": g.name,
            "creator_job_id": g.job_id.hex(),
            "state": g.state,
            "bundles": [
                {
                    "bundle_id": {"placement_group_id": g.pg_id.hex(), "bundle_index": i},
                    "node_id": g.placed[i].hex() if i in g.placed else None,
                    "unit_resources": shape_dict(b),
                }
                for i, b in enumerate(g.bundles)
            ],
            "is_detached": g.detached,
            "stats": {"scheduling_attempt": g.attempts, "scheduling_state": g.state},
            "topology_strategy": {},
            "topology_assignments": {},
        }
        for g in store.placement_groups.table.groups.values()
    ]
