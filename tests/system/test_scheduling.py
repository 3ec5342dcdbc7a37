"""Where and when tasks run: no task waits behind another while a worker is free, on one node
or across a cluster."""

from __future__ import annotations

import os
from typing import Any

import pytest

import ember

T = 30


@ember.remote
def hold_cpu(gate: Any) -> str:
    """Hold this task's CPU (no get, so it is not lent out) until the gate opens."""
    gate.wait(T)
    return ember.get_runtime_context().get_node_id()


@ember.remote
def short(i: int) -> int:
    return i


def test_tasks_behind_a_long_one_run_on_the_first_free_worker(ray: Any, gate: Any) -> None:
    """A short task queued on the lease of a long one (the node was saturated, so the lease
    carried a second task) used to wait until the long one ended, though the other worker
    was free long before."""
    long = hold_cpu.remote(gate)
    shorts = [short.remote(i) for i in range(3)]
    try:
        assert ray.get(shorts, timeout=T) == [0, 1, 2]  # while the long one still runs
    finally:
        gate.open()
    ray.get(long, timeout=T)


def _gates(gate: Any, n: int) -> list[Any]:
    """``n`` gates like the ``gate`` fixture's, each opened on its own."""
    return [type(gate)(f"{gate.path}-{i}") for i in range(n)]


@pytest.mark.ember_only
def test_each_freed_cpu_of_a_cluster_takes_the_next_task(make_cluster: Any, gate: Any) -> None:
    """Six tasks on three 1-CPU nodes, ended one at a time: each CPU that frees up starts the
    next task at once, whichever node it is on (one node used to run three in a row, the
    third queued behind another, while a freed node sat idle)."""
    make_cluster({"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1})
    gates = _gates(gate, 6)
    refs = [hold_cpu.remote(g) for g in gates]
    try:
        for g in gates[:3]:
            g.wait_arrivals(1, timeout=T)  # three run at once
        for i in range(3):
            gates[i].open()  # the first ends: the next one starts, the other two still run
            assert ember.get(refs[i], timeout=T)
            gates[i + 3].wait_arrivals(1, timeout=T)
    finally:
        for g in gates:
            g.open()
    assert len(set(ember.get(refs, timeout=T))) == 3


@pytest.mark.ember_only
def test_tasks_that_must_overlap_run_on_different_nodes(
    make_cluster: Any, barrier_cls: Any
) -> None:
    """Two 1-CPU tasks that wait for each other (a barrier, through get) on three 1-CPU
    nodes: each runs on a node of its own, not the second beside the first on the CPU the
    first lent while it waited."""
    make_cluster({"num_cpus": 1}, {"num_cpus": 1}, {"num_cpus": 1})
    barrier = barrier_cls.remote()

    @ember.remote
    def meet(barrier: Any) -> tuple[str, int]:
        ember.get(barrier.arrive.remote(2), timeout=T)
        return ember.get_runtime_context().get_node_id(), os.getpid()

    first, second = ember.get([meet.remote(barrier), meet.remote(barrier)], timeout=T)
    assert first[0] != second[0]
