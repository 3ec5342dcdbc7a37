"""Placement groups on one machine, as Ray's ``ray.util.placement_group``: reservation
(``ready``, ``wait``, the table), tasks and actors in bundles using the bundle's resources,
argument checks with Ray's errors, groups that cannot fit staying pending, removal killing
what runs in the group, names, and child tasks captured into the group."""

from __future__ import annotations

import time
from typing import Any

import pytest

import ember
from tests._helpers import raised, wait_until

T = 30


def in_group(pg: Any, index: int = -1, capture: bool | None = None) -> Any:
    # (looked up through the module, which is Ray under the shim: importing
    # ember.util.scheduling_strategies there may find Ember's installed copy)
    return ember.util.scheduling_strategies.PlacementGroupSchedulingStrategy(pg, index, capture)


@pytest.fixture
def ray4(start_ember: Any) -> Any:
    return start_ember(num_cpus=4)


def test_ready_resolves_to_the_group_once_its_bundles_are_reserved(ray4: Any) -> None:
    pg = ray4.util.placement_group([{"CPU": 1}, {"CPU": 2}], strategy="PACK")
    assert ray4.get(pg.ready(), timeout=T) == pg
    assert pg.wait(T)
    assert pg.bundle_specs == [{"CPU": 1.0}, {"CPU": 2.0}] and pg.bundle_count == 2
    entry = ray4.util.placement_group_table(pg)
    assert entry["placement_group_id"] == pg.id.hex()
    assert entry["state"] == "CREATED" and entry["strategy"] == "PACK"
    assert entry["bundles"] == {0: {"CPU": 1.0}, 1: {"CPU": 2.0}}
    assert set(entry["bundles_to_node_id"]) == {0, 1}
    assert pg.id.hex() in ray4.util.placement_group_table()
    # The bundles' CPUs are set aside: the node's free pool keeps only one.
    wait_until(
        lambda: ray4.available_resources().get("CPU", 0), T, "1 CPU left", until=(1.0).__eq__
    )


def test_tasks_in_a_bundle_use_its_resources_not_the_node_s(ray4: Any) -> None:
    pg = ray4.util.placement_group([{"CPU": 1}, {"CPU": 3}])
    ray4.get(pg.ready(), timeout=T)

    @ray4.remote(num_cpus=1)
    def where() -> str | None:
        return ray4.get_runtime_context().get_placement_group_id()

    refs = [where.options(scheduling_strategy=in_group(pg, i % 2)).remote() for i in range(6)]
    assert ray4.get(refs, timeout=T) == [pg.id.hex()] * 6
    # Every CPU of the node is in the group: work outside it waits until the group goes.
    outside = where.remote()
    ready, _ = ray4.wait([outside], timeout=0.5)
    assert not ready
    ray4.util.remove_placement_group(pg)
    assert ray4.get(outside, timeout=T) is None


def test_tasks_in_a_bundle_get_the_gpus_it_reserved(start_ember: Any) -> None:
    ray = start_ember(num_cpus=2, num_gpus=2)
    pg = ray.util.placement_group([{"GPU": 1}, {"GPU": 1}], strategy="STRICT_PACK")
    ray.get(pg.ready(), timeout=T)

    @ray.remote(num_cpus=0, num_gpus=1)
    def gpus() -> list[int]:
        return [int(i) for i in ray.get_gpu_ids()]

    first, second = ray.get(
        [gpus.options(scheduling_strategy=in_group(pg, i)).remote() for i in range(2)],
        timeout=T,
    )
    assert sorted(first + second) == [0, 1]
    ray.util.remove_placement_group(pg)


def test_work_that_does_not_fit_its_bundle_is_refused_at_the_call(ray: Any) -> None:
    pg = ray.util.placement_group([{"CPU": 1}])

    @ray.remote(num_cpus=2)
    def big() -> None:
        pass

    with pytest.raises(ValueError, match="cannot fit into any bundles"):
        big.options(scheduling_strategy=in_group(pg)).remote()
    with pytest.raises(ValueError, match="bundle index 1 is invalid"):
        big.options(num_cpus=1, scheduling_strategy=in_group(pg, 1)).remote()
    ray.util.remove_placement_group(pg)


@pytest.mark.parametrize(
    ("bundles", "strategy", "match"),
    [
        ([], "PACK", "non-empty list"),
        ([{}], "PACK", "empty dictionary"),
        ([{"CPU": 0}], "PACK", "only 0 values"),
        ({"CPU": 1}, "PACK", "must be a list"),
        ([{"CPU": 1}], "NEAR", "Invalid placement group strategy"),
    ],
)
def test_bad_arguments_raise_ray_s_errors(
    ray: Any, bundles: Any, strategy: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        ray.util.placement_group(bundles, strategy=strategy)


def test_a_group_that_cannot_fit_stays_pending(ray: Any) -> None:
    pg = ray.util.placement_group([{"CPU": 64}])
    assert not pg.wait(0.5)
    ready, _ = ray.wait([pg.ready()], timeout=0.5)
    assert not ready
    assert ray.util.placement_group_table(pg)["state"] == "PENDING"
    # Two bundles STRICT_SPREAD on a machine of one node: never.
    spread = ray.util.placement_group([{"CPU": 1}] * 2, strategy="STRICT_SPREAD")
    assert not spread.wait(0.5)
    ray.util.remove_placement_group(pg)
    ray.util.remove_placement_group(spread)
    assert ray.util.placement_group_table(pg)["state"] == "REMOVED"


def test_removing_a_group_kills_its_actors_and_frees_its_resources(ray: Any) -> None:
    pg = ray.util.placement_group([{"CPU": 2}], strategy="STRICT_PACK")
    ray.get(pg.ready(), timeout=T)

    @ray.remote(num_cpus=1)
    class Member:
        def group(self) -> str | None:
            return ray.get_runtime_context().get_placement_group_id()

    member = Member.options(scheduling_strategy=in_group(pg, 0)).remote()
    assert ray.get(member.group.remote(), timeout=T) == pg.id.hex()
    ray.util.remove_placement_group(pg)  # (asynchronous, as in Ray)
    wait_until(
        lambda: raised(
            ray.exceptions.RayActorError, lambda: ray.get(member.group.remote(), timeout=T)
        ),
        T,
        "the actor killed",
    )
    wait_until(lambda: ray.available_resources().get("CPU", 0), T, "both CPUs", until=(2.0).__eq__)


@pytest.mark.ember_only  # (Ray 2.60 waits for ever in all three cases)
def test_work_of_a_removed_group_fails_instead_of_waiting(ray: Any, tmp_path: Any) -> None:
    pg = ray.util.placement_group([{"CPU": 1}, {"CPU": 1}])
    ray.get(pg.ready(), timeout=T)
    started = tmp_path / "started"

    @ray.remote(num_cpus=1, max_retries=3)
    def long_task() -> None:
        started.touch()
        time.sleep(300)

    @ray.remote(num_cpus=1, max_restarts=-1)
    class Member:
        def ping(self) -> int:
            return 1

    member = Member.options(scheduling_strategy=in_group(pg, 0)).remote()
    assert ray.get(member.ping.remote(), timeout=T) == 1
    running = long_task.options(scheduling_strategy=in_group(pg, 1)).remote()
    wait_until(started.exists, T, "the task started")
    ray.util.remove_placement_group(pg)
    # The task is not retried into the group, nor the actor restarted: they fail for good.
    with pytest.raises(ray.exceptions.TaskPlacementGroupRemoved):
        ray.get(running, timeout=T)
    # (a call made while its process is being stopped may fail otherwise)
    error = lambda: raised(
        ray.exceptions.RayError, lambda: ray.get(member.ping.remote(), timeout=T)
    )  # noqa: E731
    wait_until(
        lambda: isinstance(error(), ray.exceptions.ActorPlacementGroupRemoved),
        T,
        "the actor dead for good",
    )
    # New work sent to the removed group is refused, not queued.
    with pytest.raises(ray.exceptions.TaskPlacementGroupRemoved):
        ray.get(long_task.options(scheduling_strategy=in_group(pg)).remote(), timeout=T)
    wait_until(
        lambda: ray.available_resources().get("CPU", 0), T, "the CPUs back", until=(2.0).__eq__
    )


def test_the_empty_group_stands_for_no_group(ray: Any) -> None:
    pg = ray.util.placement_group([{"CPU": 1}])
    assert not pg.is_empty
    ray.util.remove_placement_group(pg)
    empty = type(pg).empty()  # (ray.util.placement_group.PlacementGroup)
    assert empty.is_empty and empty.id.is_nil() and empty.id.hex() == "ff" * 18
    assert ray.get(empty.ready(), timeout=T) == empty

    @ray.remote(num_cpus=1)
    def group() -> str | None:
        return ray.get_runtime_context().get_placement_group_id()

    assert ray.get(group.options(scheduling_strategy=in_group(empty)).remote(), timeout=T) is None


def test_a_named_group_is_found_by_its_name(ray: Any) -> None:
    pg = ray.util.placement_group([{"CPU": 1}], name="trainers")
    assert ray.util.get_placement_group("trainers") == pg
    assert ray.util.placement_group_table(pg)["name"] == "trainers"
    with pytest.raises(ValueError, match="Failed to look up placement group"):
        ray.util.get_placement_group("nobody")
    ray.util.remove_placement_group(pg)


def _group_and_child(ray: Any) -> tuple[Any, Any]:
    """A ready group of 2 CPUs, and a task that says which group it runs in."""
    pg = ray.util.placement_group([{"CPU": 2}])
    ray.get(pg.ready(), timeout=T)

    @ray.remote(num_cpus=0)
    def child() -> str | None:
        return ray.get_runtime_context().get_placement_group_id()

    return pg, child


def test_child_tasks_are_captured_only_when_asked(ray: Any) -> None:
    pg, child = _group_and_child(ray)

    @ray.remote(num_cpus=1)
    def parent() -> tuple[Any, ...]:
        current = ray.util.get_current_placement_group()
        return (current.id.hex() if current else None, ray.get(child.remote()))

    assert ray.util.get_current_placement_group() is None  # (the driver)
    captured = parent.options(scheduling_strategy=in_group(pg, capture=True)).remote()
    assert ray.get(captured, timeout=T) == (pg.id.hex(), pg.id.hex())
    not_captured = parent.options(scheduling_strategy=in_group(pg)).remote()
    assert ray.get(not_captured, timeout=T) == (pg.id.hex(), None)
    ray.util.remove_placement_group(pg)


@pytest.mark.ember_only  # (Ember's internals: Ray asks its GCS for the bundles each time)
def test_captured_children_ask_the_control_store_for_the_bundles_once(ray: Any) -> None:
    pg, child = _group_and_child(ray)

    @ray.remote(num_cpus=1)
    def parent() -> list[str | None]:
        from ember._api import placement_group as api

        first = ray.get(child.remote())  # (this process learns the group's bundles)
        asked = []
        request = api._request
        api._request = lambda make: asked.append(make) or request(make)
        try:
            more = ray.get([child.remote() for _ in range(3)])
        finally:
            api._request = request
        return [first, *more, *(["asked the control store"] if asked else [])]

    captured = parent.options(scheduling_strategy=in_group(pg, capture=True)).remote()
    assert ray.get(captured, timeout=T) == [pg.id.hex()] * 4
    ray.util.remove_placement_group(pg)


# -- on a cluster (ember.testing.Cluster: real node processes) -----------------------------------


def _node_of_bundles(ray: Any, pg: Any) -> dict[int, str]:
    @ray.remote(num_cpus=0)
    def node() -> str:
        return str(ray.get_runtime_context().get_node_id())

    return {
        i: ray.get(node.options(scheduling_strategy=in_group(pg, i)).remote(), timeout=T)
        for i in range(pg.bundle_count)
    }


@pytest.mark.ember_only
def test_spread_strategies_place_bundles_on_different_nodes(make_cluster: Any) -> None:

    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 2})
    nodes = {n.node_id for n in cluster.nodes}
    strict = ember.util.placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    assert strict.wait(T)
    where = _node_of_bundles(ember, strict)
    assert set(where.values()) == nodes  # one bundle per node, and work runs there
    assert ember.util.placement_group_table(strict)["bundles_to_node_id"] == where

    @ember.remote(num_cpus=1)
    class Member:
        def node(self) -> str:
            return str(ember.get_runtime_context().get_node_id())

    members = [Member.options(scheduling_strategy=in_group(strict, i)).remote() for i in range(3)]
    assert ember.get([m.node.remote() for m in members], timeout=T) == [where[i] for i in range(3)]
    # The other CPU of the third node: SPREAD takes it, though it shares a node.
    spread = ember.util.placement_group([{"CPU": 1}], strategy="SPREAD")
    assert spread.wait(T)
    ember.util.remove_placement_group(strict)
    ember.util.remove_placement_group(spread)
    # Freed everywhere: now all four CPUs fit STRICT_PACK on no node, PACK across nodes.
    packed = ember.util.placement_group([{"CPU": 1}] * 4, strategy="PACK")
    assert packed.wait(T)
    assert len(set(_node_of_bundles(ember, packed).values())) == 3
    assert not ember.util.placement_group([{"CPU": 3}], strategy="STRICT_PACK").wait(0.5)


@pytest.mark.ember_only
def test_a_dead_node_s_bundles_are_rescheduled_elsewhere(make_cluster: Any) -> None:

    cluster = make_cluster(
        {"num_cpus": 1},
        {"num_cpus": 1, "resources": {"w": 1}},
        {"num_cpus": 1, "resources": {"w": 1}},
    )
    pg = ember.util.placement_group([{"w": 1}], strategy="STRICT_PACK")
    assert pg.wait(T)
    [first] = _node_of_bundles(ember, pg).values()
    cluster.remove_node(next(n for n in cluster.nodes if n.node_id == first))
    wait_until(
        lambda: ember.util.placement_group_table(pg),
        T,
        "the bundle reserved again on the other node",
        until=lambda e: e["state"] == "CREATED" and e["bundles_to_node_id"].get(0) != first,
    )
    [second] = _node_of_bundles(ember, pg).values()
    assert second != first


@pytest.mark.ember_only
def test_a_pending_group_is_reserved_once_a_node_with_room_joins(make_cluster: Any) -> None:

    cluster = make_cluster({"num_cpus": 1})
    pg = ember.util.placement_group([{"CPU": 2}], strategy="STRICT_PACK")
    assert not pg.wait(0.5)
    cluster.add_node(num_cpus=2)
    assert pg.wait(T)
    [node] = _node_of_bundles(ember, pg).values()
    assert node == cluster.nodes[-1].node_id


@pytest.mark.ember_only
def test_a_job_s_groups_end_with_it_unless_detached(make_cluster: Any) -> None:
    import os
    import subprocess
    import sys
    import textwrap

    cluster = make_cluster({"num_cpus": 2})
    driver = textwrap.dedent(
        """
        import sys, ember
        ember.init(address=sys.argv[1])
        mine = ember.util.placement_group([{"CPU": 1}], name="mine")
        kept = ember.util.placement_group([{"CPU": 1}], name="kept", lifetime="detached")
        assert mine.wait(30) and kept.wait(30)
        ember.shutdown()
        """
    )
    env = dict(os.environ, EMBER_TOKEN=cluster.token)
    out = subprocess.run(
        [sys.executable, "-c", driver, cluster.address],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr

    def states() -> dict[str, str]:
        table = ember.util.placement_group_table().values()
        return {e["name"]: e["state"] for e in table}

    wait_until(
        states, T, "the job's group removed", until={"mine": "REMOVED", "kept": "CREATED"}.__eq__
    )
    [kept] = [e for e in ember.util.placement_group_table().values() if e["name"] == "kept"]
    from ember.util.placement_group import PlacementGroup, PlacementGroupID

    ember.util.remove_placement_group(
        PlacementGroup(PlacementGroupID(bytes.fromhex(kept["placement_group_id"])))
    )
