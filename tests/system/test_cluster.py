"""Clusters of real node processes on this machine (``ember.testing.Cluster``): joining,
spilling work, pinning it with resources and strategies, objects crossing nodes, actors placed
elsewhere, node failures, and the token."""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
from typing import Any

import msgpack
import numpy as np
import pytest

import ember
from ember.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests._helpers import free_cpus, raised, wait_until

pytestmark = pytest.mark.ember_only

T = 30
# A short grace before a node frees what nobody refers to (1 s by default), for the tests
# that check something outlives it.
GRACE = 0.05


@ember.remote
def node_of(delay: float = 0.0, started: str | None = None) -> str:
    """The node it runs on, after ``delay`` s; it first leaves a file in ``started``, if given."""
    if started:
        open(os.path.join(started, f"{os.getpid()}-{time.time_ns()}"), "w").close()
    time.sleep(delay)
    return ember.get_runtime_context().get_node_id()


@ember.remote
def array(n: int, value: float = 1.0) -> np.ndarray:
    return np.full(n, value)


@ember.remote
def total(a: np.ndarray) -> tuple[float, str]:
    return float(a.sum()), ember.get_runtime_context().get_node_id()


@ember.remote
class Pinger:
    def ping(self) -> str:
        return "pong"


@ember.remote(resources={"w": 1}, max_restarts=1, max_task_retries=1)
class Where:
    """A restartable actor on a "w" node that says which node it runs on."""

    def node(self) -> str:
        return ember.get_runtime_context().get_node_id()


def _with_two_w_nodes(make_cluster: Any) -> Any:
    """A head and two nodes with resource "w" (where the lineage tests run their work)."""
    return make_cluster(
        {"num_cpus": 1},
        {"num_cpus": 1, "resources": {"w": 1}},
        {"num_cpus": 1, "resources": {"w": 1}},
    )


def _replace_the_w_nodes(cluster: Any) -> None:
    """Kill every node but the head (whichever held the work's objects), add a new "w" one."""
    for node in list(cluster.nodes[1:]):
        cluster.remove_node(node)
    cluster.add_node(num_cpus=1, resources={"w": 1})


def test_nodes_join_and_resources_add_up(make_cluster: Any) -> None:
    make_cluster({"num_cpus": 1}, {"num_cpus": 2, "resources": {"shard": 1}}, {"num_cpus": 1})
    nodes = ember.nodes()
    assert len(nodes) == 3 and all(n["Alive"] for n in nodes)
    res = ember.cluster_resources()
    assert res["CPU"] == 4 and res["shard"] == 1
    assert ember.available_resources()["CPU"] == 4
    # Each node's store size is a resource, as in Ray (ember.testing gives each 256 MiB).
    assert res["object_store_memory"] == 3 * (256 << 20)
    assert all(n["Resources"]["object_store_memory"] == 256 << 20 for n in nodes)


def test_work_spills_to_other_nodes_when_the_head_is_busy(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1})
    ran = ember.get([node_of.remote(0.5) for _ in range(3)])
    assert set(ran) == {n.node_id for n in cluster.nodes}


def test_custom_resources_pin_tasks_and_actors(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"shard": 1}})
    shard_node = cluster.nodes[1].node_id
    pinned = node_of.options(resources={"shard": 1})
    assert set(ember.get([pinned.remote() for _ in range(5)])) == {shard_node}

    @ember.remote(resources={"shard": 0.5})
    class Where:
        def __init__(self) -> None:
            self.calls = 0

        def node(self) -> tuple[int, str]:
            self.calls += 1
            return self.calls, ember.get_runtime_context().get_node_id()

    actor = Where.remote()
    assert ember.get([actor.node.remote() for _ in range(3)]) == [
        (i, shard_node) for i in (1, 2, 3)
    ]


def test_large_objects_move_between_nodes(make_cluster: Any) -> None:
    cluster = make_cluster(
        {"num_cpus": 1},
        {"num_cpus": 1, "resources": {"a": 1}},
        {"num_cpus": 1, "resources": {"b": 1}},
    )
    a_node, b_node = cluster.nodes[1].node_id, cluster.nodes[2].node_id
    made_on_a = array.options(resources={"a": 1}).remote(2_000_000, 2.0)
    # A task on another node reads it there; the driver reads it here.
    assert ember.get(total.options(resources={"b": 1}).remote(made_on_a)) == (4_000_000.0, b_node)
    value = ember.get(made_on_a)
    assert value.sum() == 4_000_000.0 and not value.flags.writeable
    # A put on the driver's node, read on another node.
    mine = ember.put(np.arange(1_000_000, dtype=np.float64))
    assert ember.get(total.options(resources={"a": 1}).remote(mine)) == (
        float(np.arange(1_000_000).sum()),
        a_node,
    )
    # A ref passed inside a list (borrowed, not a top-level argument) is fetched by the borrower.

    @ember.remote(resources={"b": 1})
    def borrow(refs: list[Any]) -> float:
        return float(ember.get(refs[0]).sum())

    assert ember.get(borrow.remote([made_on_a])) == 4_000_000.0


def test_a_pulled_object_larger_than_the_store_lands_on_disk(make_cluster: Any) -> None:
    cluster = make_cluster(
        {"num_cpus": 1, "object_store_memory": 8 << 20},
        {"num_cpus": 1, "resources": {"a": 1}},
    )
    ref = array.options(resources={"a": 1}).remote(2_500_000, 2.0)  # 20 MB
    assert ember.get(ref).sum() == 5_000_000.0  # pulled to the head, into its spill folder
    head = cluster.head.record
    assert not os.path.exists(os.path.join(head["shm_dir"], ref.hex()))
    assert os.path.exists(os.path.join(head["spill_dir"], ref.hex()))


def test_wait_without_fetch_local_does_not_pull(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"a": 1}})
    ref = array.options(resources={"a": 1}).remote(1_000_000)
    here = os.path.join(cluster.head.record["shm_dir"], ref.hex())
    ready, _ = ember.wait([ref], fetch_local=False, timeout=30)
    assert ready == [ref]
    assert not os.path.exists(here)
    assert ember.get(ref).sum() == 1_000_000
    assert os.path.exists(here)


def test_spread_uses_every_node(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 2}, {"num_cpus": 2}, {"num_cpus": 2})
    spread = node_of.options(scheduling_strategy="SPREAD")
    ran = ember.get([spread.remote(0.3) for _ in range(6)])
    assert set(ran) == {n.node_id for n in cluster.nodes}


def test_node_affinity(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1})
    target = cluster.nodes[2]
    hard = node_of.options(scheduling_strategy=NodeAffinitySchedulingStrategy(target.node_id))
    assert set(ember.get([hard.remote() for _ in range(4)])) == {target.node_id}
    cluster.remove_node(target)
    cluster_nodes = {n.node_id for n in cluster.nodes}
    gone = NodeAffinitySchedulingStrategy(target.node_id, soft=False)
    with pytest.raises(ember.exceptions.TaskUnschedulableError):
        ember.get(node_of.options(scheduling_strategy=gone).remote(), timeout=30)
    soft = NodeAffinitySchedulingStrategy(target.node_id, soft=True)
    assert ember.get(node_of.options(scheduling_strategy=soft).remote(), timeout=30) in (
        cluster_nodes
    )


def test_tasks_of_a_killed_node_are_retried_elsewhere(make_cluster: Any) -> None:
    cluster = make_cluster(
        {"num_cpus": 1},
        {"num_cpus": 2, "resources": {"w": 2}},
        {"num_cpus": 2, "resources": {"w": 2}},
    )
    victim, survivor = cluster.nodes[1], cluster.nodes[2]
    work = node_of.options(resources={"w": 1}, max_retries=3)
    refs = [work.remote(0.2) for _ in range(20)]
    ember.wait(refs, num_returns=2, timeout=30)
    cluster.remove_node(victim)
    ran = ember.get(refs, timeout=60)
    assert len(ran) == 20
    assert survivor.node_id in ran


def test_actor_restarts_on_another_node(make_cluster: Any) -> None:
    cluster = _with_two_w_nodes(make_cluster)

    actor = Where.remote()
    first = ember.get(actor.node.remote(), timeout=30)
    cluster.remove_node(next(n for n in cluster.nodes if n.node_id == first))
    second = ember.get(actor.node.remote(), timeout=60)
    assert second != first and second in {n.node_id for n in cluster.nodes}


@ember.remote
def scaled(a: np.ndarray, k: float) -> np.ndarray:
    return a * k


def test_lost_objects_are_rebuilt_or_reported(make_cluster: Any) -> None:
    cluster = _with_two_w_nodes(make_cluster)
    w = {"resources": {"w": 1}, "max_retries": 2}
    alone = array.options(**w).remote(500_000, 1.0)
    rebuildable = array.options(**w).remote(500_000, 3.0)
    doubled = scaled.options(**w).remote(rebuildable, 2.0)  # a chain of two
    once = array.options(resources={"w": 1}, max_retries=0).remote(500_000, 3.0)
    ember.wait([alone, rebuildable, doubled, once], num_returns=4, timeout=30)
    # All ran on "w" nodes.
    _replace_the_w_nodes(cluster)
    assert ember.get(alone, timeout=60).sum() == 500_000.0  # made again by get
    # A new task's lost argument is made again first, and so is that one's lost argument.
    assert ember.get(scaled.options(**w).remote(doubled, 0.5), timeout=60).sum() == 1_500_000.0
    assert ember.get(doubled, timeout=60).sum() == 3_000_000.0
    assert ember.get(rebuildable, timeout=60).sum() == 1_500_000.0
    with pytest.raises(ember.exceptions.ObjectLostError):
        ember.get(once, timeout=60)


def test_a_node_cut_off_is_declared_dead_and_its_work_redone(
    make_cluster: Any, tmp_path: Any
) -> None:
    cluster = make_cluster(
        {"num_cpus": 1},
        {"num_cpus": 1, "resources": {"w": 1}},
        {"num_cpus": 1, "resources": {"w": 1}},
        node_timeout=2.0,
    )
    victim, survivor = cluster.nodes[1], cluster.nodes[2]
    pinned = node_of.options(
        resources={"w": 1},
        max_retries=2,
        scheduling_strategy=NodeAffinitySchedulingStrategy(victim.node_id, soft=True),
    )
    assert ember.get(pinned.remote(), timeout=30) == victim.node_id
    slow = pinned.remote(1.0, str(tmp_path))  # (it takes 1 s there)
    wait_until(lambda: any(tmp_path.iterdir()), T, "the task to run on the victim")
    cut = time.monotonic()
    cluster.cut_off(victim)
    assert ember.get(slow, timeout=30) == survivor.node_id
    assert time.monotonic() - cut < 2.0 + 1.0 + 1.0  # timeout, then a 1 s task elsewhere
    alive = {n["node_id"].hex(): n["alive"] for n in cluster.list_nodes()}
    assert alive[victim.node_id] is False
    # Let back in, it learns that it was declared dead and stops.
    cluster.restore(victim)
    victim.node.proc.wait(timeout=10)


def test_connections_without_the_token_are_refused(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1})
    host, port = cluster.head.address[4:].rsplit(":", 1)
    for first in ([1, 0, None], [2, "not-the-token"]):  # a Reply first; a wrong Auth
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(msgpack.packb(first, use_bin_type=True))
            sock.settimeout(5)
            assert sock.recv(100) == b""  # closed without an answer
    log = os.path.join(cluster.head.record["session_dir"], "logs", "node.log")
    with open(log) as f:
        assert "did not present the cluster's token" in f.read()
    assert ember.get(node_of.remote()) == cluster.head.node_id  # the cluster is unharmed


def test_detached_actors_outlive_the_driver(make_cluster: Any) -> None:
    short = {"_system_config": {"ref_grace_s": GRACE}}
    cluster = make_cluster({"num_cpus": 1, **short}, {"num_cpus": 1, **short})

    @ember.remote
    class Box:
        def __init__(self) -> None:
            self.value = 0

        def add(self, n: int) -> int:
            self.value += n
            return self.value

    box = Box.options(name="box", lifetime="detached", namespace="keep").remote()
    assert ember.get(box.add.remote(1)) == 1
    ember.shutdown()
    assert len(cluster.list_nodes()) == 2  # the cluster did not stop with the driver
    # Nothing refers to it now: it must outlive the grace period after which unreferenced
    # objects and actors are let go (it once ended then). No event marks "not ended".
    time.sleep(5 * GRACE)
    cluster.connect(namespace="keep")
    again = ember.get_actor("box")
    assert ember.get(again.add.remote(2)) == 3
    ember.kill(again)


def test_control_store_restarts_with_redis(make_cluster: Any, redis_server: str) -> None:
    cluster = make_cluster(
        {"num_cpus": 1}, {"num_cpus": 1, "resources": {"w": 1}}, storage=redis_server
    )

    @ember.remote(resources={"w": 0.5})
    class Keeper:
        def __init__(self) -> None:
            self.items: list[int] = []

        def add(self, n: int) -> int:
            self.items.append(n)
            return len(self.items)

    keeper = Keeper.options(name="keeper", lifetime="detached").remote()
    assert ember.get(keeper.add.remote(1)) == 1
    running = [node_of.remote(0.3) for _ in range(4)]
    cluster.kill_control_store()
    # Work goes on without it: leases and calls do not pass through the control store.
    assert ember.get(keeper.add.remote(2)) == 2
    during = [node_of.options(resources={"w": 0.5}).remote() for _ in range(3)]
    cluster.restart_control_store()
    assert len(ember.get(running + during, timeout=60)) == 7
    # Its tables came back from Redis: the nodes, the named actor and the functions.
    assert {n["node_id"].hex() for n in cluster.list_nodes() if n["alive"]} == {
        n.node_id for n in cluster.nodes
    }
    assert ember.get(ember.get_actor("keeper").add.remote(3)) == 3

    @ember.remote
    def defined_after(x: int) -> int:
        return x * 2

    assert ember.get(defined_after.remote(21), timeout=60) == 42
    ember.kill(keeper)


def test_client_mode_runs_a_driver_on_no_node(make_cluster: Any, tmp_path: Any) -> None:
    import subprocess
    import sys
    import textwrap

    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"far": 1}})
    driver = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        import ember as ray

        ray.init(sys.argv[1])

        @ray.remote
        def double(x):
            return x * 2

        @ray.remote(resources={"far": 1})
        def ones(n):
            return np.ones(n)

        @ray.remote(resources={"far": 1})
        def total(a):
            return float(a.sum())

        @ray.remote
        class Greeter:
            def hi(self, who):
                return "hi " + who

        mine = ray.put(np.arange(2_000_000, dtype=float))
        print(json.dumps({
            "tasks": ray.get([double.remote(i) for i in range(5)]),
            "far_array": float(ray.get(ones.remote(3_000_000)).sum()),
            "put_read_far": ray.get(total.remote(mine)),
            "put_read_here": float(ray.get(mine)[-1]),
            "actor": ray.get(Greeter.remote().hi.remote("you")),
            "nodes": len(ray.nodes()),
        }))
        ray.shutdown()
        """
    )
    # No node of the cluster on "this host": a folder without records, the token by env.
    env = dict(os.environ, EMBER_TOKEN=cluster.token, TMPDIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", driver, f"ember://{cluster.address}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    import json

    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "tasks": [0, 2, 4, 6, 8],
        "far_array": 3_000_000.0,
        "put_read_far": float(np.arange(2_000_000).sum()),
        "put_read_here": 1_999_999.0,
        "actor": "hi you",
        "nodes": 2,
    }


def test_tasks_go_to_the_node_holding_their_large_arguments(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 2}, {"num_cpus": 2, "resources": {"a": 1}})
    a_node = cluster.nodes[1].node_id
    big = array.options(resources={"a": 1}).remote(1_000_000)  # 8 MB, stored on node a
    small = array.options(resources={"a": 1}).remote(10)  # inline: no preference
    ember.wait([big, small], num_returns=2, timeout=30)
    assert {ember.get(total.remote(big))[1] for _ in range(3)} == {a_node}
    assert ember.get(total.remote(small))[1] == cluster.head.node_id


def test_the_control_store_knows_the_connected_jobs(make_cluster: Any) -> None:
    from ember._runtime.launch import admin

    cluster = make_cluster({"num_cpus": 1})
    (job,) = admin.jobs(cluster.address, cluster.token)
    assert job["job_id"].hex() == ember.get_runtime_context().get_job_id()
    assert job["pid"] == os.getpid()
    ember.shutdown()
    wait_until(
        lambda: admin.jobs(cluster.address, cluster.token),
        10,
        "the job to be forgotten",
        until=lambda jobs: jobs == [],
    )


def test_nodes_stop_when_the_control_store_stays_unreachable(make_cluster: Any) -> None:
    """No node lingers for ever after its head's control store vanished."""
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1}, control_store_timeout=1.0)
    ember.shutdown()
    procs = [node.node.proc for node in cluster.nodes]
    cluster.kill_control_store()
    for proc in procs:
        assert proc.wait(timeout=15) == 0  # each stopped by itself, cleaning up


@ember.remote
def total_after(a: np.ndarray, folder: str, delay: float) -> float:
    open(os.path.join(folder, str(os.getpid())), "w").close()
    time.sleep(delay)
    return float(a.sum())


def test_a_task_running_on_a_node_that_dies_with_its_argument_is_redone(
    make_cluster: Any, tmp_path: Any
) -> None:
    """The task is retried elsewhere and finds its argument lost: the argument is made
    again (its lineage) and the task runs once more, instead of failing with ObjectLostError."""
    cluster = _with_two_w_nodes(make_cluster)
    w = {"resources": {"w": 1}, "max_retries": 2}
    argument = array.options(**w).remote(500_000, 2.0)
    ember.wait([argument], timeout=30)
    result = total_after.options(**w).remote(argument, str(tmp_path), 3.0)
    wait_until(lambda: any(tmp_path.iterdir()), 30, "the task to run")
    _replace_the_w_nodes(cluster)
    assert ember.get(result, timeout=60) == 1_000_000.0


@ember.remote
def plus_one(a: np.ndarray) -> np.ndarray:
    return a + 1


def test_a_long_lost_chain_is_rebuilt(make_cluster: Any) -> None:
    """Rebuilding walked a chain by recursion and failed past a few hundred links."""
    cluster = _with_two_w_nodes(make_cluster)
    links = 600
    step = plus_one.options(resources={"w": 1}, max_retries=1)
    ref = array.options(resources={"w": 1}, max_retries=1).remote(15_000, 0.0)  # 120 KB
    for _ in range(links):
        ref = step.remote(ref)
    ember.wait([ref], timeout=60)
    _replace_the_w_nodes(cluster)
    assert ember.get(ref, timeout=120)[0] == links


def test_kill_works_from_another_node(make_cluster: Any) -> None:
    """`kill` from a task on another node than the actor's own used to do nothing."""
    short = {"_system_config": {"ref_grace_s": GRACE}}
    make_cluster({"num_cpus": 1, **short}, {"num_cpus": 1, "resources": {"w": 1}, **short})

    @ember.remote(resources={"w": 1})
    def kill_it(handle: Any) -> bool:
        ember.kill(handle)
        # Its home is the driver's node: kill returns once the name is free there too.
        return raised(ValueError, lambda: ember.get_actor("pinger")) is not None

    pinger = Pinger.options(name="pinger").remote()
    assert ember.get(pinger.ping.remote(), timeout=30) == "pong"
    assert ember.get(kill_it.remote(pinger), timeout=30)
    wait_until(  # in the killer's process at once; in another one, once it hears of it
        lambda: raised(
            ember.exceptions.ActorDiedError, lambda: ember.get(pinger.ping.remote(), timeout=30)
        ),
        30,
        "calls to the killed actor to fail",
    )


def test_refs_kept_on_another_node_outlive_the_owner_s_own(make_cluster: Any) -> None:
    """An actor on another node keeps a ref to an object and a handle to an actor after the
    owner let go of its own: both stay alive (the owner's node used to count only holders on
    its own node, and freed the object and ended the actor)."""
    make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"w": 1}})

    @ember.remote(resources={"w": 1})
    class Keeper:
        def keep(self, refs: list[Any]) -> None:
            self.refs = refs

        def use(self) -> tuple[float, str]:
            array_ref, pinger = self.refs
            return float(ember.get(array_ref, timeout=30).sum()), ember.get(
                pinger.ping.remote(), timeout=30
            )

        def find(self, name: str) -> None:
            self.found = ember.get_actor(name)

        def use_found(self) -> str:
            return ember.get(self.found.ping.remote(), timeout=30)

    keeper = Keeper.remote()
    kept = [ember.put(np.ones(200_000)), Pinger.remote()]
    named = Pinger.options(name="found-by-name").remote()
    ember.get([keeper.keep.remote(kept), keeper.find.remote("found-by-name")], timeout=30)
    del kept, named
    gc.collect()
    # Past the grace after which an unreferenced object is freed; no event marks "not".
    time.sleep(5 * GRACE)
    assert ember.get(keeper.use.remote(), timeout=30) == (200_000.0, "pong")
    assert ember.get(keeper.use_found.remote(), timeout=30) == "pong"


def test_objects_made_and_read_on_another_node_are_freed_when_dropped(
    make_cluster: Any,
) -> None:
    """Objects a task stored on another node than their owner's, read there by another task,
    go once the owner drops them (that node used to count the owner among its own holders,
    and so held the owner's node, which held it: they stayed for ever)."""
    short = {"_system_config": {"ref_grace_s": GRACE}}
    cluster = make_cluster(
        {"num_cpus": 1, **short}, {"num_cpus": 1, "resources": {"w": 1}, **short}
    )
    from ember.util.state import list_objects

    made = [array.options(resources={"w": 0.1}).remote(200_000) for _ in range(4)]
    sums = ember.get([total.options(resources={"w": 0.1}).remote(a) for a in made], timeout=T)
    assert sums == [(200_000.0, cluster.nodes[1].node_id)] * 4
    ids = {ref.hex() for ref in made}
    rows = list_objects(filters=[("node_id", "=", cluster.nodes[1].node_id)], limit=1000)
    assert ids <= {r.object_id for r in rows}  # (stored there)
    del made
    gc.collect()
    wait_until(
        lambda: {r.object_id for r in list_objects(limit=1000)} & ids,
        10,
        "the dropped objects to be freed",
        until=lambda left: not left,
    )


def test_a_detached_actor_outlives_the_node_it_was_created_from(make_cluster: Any) -> None:
    """A detached actor made by a task on a node that then dies lives on (the head manages
    it); it used to die with that node, even where it ran elsewhere."""
    cluster = make_cluster(
        {"num_cpus": 1},
        {"num_cpus": 1, "resources": {"maker": 1}},
        {"num_cpus": 1, "resources": {"home": 1}},
    )

    @ember.remote(resources={"home": 0.5})
    class Box:
        def __init__(self, value: int) -> None:
            self.value = value

        def get(self) -> int:
            return self.value

    @ember.remote(num_cpus=0)
    def seven() -> int:
        time.sleep(0.3)
        return 7

    @ember.remote(resources={"maker": 1})
    def make() -> None:
        # Its argument is still being computed when the head registers it (ActorArgs follows).
        box = Box.options(name="box", namespace="keep", lifetime="detached").remote(seven.remote())
        assert ember.get(box.get.remote(), timeout=30) == 7

    ember.get(make.remote(), timeout=30)
    cluster.remove_node(cluster.nodes[1])  # the node of the task that made it
    box = ember.get_actor("box", namespace="keep")
    assert ember.get(box.get.remote(), timeout=30) == 7
    ember.kill(box)


def test_an_actor_whose_only_node_dies_waits_for_another(make_cluster: Any) -> None:
    """Placing it again chose the dying node again and again: the head recursed until it
    crashed. It now waits for a node with the resource, and restarts there."""
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"w": 1}})

    actor = Where.remote()
    first = ember.get(actor.node.remote(), timeout=30)
    cluster.remove_node(cluster.nodes[1])
    replacement = cluster.add_node(num_cpus=1, resources={"w": 1})
    assert ember.get(actor.node.remote(), timeout=30) == replacement.node_id != first
    assert cluster.head is not None and cluster.head.node.proc.poll() is None


def test_an_actor_ends_with_the_node_that_manages_it(make_cluster: Any) -> None:
    """A task on one node makes an actor that runs on another; the task's node dies. The actor
    shares its owner's fate (as in Ray): it used to live on, unmanaged."""
    cluster = make_cluster(
        {"num_cpus": 1},
        {"num_cpus": 1, "resources": {"maker": 1}},
        {"num_cpus": 1, "resources": {"runs": 1}},
    )

    @ember.remote(resources={"maker": 1}, max_retries=0)
    def make() -> None:
        child = Pinger.options(name="child", namespace="fate", resources={"runs": 1}).remote()
        assert ember.get(child.ping.remote(), timeout=30) == "pong"
        time.sleep(60)

    making = make.remote()

    def named_child() -> Any:
        try:
            return ember.get_actor("child", namespace="fate")
        except ValueError:
            return None

    child = wait_until(named_child, 30, "the actor named child", until=lambda h: h is not None)
    assert ember.get(child.ping.remote(), timeout=30) == "pong"
    cluster.remove_node(cluster.nodes[1])
    with pytest.raises(ember.exceptions.RayError):
        ember.get(making, timeout=30)
    wait_until(  # its worker is ended once its manager is known dead
        lambda: raised(
            ember.exceptions.ActorDiedError, lambda: ember.get(child.ping.remote(), timeout=30)
        ),
        15,
        "calls to the orphaned actor to fail",
    )


def test_a_get_waiting_while_its_objects_are_rebuilt_waits_for_them(make_cluster: Any) -> None:
    """A get that had found its objects ready raised GetTimeoutError at once (long before
    its timeout) when another thread's task made them be rebuilt meanwhile."""
    cluster = make_cluster(
        {"num_cpus": 1},
        {"num_cpus": 1, "resources": {"b": 1}},
        {"num_cpus": 1, "resources": {"c": 1}},
    )
    made = [
        array.options(resources={"c": 0.1}, max_retries=2).remote(2_000_000, float(i))
        for i in range(3)
    ]
    ember.wait(made, num_returns=3, timeout=30, fetch_local=False)
    readers = [total.options(resources={"b": 0.2}).remote(m) for m in made]
    got: dict[str, Any] = {}

    def getter() -> None:
        try:
            got["values"] = [float(v[0]) for v in ember.get(made, timeout=40)]
        except Exception as e:  # reported below
            got["error"] = e

    thread = threading.Thread(target=getter)
    thread.start()
    cluster.remove_node(cluster.nodes[2])
    cluster.add_node(num_cpus=1, resources={"c": 1})
    assert [s for s, _ in ember.get(readers, timeout=40)] == [i * 2_000_000.0 for i in range(3)]
    thread.join(45)
    assert got == {"values": [0.0, 1.0, 2.0]}


def test_the_api_says_at_once_that_this_process_s_node_died(make_cluster: Any) -> None:
    """Asked after the driver's node died, cluster_resources() and the like waited 30 s and
    raised a builtin TimeoutError."""
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    cluster.remove_node(cluster.head)
    start = time.monotonic()
    for call in (ember.cluster_resources, ember.available_resources, ember.nodes):
        with pytest.raises(ember.exceptions.LocalRayletDiedError):
            call()
    assert time.monotonic() - start < 10


def test_objects_lost_mid_get_are_rebuilt_within_their_retries(make_cluster: Any) -> None:
    """The node holding them dies just as the get starts. A rebuilt task used to be pushed
    to the leases still held on that node (not yet known dead), and each loss used a retry:
    about one run in six raised WorkerCrashedError despite max_retries=2."""
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"c": 1}})
    for round_ in range(3):
        made = [
            array.options(resources={"c": 0.1}, max_retries=2).remote(6_000_000, float(i))
            for i in range(3)
        ]
        ember.wait(made, num_returns=3, timeout=30, fetch_local=False)
        killer = threading.Timer(0.01, cluster.remove_node, [cluster.nodes[1]])
        killer.start()
        replacement = threading.Timer(0.3, cluster.add_node, kwargs={"resources": {"c": 1}})
        replacement.start()
        try:
            assert [float(v[0]) for v in ember.get(made, timeout=60)] == [0.0, 1.0, 2.0], round_
        finally:
            killer.join()
            replacement.join()
        del made


def test_a_new_actor_s_handle_works_at_once_on_another_node(make_cluster: Any) -> None:
    """A handle that reaches another node before its actor is registered with the control
    store: that node's lookup used to say "unknown or gone", and the call failed with
    ActorDiedError."""
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    other = cluster.nodes[1].node_id

    @ember.remote(scheduling_strategy=NodeAffinitySchedulingStrategy(other, soft=False))
    def call(pinger: Any) -> str:
        return ember.get(pinger.ping.remote(), timeout=T)

    for _ in range(50):  # (the leases on the other node stay warm: the push is immediate)
        pinger = Pinger.options(num_cpus=0).remote()
        assert ember.get(call.remote(pinger), timeout=T) == "pong"


def test_free_resources_of_another_node_are_reported_within_a_heartbeat(
    make_cluster: Any,
) -> None:
    """A node reports a change of its free resources soon (not at its next heartbeat only),
    and this driver's idle leases there go back when it asks: the CPUs its tasks used there
    showed as busy for more than a second."""
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 2})
    other = NodeAffinitySchedulingStrategy(cluster.nodes[1].node_id, soft=False)
    # (long enough for a heartbeat to see them run: 0.2 s apart in ember.testing)
    ember.get([node_of.options(scheduling_strategy=other).remote(0.3) for _ in range(2)])
    wait_until(free_cpus, 0.9, "the other node's CPUs to be free", until=lambda n: n == 3)
