"""A node's answer to a ``StateQuery`` (``NodeState.answer``), with plain providers."""

from __future__ import annotations

from typing import Any

from ember._protocol import messages as m
from ember._runtime.node.state_rows import NodeState


def _node_state(providers: dict[str, Any]) -> NodeState:
    state = NodeState.__new__(NodeState)  # (no node: only the providers are asked)
    state.providers, state.warnings, state.selectors = providers, {}, {}
    return state


def _actors(detail: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"actor_id": "a"}, {"actor_id": "b"}]
    if detail:
        rows[1]["placement_group_id"] = "g"
    return rows


def test_a_filter_on_a_detail_column_is_applied_to_the_detailed_rows():
    state = _node_state({"actors": _actors})
    asked = m.StateQuery(rid=1, kind="actors", filters=[["placement_group_id", "=", "g"]])
    reply = state.answer(asked)
    assert reply.error is None and [r["actor_id"] for r in reply.value["rows"]] == ["b"]


def test_a_provider_that_fails_answers_an_error_naming_the_kind_and_the_error():
    def broken(detail: bool) -> list[dict[str, Any]]:
        raise KeyError("oops")

    reply = _node_state({"workers": broken}).answer(m.StateQuery(rid=7, kind="workers"))
    assert reply.rid == 7 and reply.error is not None
    assert "workers" in reply.error[1] and "KeyError" in reply.error[1]
