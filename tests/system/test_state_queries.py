"""The state query path: driver or outside process -> control store -> nodes -> merged."""

import os
import signal

import pytest

from ember._api.state import query
from ember._protocol import messages as m
from ember._runtime.launch import admin
from ember._transport.rpc import RemoteError

pytestmark = pytest.mark.ember_only  # (Ember's own plumbing; the public API is tested on Ray)


def test_a_driver_asks_through_its_runtime_and_an_outside_process_by_address(make_cluster):
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    ids = {r["node_id"] for r in query("nodes").rows}
    assert len(ids) == 2
    alive = query("nodes", filters=[("state", "=", "alive")], limit=1)
    assert len(alive.rows) == 1 and alive.total == 2
    value = admin.query(
        cluster.address, cluster.token, lambda rid: m.StateQuery(rid=rid, kind="jobs", limit=10)
    )
    assert value["warnings"] == [] and len(value["rows"]) == 1  # this driver's job
    # A kind that no node keeps is refused by every node: an error, not an empty answer.
    with pytest.raises(RemoteError, match="no state of kind 'nope'"):
        query("nope")


def test_bad_arguments_are_refused_before_anything_is_sent(ray):
    with pytest.raises(ValueError, match="limit must be an int from 0"):
        query("nodes", limit=-1)
    with pytest.raises(ValueError, match="unsupported predicate"):
        query("nodes", filters=[("alive", "is", True)])
    with pytest.raises(ValueError, match="must be a str, bool, int"):
        query("nodes", filters=[("state", "=", object())])
    with pytest.raises(ValueError, match="limit must be an int from 0"):
        query("nodes", limit=2**70)
    assert query("nodes").rows  # (the runtime still answers: nothing was left waiting)


def test_a_node_too_slow_for_the_timeout_is_named_and_the_rest_answered(make_cluster):
    """The store waits for the nodes only as long as the asker does (less a margin), then
    answers what it has and names the nodes that did not answer."""
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1}, node_timeout=60)
    stopped = cluster.nodes[1]
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        answer = query("workers", timeout=2)
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    (warning,) = answer.warnings
    assert stopped.node_id in warning and cluster.nodes[0].node_id not in warning
    assert answer.rows and {r["node_id"] for r in answer.rows} == {cluster.nodes[0].node_id}
    # An asker that times out itself says the cluster was too slow, naming the timeout.
    store = cluster.control.proc.pid
    os.kill(store, signal.SIGSTOP)
    try:
        with pytest.raises(TimeoutError, match="too slowly.*1 s"):
            query("nodes", timeout=1)
    finally:
        os.kill(store, signal.SIGCONT)
