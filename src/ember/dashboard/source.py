"""Where the dashboard's data comes from: the state API's rows, asked of the control store
on request (which asks the nodes for what it does not hold itself). The dashboard keeps no
copy beyond the last minutes' samples: what it shows is what the state API answers.

Calls block (a socket round trip): the server runs them off its event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ember._runtime.launch import admin
from ember.dashboard import samples

MAX_NODES = 10_000

Filter = tuple[str, str, Any]


@dataclass
class Rows:
    rows: list[dict[str, Any]]
    total: int
    warnings: list[str] = field(default_factory=list)


class StateSource:
    """The state of the cluster whose control store is at ``address`` (``tcp:HOST:PORT``, or
    a single-machine node's ``unix:...``), which asks for ``token``."""

    def __init__(self, address: str, token: str | None) -> None:
        self.address = address.removeprefix("tcp:")
        self.token = token

    def query(
        self, kind: str, filters: list[Filter] | None = None, limit: int = 100, detail: bool = False
    ) -> Rows:
        if kind == "nodes":
            rows = [_node_row(n) for n in admin.nodes(self.address, self.token)]
        elif kind == "jobs":
            rows = [_job_row(j) for j in admin.jobs(self.address, self.token)]
        else:
            return Rows([], 0, [f"listing {kind} is not available yet"])
        return Rows(rows[:limit], len(rows))

    def task_counts(self) -> dict[str, int]:
        """How many tasks are in each state."""
        return {}

    def sample(self) -> dict[str, Any]:
        """The cluster now, as a point of the overview's charts."""
        nodes = self.query("nodes", limit=MAX_NODES).rows
        return samples.sample(time.time(), nodes, self.task_counts())


def _node_row(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "node_id": node["node_id"].hex(),
        "node_ip": node["host"],
        "is_head_node": "node:__internal_head__" in node["total"],
        "state": "ALIVE" if node["alive"] else "DEAD",
        "state_message": node["death_reason"] or None,
        "resources_total": node["total"],
        "resources_available": node["available"],
        "labels": node["labels"],
    }


def _job_row(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": job["job_id"].hex(),
        "status": "RUNNING",
        "namespace": job["namespace"],
        "driver_info": {"node_ip_address": job["host"], "pid": str(job["pid"])},
    }
