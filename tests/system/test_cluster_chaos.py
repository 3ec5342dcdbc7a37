"""Chaos on a cluster of real nodes (``ember.testing.Cluster``): a node is killed (SIGKILL)
or cut off (SIGSTOP) in the middle of a large job, and every result must still be right.

Each test waits on results (``wait``/``get`` with timeouts), never on fixed sleeps, and stays
well under 30 s on 2 cores. The ``make_cluster`` fixture (tests/system/conftest.py) shuts the
cluster down afterwards and fails if any process it started is left.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import pytest

import ember
from ember.testing import Cluster

pytestmark = pytest.mark.ember_only

T = 30  # the bound on every wait/get: a bug fails the test instead of hanging it
N_TASKS = 1000


def expected(i: int) -> int:
    return i * i + 7


@ember.remote(max_retries=3, scheduling_strategy="SPREAD")
def compute(i: int) -> tuple[int, str]:
    """A tiny task with a computed value (and where it ran); it lasts a few milliseconds,
    so that the job is still running when a node goes."""
    time.sleep(0.003)
    return expected(i), ember.get_runtime_context().get_node_id()


def _free_cpus(cluster: Cluster) -> dict[str, float]:
    return {n["node_id"].hex()[:12]: n["available"].get("CPU", 0) for n in cluster.list_nodes()}


def _job_with_a_node_lost(cluster: Cluster, lose: Any) -> tuple[Counter[str], int]:
    """1,000 tiny tasks spread over the head and two nodes; once some results are in
    (some of them from the victim), ``lose(victim)``; then every result must be right.
    Returns where the results came from and how many were in when the victim was lost."""
    victim = cluster.nodes[1]
    refs = [compute.remote(i) for i in range(N_TASKS)]
    ready, _ = ember.wait(refs, num_returns=50, timeout=T)
    assert len(ready) == 50, (
        f"only {len(ready)} of {N_TASKS} tasks done after {T} s; free CPUs: {_free_cpus(cluster)}"
    )
    while victim.node_id not in {node for _, node in ember.get(ready, timeout=T)}:
        assert len(ready) < N_TASKS, "no task ran on the victim"
        ready, _ = ember.wait(refs, num_returns=min(N_TASKS, len(ready) + 20), timeout=T)
    lose(victim)
    in_at_loss = len(ember.wait(refs, num_returns=N_TASKS, timeout=0)[0])
    results = ember.get(refs, timeout=T)
    assert [value for value, _ in results] == [expected(i) for i in range(N_TASKS)]
    return Counter(node for _, node in results), in_at_loss


def test_a_node_killed_during_a_large_job(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1})
    head, victim, survivor = cluster.nodes
    where, in_at_kill = _job_with_a_node_lost(cluster, cluster.remove_node)
    assert in_at_kill < N_TASKS, "the job was over before the node died"
    assert where[head.node_id] and where[survivor.node_id] and where[victim.node_id]
    # The cluster goes on without it.
    assert {n["node_id"].hex() for n in cluster.list_nodes() if n["alive"]} == {
        head.node_id,
        survivor.node_id,
    }
    after = ember.get([compute.remote(i) for i in range(30)], timeout=T)
    assert [value for value, _ in after] == [expected(i) for i in range(30)]
    assert {node for _, node in after} <= {head.node_id, survivor.node_id}


def test_a_node_cut_off_during_a_large_job(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1}, node_timeout=2.0)
    head, victim, survivor = cluster.nodes
    started = time.monotonic()
    where, in_at_cut = _job_with_a_node_lost(cluster, cluster.cut_off)
    assert in_at_cut < N_TASKS, "the job was over before the node was cut off"
    assert where[head.node_id] and where[survivor.node_id]
    alive = {n["node_id"].hex(): n["alive"] for n in cluster.list_nodes()}
    assert alive == {head.node_id: True, victim.node_id: False, survivor.node_id: True}
    assert time.monotonic() - started < T
    # Let back in, it learns that it was declared dead and stops.
    cluster.restore(victim)
    victim.node.proc.wait(timeout=T)


def test_actors_of_a_killed_node_restart_on_the_survivor(make_cluster: Any) -> None:
    cluster = make_cluster(
        {"num_cpus": 1},
        {"num_cpus": 1, "resources": {"w": 4}},
        {"num_cpus": 1, "resources": {"w": 4}},
    )
    w_nodes = {n.node_id for n in cluster.nodes[1:]}

    @ember.remote(resources={"w": 1}, num_cpus=0, max_restarts=2, max_task_retries=3)
    class Scaler:
        def __init__(self, k: int) -> None:
            self.k = k

        def scale(self, i: int) -> int:  # idempotent: a pure function of the argument
            time.sleep(0.002)
            return self.k * i + 1

        def where(self) -> tuple[str, int]:
            return ember.get_runtime_context().get_node_id(), os.getpid()

    actors = [Scaler.remote(k) for k in range(1, 5)]
    first = ember.get([a.where.remote() for a in actors], timeout=T)
    homes = [node for node, _ in first]
    assert set(homes) == w_nodes, f"the actors should be on both w nodes, are on {homes}"
    victim = next(n for n in cluster.nodes if n.node_id == homes[0])
    (survivor,) = [n for n in cluster.nodes[1:] if n is not victim]

    calls = [(k, i, a.scale.remote(i)) for i in range(150) for k, a in enumerate(actors, 1)]
    refs = [ref for _, _, ref in calls]
    ready, _ = ember.wait(refs, num_returns=100, timeout=T)
    assert len(ready) == 100
    cluster.remove_node(victim)
    in_at_kill = len(ember.wait(refs, num_returns=len(refs), timeout=0)[0])
    assert in_at_kill < len(refs), "every call was done before the node died"
    assert ember.get(refs, timeout=T) == [k * i + 1 for k, i, _ in calls]

    now = ember.get([a.where.remote() for a in actors], timeout=T)
    assert {node for node, _ in now} == {survivor.node_id}
    for (home, pid), (_, new_pid) in zip(first, now, strict=True):
        if home == victim.node_id:
            assert new_pid != pid  # a new incarnation...
        else:
            assert new_pid == pid  # ...only for the actors that were on the dead node
    assert ember.get([a.scale.remote(10) for a in actors], timeout=T) == [
        k * 10 + 1 for k in range(1, 5)
    ]
