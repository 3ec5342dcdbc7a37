"""What a node tells the state API: one provider per kind of row that lives here (the
tasks its clients own, its workers, its objects, ...), asked by the control store's
``StateQuery`` and filtered here, so that only the rows asked for leave the node."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ember._core import state_filters
from ember._protocol import messages as m

if TYPE_CHECKING:
    from ember._runtime.node.manager import NodeManager

# detail -> rows (a Sequence may make its rows lazily: without filters only those within
# the limit are asked for)
Provider = Callable[[bool], Sequence[dict[str, Any]]]


class NodeState:
    def __init__(self, node: NodeManager) -> None:
        self.node = node
        tasks = node.tasks
        self.providers: dict[str, Provider] = {"tasks": tasks.rows, "task_runs": tasks.runs}
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
        rows, total = state_filters.select(provider(query.detail), query.filters, query.limit)
        warnings = self.warnings.get(query.kind, list)()
        return m.Reply(rid=query.rid, value={"rows": rows, "total": total, "warnings": warnings})
