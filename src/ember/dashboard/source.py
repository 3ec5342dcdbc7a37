"""Where the dashboard's data comes from: the state API's rows (``ember._api.state.query``),
asked of the control store on request, which asks the nodes for what it does not hold. The
dashboard keeps no copy beyond the last minutes' samples: what it shows is what the state API
answers. Resources in use come from the control store's live node table (what
``ember status`` shows), which the state API's node rows, as Ray's, do not carry.

Calls block (a socket round trip): the server runs them off its event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ember._api import state
from ember._runtime.launch import admin
from ember.dashboard import samples

Filter = tuple[str, str, Any]
MAX_ROWS = 10_000  # what a listing or a sample asks for at most
TIMEOUT = 10.0


@dataclass
class Rows:
    rows: list[dict[str, Any]]
    total: int
    warnings: list[str] = field(default_factory=list)


class StateSource:
    """The state of the cluster whose control store is at ``address`` (``tcp:HOST:PORT``, or
    a single-machine node's ``unix:...``), which asks for ``token`` (None on one machine).
    The state API finds the token in $EMBER_TOKEN, which the dashboard's process sets."""

    def __init__(self, address: str, token: str | None) -> None:
        self.address = address.removeprefix("tcp:")
        self.token = token

    def query(
        self, kind: str, filters: list[Filter] | None = None, limit: int = 100, detail: bool = False
    ) -> Rows:
        found = state.query(
            kind, address=self.address, filters=filters, limit=limit, detail=detail, timeout=TIMEOUT
        )
        return Rows(found.rows, found.total, found.warnings)

    def node_usage(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per live node (by hex id): its resources' ``total`` and ``available`` now."""
        return {
            n["node_id"].hex(): {"total": n["total"], "available": n["available"]}
            for n in admin.nodes(self.address, self.token, timeout=TIMEOUT)
            if n["alive"]
        }

    def task_counts(self) -> dict[str, int]:
        """How many tasks are in each state (the nodes count their own)."""
        return samples.counts(self.query("task_summary", limit=MAX_ROWS).rows, "state", "count")

    def actor_counts(self) -> dict[str, int]:
        return samples.counts(self.query("actors", limit=MAX_ROWS).rows, "state")

    def store_use(self) -> dict[str, list[int]]:
        """Per node: bytes of objects in shared memory, and spilled."""
        return samples.store_use(self.query("objects", limit=MAX_ROWS, detail=True).rows)

    def take_sample(self, history: samples.History, watched: bool) -> None:
        """Add the cluster now to ``history``. Unless a page is ``watched``, only what the
        control store holds is asked (the nodes' rows cost the nodes work to make)."""
        usage = self.node_usage()
        tasks = self.task_counts() if watched else {}
        store = self.store_use() if watched else None
        history.add(samples.sample(time.time(), usage, tasks, store), usage, store)
