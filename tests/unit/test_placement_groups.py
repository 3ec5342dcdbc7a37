"""Placement groups' decisions (ember._core.placement_groups) with plain values: where bundles
go under each strategy, the two-phase reservation, a node's side of it, and how work in a
group asks for its bundle's resources."""

from __future__ import annotations

import pytest

from ember._core import placement_groups as pgs
from ember._core.labels import parse_selector
from ember._core.placement import strategy_on_wire
from ember._core.resources import NodeResources, shape_of, to_units
from ember._core.scheduler import (
    Grant,
    LeaseScheduler,
    Refuse,
    StartWorker,
    StopWorker,
    WarnInfeasible,
)
from ember._protocol.messages import ErrorKind

A, B, C = b"A" * 16, b"B" * 16, b"C" * 16
PG = b"\x01" * 18
HEX = PG.hex()


def cpus(n: float) -> dict[str, int]:
    return {"CPU": to_units(n)}


def bundles(*amounts: float) -> dict[int, tuple[tuple[str, int], ...]]:
    return {i: shape_of({"CPU": n}) for i, n in enumerate(amounts)}


# -- choosing nodes ------------------------------------------------------------------------------


def test_strict_pack_puts_every_bundle_on_one_node_or_none() -> None:
    free = {A: cpus(2), B: cpus(3)}
    assert pgs.choose_nodes(bundles(1, 2), "STRICT_PACK", free) == {0: B, 1: B}
    assert pgs.choose_nodes(bundles(2, 2), "STRICT_PACK", free) is None


def test_pack_uses_one_node_when_it_can_and_spills_over_when_it_cannot() -> None:
    assert pgs.choose_nodes(bundles(1, 1), "PACK", {A: cpus(2), B: cpus(4)}) == {0: B, 1: B}
    chosen = pgs.choose_nodes(bundles(2, 2, 1), "PACK", {A: cpus(3), B: cpus(2)})
    assert chosen is not None and sorted(chosen.values()) == [A, A, B]


def test_spread_prefers_distinct_nodes_but_may_share() -> None:
    assert pgs.choose_nodes(bundles(1, 1), "SPREAD", {A: cpus(4), B: cpus(1)}) == {0: A, 1: B}
    assert pgs.choose_nodes(bundles(1, 1, 1), "SPREAD", {A: cpus(2), B: cpus(1)}) is not None


def test_strict_spread_needs_a_node_per_bundle() -> None:
    assert pgs.choose_nodes(bundles(1, 1), "STRICT_SPREAD", {A: cpus(4)}) is None
    chosen = pgs.choose_nodes(bundles(1, 1), "STRICT_SPREAD", {A: cpus(4), B: cpus(1)})
    assert chosen is not None and set(chosen.values()) == {A, B}


def test_all_or_nothing_when_one_bundle_fits_nowhere() -> None:
    assert pgs.choose_nodes(bundles(1, 8), "SPREAD", {A: cpus(4), B: cpus(4)}) is None


def test_rescheduling_respects_the_bundles_already_placed() -> None:
    free = {A: cpus(4), B: cpus(4), C: cpus(4)}
    # STRICT_SPREAD: not on the node that holds bundle 0.
    chosen = pgs.choose_nodes({1: shape_of({"CPU": 1})}, "STRICT_SPREAD", free, {0: A})
    assert chosen is not None and chosen[1] != A
    # STRICT_PACK: only with the others.
    assert pgs.choose_nodes({1: shape_of({"CPU": 1})}, "STRICT_PACK", free, {0: B}) == {1: B}


# -- the two-phase reservation --------------------------------------------------------------------


def group(*amounts: float, strategy: str = "SPREAD", job: bytes = b"j") -> pgs.Group:
    return pgs.Group(PG, list(bundles(*amounts).values()), strategy, job_id=job)


def test_commit_only_once_every_node_prepared() -> None:
    table = pgs.GroupTable()
    table.create(group(1, 1))
    actions = table.schedule({A: cpus(1), B: cpus(1)})
    assert sorted(type(a).__name__ + a.node.decode()[0] for a in actions) == [
        "PrepareA",
        "PrepareB",
    ]
    assert not table.waiting()  # (an attempt is in flight)
    assert table.prepared(PG, A, True) == []
    commits = table.prepared(PG, B, True)
    assert {(a.node, a.indexes) for a in commits if isinstance(a, pgs.Commit)} == {
        (A, (0,)),
        (B, (1,)),
    }
    assert table.groups[PG].state == pgs.CREATED
    assert table.groups[PG].placed == {0: A, 1: B}


def test_a_refusal_releases_what_the_others_prepared_and_the_group_waits() -> None:
    table = pgs.GroupTable()
    table.create(group(1, 1))
    table.schedule({A: cpus(1), B: cpus(1)})
    assert table.prepared(PG, A, False) == []
    assert table.prepared(PG, B, True) == [pgs.Release(B, PG, (1,))]
    assert table.groups[PG].state == pgs.PENDING and table.waiting()
    assert table.groups[PG].placed == {}


def test_groups_never_count_the_same_room_twice() -> None:
    table = pgs.GroupTable()
    table.create(pgs.Group(b"1" * 18, [shape_of({"CPU": 1})], "PACK"))
    table.create(pgs.Group(b"2" * 18, [shape_of({"CPU": 1})], "PACK"))
    actions = table.schedule({A: cpus(1)})
    assert [a.pg_id for a in actions] == [b"1" * 18]


def test_room_an_attempt_in_flight_prepares_is_not_offered_again() -> None:
    table = pgs.GroupTable()
    table.create(pgs.Group(b"1" * 18, [shape_of({"CPU": 1})], "PACK"))
    table.schedule({A: cpus(1)})
    table.create(pgs.Group(b"2" * 18, [shape_of({"CPU": 1})], "PACK"))
    assert table.schedule({A: cpus(1)}) == []  # (A's heartbeat has not shown it yet)


def test_an_infeasible_group_stays_pending() -> None:
    table = pgs.GroupTable()
    table.create(group(64))
    assert table.schedule({A: cpus(4)}) == []
    assert table.groups[PG].state == pgs.PENDING and table.waiting()


def test_removal_releases_committed_bundles_and_late_answers() -> None:
    table = pgs.GroupTable()
    table.create(group(1, 1))
    table.schedule({A: cpus(1), B: cpus(1)})
    table.prepared(PG, A, True)
    table.prepared(PG, B, True)
    # Every live node hears of it (C holds none of it, but may hold work waiting for it).
    assert sorted(table.remove(PG, [A, B, C]), key=lambda a: a.node) == [
        pgs.Release(A, PG, (0,), removed=True),
        pgs.Release(B, PG, (1,), removed=True),
        pgs.Release(C, PG, (), removed=True),
    ]
    assert table.groups[PG].state == pgs.REMOVED and table.remove(PG) == []
    # A group removed while its nodes were still preparing: what they prepare goes back.
    other = pgs.GroupTable()
    other.create(group(1))
    other.schedule({A: cpus(1)})
    assert other.remove(PG) == []
    assert other.prepared(PG, A, True) == [pgs.Release(A, PG, (0,))]


def test_a_dead_node_s_bundles_are_chosen_again_elsewhere() -> None:
    table = pgs.GroupTable()
    table.create(group(1, 1, strategy="STRICT_SPREAD"))
    table.schedule({A: cpus(1), B: cpus(1), C: cpus(1)})
    for node in list(table.groups[PG].attempt):
        table.prepared(PG, node, True)
    placed = dict(table.groups[PG].placed)
    lost = placed[0]
    assert table.node_died(lost) == []
    assert table.groups[PG].state == pgs.RESCHEDULING
    alive = {n: cpus(1) for n in (A, B, C) if n != lost}
    [prepare] = table.schedule(alive)
    assert isinstance(prepare, pgs.Prepare) and prepare.node not in (lost, placed[1])
    assert prepare.bundles == ((0, shape_of({"CPU": 1})),)
    table.prepared(PG, prepare.node, True)
    assert table.groups[PG].state == pgs.CREATED


def test_an_attempt_that_counted_on_a_dead_node_fails() -> None:
    table = pgs.GroupTable()
    table.create(group(1, 1))
    table.schedule({A: cpus(1), B: cpus(1)})
    table.prepared(PG, A, True)
    assert table.node_died(B) == [pgs.Release(A, PG, (0,))]
    assert table.groups[PG].state == pgs.PENDING


def test_a_job_s_groups_end_with_it_unless_detached() -> None:
    table = pgs.GroupTable()
    table.create(group(1, job=b"x"))
    table.create(pgs.Group(b"d" * 18, [shape_of({"CPU": 1})], "PACK", job_id=b"x", detached=True))
    table.job_ended(b"x")
    assert table.groups[PG].state == pgs.REMOVED
    assert table.groups[b"d" * 18].state == pgs.PENDING


# -- a node's side, and work in a bundle ---------------------------------------------------------


def test_a_node_prepares_all_or_nothing_and_commits_the_group_s_resources() -> None:
    res = NodeResources({"CPU": 2})
    held = pgs.NodeBundles(res)
    assert not held.prepare(PG, [(0, shape_of({"CPU": 1})), (1, shape_of({"CPU": 2}))])
    assert res.available["CPU"] == to_units(2)  # (nothing kept of a refused prepare)
    assert held.prepare(PG, [(0, shape_of({"CPU": 1}))])
    assert res.available["CPU"] == to_units(1)
    held.commit(PG, [0])
    assert res.total[f"CPU_group_0_{HEX}"] == to_units(1)
    assert res.total[f"CPU_group_{HEX}"] == to_units(1)
    assert f"bundle_group_0_{HEX}" in held.group_names(PG, [])
    held.release(PG, [])
    assert res.total == {"CPU": to_units(2)} and res.available == {"CPU": to_units(2)}


def _node_with_a_bundle() -> tuple[NodeResources, pgs.NodeBundles, LeaseScheduler]:
    """A node of 2 CPUs holding bundle 0 (1 CPU) of PG, with one worker."""
    res = NodeResources({"CPU": 2})
    held = pgs.NodeBundles(res)
    held.prepare(PG, [(0, shape_of({"CPU": 1}))])
    held.commit(PG, [0])
    sched = LeaseScheduler(res)
    sched.worker_started(b"w1")
    return res, held, sched


def test_work_in_a_bundle_uses_the_bundle_not_the_node_s_free_pool() -> None:
    res, held, sched = _node_with_a_bundle()
    sched.worker_started(b"w2")
    in_bundle = pgs.demand(shape_of({"CPU": 1}), HEX, 0)
    [grant] = sched.request("c", 1, in_bundle)
    assert isinstance(grant, Grant)
    assert res.available["CPU"] == to_units(1)  # the node's own CPU is untouched
    # A second task does not fit in the bundle (though the node has a CPU free): it waits.
    assert not [a for a in sched.request("c", 2, in_bundle) if isinstance(a, Grant)]
    # Giving the bundle back stops what runs in it.
    stops = sched.evict(held.group_names(PG, []))
    assert stops == [StopWorker(b"w1")]


def test_a_removed_group_s_work_is_stopped_and_refused_not_queued() -> None:
    _, held, sched = _node_with_a_bundle()
    in_bundle = pgs.demand(shape_of({"CPU": 1}), HEX, 0)
    outside = shape_of({"CPU": 1})
    [grant] = sched.request("c", 1, in_bundle)
    assert isinstance(grant, Grant)
    assert sched.request("c", 2, in_bundle) == []  # (waits for the bundle)
    removed = sched.group_removed(HEX)
    assert removed[0] == StopWorker(b"w1")
    assert (
        removed[1:] == [Refuse("c", 2, removed[1].message, ErrorKind.PLACEMENT_GROUP_REMOVED)]
        and "placement group was removed" in removed[1].message
    )
    held.release(PG, [])
    # A retried task or a restarted actor asks again: refused at once; other work goes on.
    [refused] = sched.request("c", 3, pgs.demand((), HEX, -1))
    assert isinstance(refused, Refuse) and refused.error is ErrorKind.PLACEMENT_GROUP_REMOVED
    assert sched.request("c", 4, outside) == [StartWorker()]


def test_a_request_for_a_bundle_not_here_yet_is_no_cause_for_a_warning() -> None:
    sched = LeaseScheduler(NodeResources({"CPU": 1}))
    actions = sched.request("c", 1, pgs.demand((), HEX, -1))
    assert not [a for a in actions if isinstance(a, WarnInfeasible)]


def test_a_label_selector_the_bundle_s_node_does_not_match_is_warned_about() -> None:
    sched = LeaseScheduler(NodeResources({"CPU": 1}), labels={"zone": "a"})
    wire = strategy_on_wire(None, parse_selector({"zone": "b"}))
    [warning] = sched.request("c", 1, pgs.demand((), HEX, -1), strategy=wire)
    assert isinstance(warning, WarnInfeasible) and "placement group" in warning.message
    assert "zone" in warning.message


def test_demand_asks_for_the_bundle_and_the_group() -> None:
    one = dict(pgs.demand(shape_of({"CPU": 1}), HEX, 1))
    assert one[f"CPU_group_1_{HEX}"] == one[f"CPU_group_{HEX}"] == to_units(1)
    assert f"bundle_group_1_{HEX}" in one and f"bundle_group_{HEX}" in one
    anywhere = dict(pgs.demand((), HEX, -1))
    assert list(anywhere) == [f"bundle_group_{HEX}"]
    assert pgs.group_of({f"bundle_group_{HEX}": 0.001}) == HEX
    assert pgs.group_of({"CPU": 1}) is None


@pytest.mark.parametrize(
    ("request_", "fits"),
    [({"CPU": 1}, True), ({"CPU": 3}, False), ({"GPU": 1}, False), ({}, True)],
)
def test_a_request_must_fit_some_bundle(request_: dict[str, float], fits: bool) -> None:
    assert pgs.fits_a_bundle(request_, [{"CPU": 1}, {"CPU": 2}]) is fits


def test_work_in_a_group_is_placed_by_its_resources_not_its_wire_strategy() -> None:
    class Strategy:
        placement_group = object()
        placement_group_capture_child_tasks = True

    assert strategy_on_wire(Strategy()) is None
    assert pgs.in_group(pgs.demand((), HEX, -1)) and not pgs.in_group(shape_of({"CPU": 1}))


def test_work_in_a_bundle_gets_the_gpus_the_bundle_reserved() -> None:
    res = NodeResources({"CPU": 4, "GPU": 3})
    held = pgs.NodeBundles(res)
    res.acquire(shape_of({"GPU": 1}))  # device 0 is busy outside the group
    assert held.prepare(PG, [(0, shape_of({"GPU": 1})), (1, shape_of({"GPU": 1}))])
    held.commit(PG, [0, 1])
    first = res.acquire(pgs.demand(shape_of({"GPU": 1}), HEX, 1))
    assert first is not None and first.gpu_ids in ([1], [2])
    anywhere = res.acquire(pgs.demand(shape_of({"GPU": 1}), HEX, -1))
    assert anywhere is not None and {*first.gpu_ids, *anywhere.gpu_ids} == {1, 2}
    assert res.acquire(pgs.demand(shape_of({"GPU": 1}), HEX, 0)) is None  # (both taken)
    res.release(anywhere)
    again = res.acquire(pgs.demand(shape_of({"GPU": 0.5}), HEX, -1))
    assert again is not None and again.gpu_ids == anywhere.gpu_ids
    res.release(again)
    res.release(first)
    held.release(PG, [])
    assert res.acquire(shape_of({"GPU": 2})) is not None  # devices 1 and 2 free again
