"""What a node tells the state API: one provider per kind of row that lives here (the
tasks its clients own, its workers, its objects, ...), asked by the control store's
``StateQuery`` and filtered here, so that only the rows asked for leave the node."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ember._core import state_filters
from ember._protocol import messages as m

if TYPE_CHECKING:
    from ember._runtime.node.manager import NodeManager

Provider = Callable[[bool], list[dict[str, Any]]]  # detail -> rows


class NodeState:
    def __init__(self, node: NodeManager) -> None:
        self.node = node
        self.providers: dict[str, Provider] = {}

    def answer(self, query: m.StateQuery) -> m.Reply:
        provider = self.providers.get(query.kind)
        if provider is None:
            return m.error_reply(
                query.rid, m.ErrorKind.INVALID, f"a node has no state of kind {query.kind!r}"
            )
        rows, total = state_filters.select(provider(query.detail), query.filters, query.limit)
        return m.Reply(rid=query.rid, value={"rows": rows, "total": total, "warnings": []})
