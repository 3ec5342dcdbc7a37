"""Tests for the cluster placement decisions (ember._core.placement) and how the lease
scheduler uses them, with plain values: no processes, no sockets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from ember._core.placement import HERE, Placement, Unschedulable, strategy_on_wire
from ember._core.resources import NodeResources, shape_of
from ember._core.scheduler import Grant, LeaseScheduler, Refuse, Spill

LOCAL, B, C = b"L" * 16, b"B" * 16, b"C" * 16
CPU1 = shape_of({"CPU": 1})


def node(
    node_id: bytes,
    total: dict[str, float],
    available: dict[str, float] | None = None,
    alive: bool = True,
) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "total": total,
        "available": total if available is None else available,
        "alive": alive,
    }


def placement(*nodes: dict[str, Any]) -> Placement:
    p = Placement(LOCAL)
    p.update([node(LOCAL, {"CPU": 1}), *nodes])
    return p


def test_keeps_work_here_while_this_node_has_room() -> None:
    p = placement(node(B, {"CPU": 4}))
    assert p.choose(CPU1, None, NodeResources({"CPU": 1})) is HERE


def test_spills_to_the_node_with_most_room_when_busy_or_full() -> None:
    p = placement(node(B, {"CPU": 2}), node(C, {"CPU": 3}))
    full = NodeResources({"CPU": 1})
    full.acquire(CPU1)
    assert p.choose(CPU1, None, full) == C
    # Waiting requests here mean no room now, whatever the free amount says.
    assert p.choose(CPU1, None, NodeResources({"CPU": 1}), busy=True) in (B, C)


def test_a_burst_spreads_because_spilling_lowers_the_target_room() -> None:
    p = placement(node(B, {"CPU": 1}), node(C, {"CPU": 1}))
    full = NodeResources({"CPU": 1})
    full.acquire(CPU1)
    picks = [p.choose(CPU1, None, full) for _ in range(3)]
    assert sorted(picks[:2]) == [B, C]
    assert picks[2] is HERE  # nowhere has room now: it waits here, where it can run


def test_infeasible_here_goes_to_a_node_that_could_run_it() -> None:
    shard = shape_of({"CPU": 1, "shard": 1})
    p = placement(node(B, {"CPU": 1}), node(C, {"CPU": 1, "shard": 1}, {"CPU": 0}))
    assert p.choose(shard, None, NodeResources({"CPU": 1})) == C  # busy there, but feasible
    nowhere = shape_of({"CPU": 1, "tpu": 1})
    assert p.choose(nowhere, None, NodeResources({"CPU": 1})) is HERE


def test_dead_nodes_are_not_candidates() -> None:
    p = placement(node(B, {"CPU": 8}, alive=False))
    full = NodeResources({"CPU": 1})
    full.acquire(CPU1)
    assert p.choose(CPU1, None, full) is HERE


def test_spread_takes_the_nodes_in_turn() -> None:
    p = placement(node(B, {"CPU": 4}), node(C, {"CPU": 4}))
    local = NodeResources({"CPU": 4})
    picks = [p.choose(CPU1, "SPREAD", local) for _ in range(6)]
    assert {HERE, B, C} == set(picks)
    assert picks[:3].count(HERE) == 1


def test_node_affinity() -> None:
    p = placement(node(B, {"CPU": 1}, {"CPU": 0}))
    local = NodeResources({"CPU": 1})
    assert p.choose(CPU1, ["node", B, False], local) == B  # hard: even without room now
    assert p.choose(CPU1, ["node", LOCAL, False], local) is HERE
    gone = p.choose(CPU1, ["node", C, False], local)
    assert isinstance(gone, Unschedulable) and C.hex() in gone.message
    assert p.choose(CPU1, ["node", C, True], local) is HERE  # soft: the default choice


def test_locality_sends_work_to_the_node_with_the_arguments_if_it_could_run_it() -> None:
    p = placement(node(B, {"CPU": 1}), node(C, {"CPU": 1}, {"CPU": 0}))
    local = NodeResources({"CPU": 1})
    assert p.choose(CPU1, ["locality", B], local) == B
    assert p.choose(CPU1, ["locality", C], local) == C  # busy now: it waits there
    assert p.choose(shape_of({"GPU": 1}), ["locality", C], NodeResources({"GPU": 1})) is HERE
    assert p.choose(CPU1, ["locality", LOCAL], local) is HERE


@dataclass(frozen=True)
class _Affinity:
    node_id: str
    soft: bool = False


def test_strategies_on_the_wire() -> None:
    assert strategy_on_wire(None) is None
    assert strategy_on_wire("DEFAULT") is None
    assert strategy_on_wire("SPREAD") == "SPREAD"
    assert strategy_on_wire(_Affinity(B.hex(), True)) == ["node", B, True]
    with pytest.raises(ValueError, match="hex string"):
        strategy_on_wire(_Affinity("not-hex"))


# -- the scheduler with a placement ---------------------------------------------------------


def scheduler(*nodes: dict[str, Any], cpus: float = 1) -> LeaseScheduler:
    s = LeaseScheduler(NodeResources({"CPU": cpus}), placement=placement(*nodes))
    s.worker_started(b"w1")
    return s


def test_scheduler_grants_here_then_spills() -> None:
    s = scheduler(node(B, {"CPU": 2}))
    first = s.request("caller", 1, CPU1)
    assert [type(a) for a in first] == [Grant]
    assert s.request("caller", 2, CPU1) == [Spill("caller", 2, B)]


def test_spilled_requests_are_never_spilled_again() -> None:
    s = scheduler(node(B, {"CPU": 2}))
    s.request("caller", 1, CPU1)
    actions = s.request("remote", 2, CPU1, spilled=True)
    assert not [a for a in actions if isinstance(a, (Spill, Grant))]  # queued here
    assert s.pending() == [("", True)]


def test_hard_affinity_to_a_dead_node_is_refused() -> None:
    s = scheduler()
    (refused,) = s.request("caller", 1, CPU1, strategy=["node", C, False])
    assert isinstance(refused, Refuse)


def test_a_new_view_spills_queued_work_when_another_node_has_room() -> None:
    s = scheduler(node(B, {"CPU": 1}, {"CPU": 0}))
    s.request("caller", 1, CPU1)  # granted here
    assert s.request("caller", 2, CPU1, "x") == []  # nowhere has room: queued here
    assert s.saturated(CPU1)
    assert s.view_changed([node(B, {"CPU": 1})]) == [Spill("caller", 2, B)]
    assert s.saturated(CPU1)  # (the room B had is taken by what was spilled there)
    assert s.pending() == []


def test_a_new_view_moves_work_that_only_preferred_this_node() -> None:
    """A request for the node holding its arguments waited for ever once that node had died
    and the request sat here (it was never moved); only a hard node affinity stays put."""
    s = scheduler(node(B, {"CPU": 1}, {"CPU": 0}))
    s.request("caller", 1, CPU1)  # granted here
    assert s.request("caller", 2, CPU1, "x", strategy=["locality", C]) == []  # C is gone
    assert s.request("caller", 3, CPU1, "y", strategy=["node", LOCAL, True]) == []
    assert s.request("caller", 4, CPU1, "z", strategy=["node", LOCAL, False]) == []
    assert s.view_changed([node(B, {"CPU": 3})]) == [Spill("caller", 2, B), Spill("caller", 3, B)]
    assert [what for what, _ in s.pending()] == ["z"]


def test_the_infeasible_warning_on_a_cluster_reads_well() -> None:
    s = scheduler(node(B, {"CPU": 1}))
    (warn,) = s.request("caller", 1, shape_of({"CPU": 1, "w": 1}), "train")
    assert warn.message.startswith(
        "train requires {CPU: 1, w: 1}, but no node of the cluster has them (this node lacks "
        "w (needs 1, node has 0)). It will wait until a node with these resources joins"
    ), warn.message


def test_an_unreachable_peer_takes_no_work_until_a_new_view() -> None:
    s = scheduler(node(B, {"CPU": 1}))
    s.request("caller", 1, CPU1)  # granted here
    assert s.peer_unreachable(B) == []
    assert s.request("caller", 2, CPU1) == []  # queued here, not spilled to B
    assert s.view_changed([node(B, {"CPU": 1})]) == [Spill("caller", 2, B)]


def test_a_node_alone_ignores_cluster_views() -> None:
    s = LeaseScheduler(NodeResources({"CPU": 1}))
    s.worker_started(b"w1")
    s.request("caller", 1, CPU1)
    assert s.view_changed([node(B, {"CPU": 1})]) == []
    assert s.peer_unreachable(B) == []
    assert s.saturated(CPU1)
