"""Tests for ember._core.scheduler.LeaseScheduler, driven with plain events and values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ember._core.resources import NodeResources, Shape, shape_of
from ember._core.scheduler import (
    Action,
    Grant,
    LeaseScheduler,
    Refuse,
    Revoke,
    StartWorker,
    StopWorker,
    WarnInfeasible,
    WarnStalled,
    _Lease,
)
from ember._protocol.messages import ErrorKind

CPU1 = shape_of({"CPU": 1})
CPU2 = shape_of({"CPU": 2})
GPU1 = shape_of({"CPU": 1, "GPU": 1})


def make(total: Mapping[str, float] | None = None, max_starting: int = 2) -> LeaseScheduler:
    return LeaseScheduler(NodeResources(total or {"CPU": 2}), max_starting=max_starting)


def lease(s: LeaseScheduler, lease_id: int) -> _Lease | None:
    """The scheduler's own record of a lease (the node has no access to it)."""
    return s._leases.get(lease_id)


def grants(actions: Sequence[Action]) -> list[Grant]:
    return [a for a in actions if isinstance(a, Grant)]


def starts(actions: Sequence[Action]) -> int:
    return sum(isinstance(a, StartWorker) for a in actions)


def revokes(actions: Sequence[Action]) -> list[Revoke]:
    return [a for a in actions if isinstance(a, Revoke)]


def warnings_(actions: Sequence[Action]) -> list[WarnInfeasible]:
    return [a for a in actions if isinstance(a, WarnInfeasible)]


def with_workers(s: LeaseScheduler, *names: bytes) -> LeaseScheduler:
    for name in names:
        assert s.worker_started(name) == []
    return s


def grant_one(
    s: LeaseScheduler,
    client: str,
    rid: int,
    shape: Shape = CPU1,
    what: str = "",
    dedicated: bool = False,
) -> Grant:
    out = grants(s.request(client, rid, shape, what, dedicated=dedicated))
    assert len(out) == 1, out
    return out[0]


# ----------------------------------------------------------------------------- starting workers


def test_request_without_worker_starts_one_then_grants() -> None:
    s = make()
    actions = s.request("a", 1, CPU1, "f()")
    assert actions == [StartWorker()]
    assert s.pending() == [("f()", True)]
    actions = s.worker_started(b"w1")
    assert actions == [Grant("a", 1, 1, b"w1", ())]
    assert s.pending() == []
    record = lease(s, 1)
    assert record is not None and record.client == "a" and record.worker_id == b"w1"
    assert s.resources.available["CPU"] == 10_000


def test_resources_are_not_held_while_waiting_for_a_worker() -> None:
    s = make({"CPU": 1})
    assert s.request("a", 1, CPU1) == [StartWorker()]
    assert s.resources.available["CPU"] == 10_000


def test_worker_starts_are_bounded_by_max_starting() -> None:
    s = make({"CPU": 8}, max_starting=2)
    started = 0
    for rid in range(6):
        started += starts(s.request("a", rid, CPU1))
    assert started == 2
    # Each worker that comes up takes one request and lets one more start.
    outstanding = 2
    granted = 0
    worker = 0
    while granted < 6:
        worker += 1
        actions = s.worker_started(b"w%d" % worker)
        outstanding -= 1
        granted += len(grants(actions))
        outstanding += starts(actions)
        assert 0 <= outstanding <= 2
    assert worker == 6
    assert outstanding == 0


def test_max_starting_is_at_least_one() -> None:
    s = make(max_starting=0)
    assert s.max_starting == 1
    assert s.request("a", 1, CPU1) == [StartWorker()]
    assert s.request("a", 2, CPU1) == []


def test_failed_worker_start_starts_another() -> None:
    s = make(max_starting=1)
    assert s.request("a", 1, CPU1) == [StartWorker()]
    assert s.worker_start_failed("ImportError") == [StartWorker()]
    assert s.worker_started(b"w1") == [Grant("a", 1, 1, b"w1", ())]


def test_prestarted_workers_count_as_starting() -> None:
    s = make({"CPU": 4}, max_starting=2)
    assert s.prestart(2) == [StartWorker(), StartWorker()]
    assert s.request("a", 1, CPU1) == []  # two are on their way already
    assert s.worker_started(b"w1") == [Grant("a", 1, 1, b"w1", ())]


def test_giving_up_on_worker_starts_refuses_every_queued_request_and_starts_none() -> None:
    """The node used to drop the actions of its last worker_start_failed() and drain the
    queue itself: every queued request must come back as an action instead."""
    s = make({"CPU": 2}, max_starting=1)
    assert s.request("a", 1, CPU1) == [StartWorker()]
    assert s.request(("actor", b"x"), 0, CPU1, dedicated=True) == []
    assert s.worker_start_failed("crash 1") == [StartWorker()]
    assert s.worker_start_failed("crash 2") == [StartWorker()]
    out = s.worker_start_failed("the log says why")
    why = "Ember workers fail to start on this node. The last one's log says:\nthe log says why"
    assert out == [
        Refuse("a", 1, why, ErrorKind.WORKER_START_FAILED),
        Refuse(("actor", b"x"), 0, why, ErrorKind.WORKER_START_FAILED),
    ]
    assert s.pending() == []
    # A worker that starts later still serves new requests.
    assert s.request("a", 2, CPU1) == [StartWorker()]
    assert s.worker_started(b"w1") == [Grant("a", 2, 1, b"w1", ())]


def test_giving_up_refuses_only_what_is_still_queued() -> None:
    s = with_workers(make({"CPU": 2}, max_starting=1), b"w1")
    grant_one(s, "a", 1, dedicated=True)
    assert s.request("b", 2, CPU1) == [StartWorker()]
    assert s.request("c", 3, CPU1) == []
    assert s.return_lease(1) == [Grant("b", 2, 2, b"w1", ())]
    assert s.worker_start_failed("no workers") == [StartWorker()]
    assert s.worker_start_failed("no workers") == [StartWorker()]
    (refused,) = s.worker_start_failed("no workers")
    assert isinstance(refused, Refuse) and "no workers" in refused.message
    assert (refused.client, refused.rid, refused.error) == ("c", 3, ErrorKind.WORKER_START_FAILED)


def test_request_that_does_not_fit_starts_no_worker() -> None:
    s = with_workers(make({"CPU": 1}), b"w1")
    grant_one(s, "a", 1)
    assert s.request("a", 2, CPU1) == []


def test_idle_worker_is_reused_without_starting_one() -> None:
    s = with_workers(make(), b"w1")
    g = grant_one(s, "a", 1)
    assert g.worker_id == b"w1"
    assert s.return_lease(g.lease_id) == []
    assert s.idle_workers() == [b"w1"]
    assert s.request("a", 2, CPU1) == [Grant("a", 2, 2, b"w1", ())]


# ----------------------------------------------------------------------------- granting


def test_grants_follow_request_order_as_resources_allow() -> None:
    s = with_workers(make({"CPU": 2}), b"w1", b"w2", b"w3", b"w4")
    g1 = grant_one(s, "a", 1)
    g2 = grant_one(s, "b", 2)
    assert g1.worker_id != g2.worker_id
    assert grants(s.request("c", 3, CPU1)) == []
    assert grants(s.request("d", 4, CPU1)) == []
    out = grants(s.return_lease(g1.lease_id))
    assert [(g.client, g.rid) for g in out] == [("c", 3)]
    out = grants(s.return_lease(g2.lease_id))
    assert [(g.client, g.rid) for g in out] == [("d", 4)]


def test_several_requests_granted_at_once_in_order() -> None:
    s = make({"CPU": 3})
    for rid in (1, 2, 3):
        s.request("a", rid, CPU1)
    assert grants(s.worker_started(b"w1")) == [Grant("a", 1, 1, b"w1", ())]
    assert grants(s.worker_started(b"w2")) == [Grant("a", 2, 2, b"w2", ())]
    assert s.worker_started(b"w3") == [Grant("a", 3, 3, b"w3", (), saturated=True)]


def test_request_that_does_not_fit_waits_for_a_returned_lease() -> None:
    s = with_workers(make({"CPU": 2}), b"w1", b"w2")
    g = grant_one(s, "a", 1, CPU2)
    assert grants(s.request("a", 2, CPU1)) == []
    assert s.pending() == [("", True)]
    out = grants(s.return_lease(g.lease_id))
    assert [(x.client, x.rid) for x in out] == [("a", 2)]
    assert s.pending() == []


def test_smaller_request_behind_a_waiting_one_is_granted() -> None:
    s = with_workers(make({"CPU": 2}), b"w1", b"w2")
    grant_one(s, "a", 1)
    assert grants(s.request("b", 2, CPU2)) == []  # needs both CPUs
    out = grants(s.request("c", 3, CPU1))  # fits in what is left
    assert [(x.client, x.rid) for x in out] == [("c", 3)]


def test_lease_ids_are_unique() -> None:
    s = with_workers(make({"CPU": 1}), b"w1")
    seen = set()
    for rid in range(5):
        g = grant_one(s, "a", rid)
        seen.add(g.lease_id)
        s.return_lease(g.lease_id)
    assert len(seen) == 5


def test_return_of_unknown_or_returned_lease_is_ignored() -> None:
    s = with_workers(make(), b"w1")
    g = grant_one(s, "a", 1)
    assert s.return_lease(g.lease_id) == []
    assert s.return_lease(g.lease_id) == []
    assert s.return_lease(12345) == []
    assert s.resources.available == s.resources.total


def test_gpu_grant_carries_gpu_ids() -> None:
    s = with_workers(make({"CPU": 4, "GPU": 2}), b"w1", b"w2", b"w3")
    g1 = grant_one(s, "a", 1, GPU1)
    g2 = grant_one(s, "a", 2, GPU1)
    assert {g1.gpu_ids, g2.gpu_ids} == {(0,), (1,)}
    g3 = grant_one(s, "a", 3, CPU1)
    assert g3.gpu_ids == ()
    assert grants(s.request("a", 4, GPU1)) == []
    out = grants(s.return_lease(g1.lease_id))
    assert len(out) == 1 and out[0].gpu_ids == g1.gpu_ids


def test_fractional_gpu_leases_share_a_device_but_not_a_worker() -> None:
    s = with_workers(make({"CPU": 4, "GPU": 1}), b"w1", b"w2")
    half = shape_of({"GPU": 0.5})
    g1 = grant_one(s, "a", 1, half)
    g2 = grant_one(s, "a", 2, half)
    assert g1.gpu_ids == g2.gpu_ids == (0,)
    assert g1.worker_id != g2.worker_id


# ----------------------------------------------------------------------------- infeasible


def test_infeasible_request_warns_once_and_stays_queued() -> None:
    s = with_workers(make({"CPU": 2}), b"w1")
    actions = s.request("a", 7, shape_of({"CPU": 1, "GPU": 1}), "train()")
    assert len(actions) == 1
    (warn,) = warnings_(actions)
    assert warn.client == "a" and warn.rid == 7
    assert "train()" in warn.message
    assert "GPU (needs 1, node has 0)" in warn.message
    assert s.pending() == [("train()", False)]
    # Nothing that happens later warns again, starts a worker for it or grants it.
    later: list[Action] = []
    g = grant_one(s, "b", 1)
    later += s.return_lease(g.lease_id)
    later += s.worker_started(b"w2")
    later += s.request("c", 2, shape_of({"CPU": 4}))  # another infeasible one
    later += s.worker_died(b"w2")
    later += s.cancel_request("zzz", 0)
    assert [w.rid for w in warnings_(later)] == [2]
    assert starts(later) == 0
    assert all(g.rid != 7 for g in grants(later))
    assert ("train()", False) in s.pending()


def test_infeasible_request_message_mentions_default_name() -> None:
    s = make({"CPU": 1})
    (warn,) = warnings_(s.request("a", 1, shape_of({"CPU": 2})))
    assert warn.message.startswith("a task requires {CPU: 2}, but this node lacks CPU")
    assert "CPU (needs 2, node has 1)" in warn.message


def test_infeasible_request_can_be_cancelled() -> None:
    s = make({"CPU": 1})
    s.request("a", 1, shape_of({"GPU": 1}))
    assert s.cancel_request("a", 1) == []
    assert s.pending() == []


def test_infeasible_request_causes_no_revocation() -> None:
    s = with_workers(make({"CPU": 1}), b"w1")
    grant_one(s, "a", 1)
    actions = s.request("b", 1, shape_of({"GPU": 1}))
    assert revokes(actions) == []


# ----------------------------------------------------------------------------- stalled by actors


def stalled(actions: Sequence[Action]) -> list[WarnStalled]:
    return [a for a in actions if isinstance(a, WarnStalled)]


def test_work_waiting_behind_actors_warns_once_per_shape_after_the_delay() -> None:
    s = with_workers(LeaseScheduler(NodeResources({"CPU": 2}), stalled_seconds=5.0), b"w1", b"w2")
    grant_one(s, "a", 1, dedicated=True)
    grant_one(s, "a", 2, dedicated=True)
    s.request("b", 3, CPU1, "f()")
    s.request("c", 4, CPU1, "g()")  # the same shape: one warning for both
    s.request("d", 5, CPU1, "Actor.__init__", dedicated=True)
    assert s.stalled_check(100.0) == []
    assert s.stalled_check(104.0) == []
    (warn,) = stalled(s.stalled_check(105.0))
    assert (warn.client, warn.rid) == ("b", 3)
    assert warn.message.startswith(
        "The following resource request cannot be scheduled right now: {'CPU': 1.0}. "
        "This is likely due to all cluster resources being claimed by actors."
    )
    assert s.stalled_check(200.0) == []  # said once
    s.request("e", 6, CPU2)  # a new shape, stuck as well: its own warning
    assert [w.rid for w in stalled(s.stalled_check(201.0))] == [6]


def test_a_running_task_means_no_stall() -> None:
    s = with_workers(LeaseScheduler(NodeResources({"CPU": 2}), stalled_seconds=5.0), b"w1", b"w2")
    grant_one(s, "a", 1, dedicated=True)
    task = grant_one(s, "a", 2)
    s.request("b", 3, CPU1)
    assert s.stalled_check(100.0) == [] and s.stalled_check(200.0) == []
    # Once the task blocks in get() its CPU goes to the waiting request: nothing waits.
    s.blocked(task.lease_id)
    assert s.stalled_check(300.0) == [] and s.stalled_check(400.0) == []


def test_the_stall_ends_and_a_new_one_warns_again() -> None:
    s = with_workers(LeaseScheduler(NodeResources({"CPU": 1}), stalled_seconds=5.0), b"w1", b"w2")
    actor = grant_one(s, "a", 1, dedicated=True)
    s.request("b", 2, CPU1)
    s.stalled_check(0.0)
    assert len(stalled(s.stalled_check(5.0))) == 1
    s.return_lease(actor.lease_id)  # the actor ended: the task runs
    assert s.stalled_check(6.0) == []
    s.request("c", 3, CPU1, dedicated=True)  # waits behind the task: no stall
    assert s.stalled_check(20.0) == []


def test_an_infeasible_request_is_no_stall() -> None:
    s = with_workers(LeaseScheduler(NodeResources({"CPU": 1}), stalled_seconds=5.0), b"w1")
    grant_one(s, "a", 1, dedicated=True)
    s.request("b", 2, shape_of({"GPU": 1}))  # warned as infeasible already
    s.stalled_check(0.0)
    assert s.stalled_check(10.0) == []


# ----------------------------------------------------------------------------- blocked workers


def test_worker_with_every_lease_blocked_takes_another_cpu_lease() -> None:
    s = with_workers(make({"CPU": 1}), b"w1")
    g1 = grant_one(s, "a", 1)
    assert s.request("a", 2, CPU1) == []  # no CPU left
    actions = s.blocked(g1.lease_id)
    # the same worker, no new process
    assert actions == [Grant("a", 2, 2, b"w1", (), saturated=True)]
    assert s.resources.available["CPU"] == 0


def test_blocked_worker_is_fallback_behind_an_idle_worker() -> None:
    s = with_workers(make({"CPU": 1}), b"w1", b"w2")
    g1 = grant_one(s, "a", 1)
    assert g1.worker_id == b"w1"
    s.blocked(g1.lease_id)
    g2 = grant_one(s, "a", 2)
    assert g2.worker_id == b"w2"  # an idle worker is preferred


def test_blocked_worker_does_not_take_a_gpu_lease() -> None:
    s = with_workers(make({"CPU": 1, "GPU": 1}), b"w1")
    g1 = grant_one(s, "a", 1)
    s.blocked(g1.lease_id)
    actions = s.request("a", 2, shape_of({"GPU": 1}))
    assert grants(actions) == []
    assert starts(actions) == 1
    assert s.worker_started(b"w2") == [Grant("a", 2, 2, b"w2", (0,), saturated=True)]


def test_blocked_worker_does_not_take_a_dedicated_lease() -> None:
    s = with_workers(make({"CPU": 2}), b"w1")
    g1 = grant_one(s, "a", 1)
    s.blocked(g1.lease_id)
    actions = s.request("a", 2, CPU1, "Actor", dedicated=True)
    assert grants(actions) == []
    assert starts(actions) == 1
    assert s.worker_started(b"w2") == [Grant("a", 2, 2, b"w2", ())]


def test_blocked_gpu_lease_does_not_share_its_worker() -> None:
    s = with_workers(make({"CPU": 2, "GPU": 1}), b"w1")
    g1 = grant_one(s, "a", 1, GPU1)
    s.blocked(g1.lease_id)
    assert s.resources.available["CPU"] == 20_000
    actions = s.request("a", 2, CPU1)
    assert grants(actions) == []
    assert starts(actions) == 1


def test_worker_with_one_unblocked_lease_is_not_shared() -> None:
    s = with_workers(make({"CPU": 3}), b"w1")
    g1 = grant_one(s, "a", 1)
    s.blocked(g1.lease_id)
    g2 = grant_one(s, "a", 2)
    assert g2.worker_id == b"w1"
    # w1 now runs g2's task: a third request needs another worker.
    actions = s.request("a", 3, CPU1)
    assert grants(actions) == []
    assert starts(actions) == 1
    # Once both are blocked, w1 can take it after all.
    actions = s.blocked(g2.lease_id)
    assert [(g.rid, g.worker_id) for g in grants(actions)] == [(3, b"w1")]


def test_sharing_follows_leases_that_block_unblock_and_return() -> None:
    """What keeps a worker from being shared is counted as its leases change (thousands of
    nested tasks may be blocked in one process), whether a lease returns running or blocked."""
    s = with_workers(make({"CPU": 1}), b"w1")
    g1 = grant_one(s, "a", 1)
    s.request("a", 2, CPU1)
    g2 = grants(s.blocked(g1.lease_id))[0]
    s.unblocked(g1.lease_id)
    s.return_lease(g2.lease_id)  # returned while running
    assert s.request("a", 3, CPU1) == []  # g1 runs again: no CPU, no sharing
    g3 = grants(s.blocked(g1.lease_id))[0]
    assert g3.worker_id == b"w1"
    s.blocked(g3.lease_id)
    s.return_lease(g3.lease_id)  # returned while blocked
    assert grant_one(s, "a", 4).worker_id == b"w1"  # only blocked g1 is left on w1


def test_unblocked_takes_cpus_back_and_may_oversubscribe() -> None:
    s = with_workers(make({"CPU": 1}), b"w1")
    g1 = grant_one(s, "a", 1)
    s.request("a", 2, CPU1)
    g2 = grants(s.blocked(g1.lease_id))[0]
    assert s.unblocked(g1.lease_id) == []
    assert s.resources.available["CPU"] == -10_000
    assert s.request("a", 3, CPU1) == []  # nothing fits while oversubscribed
    s.return_lease(g2.lease_id)
    assert s.resources.available["CPU"] == 0
    out = grants(s.return_lease(g1.lease_id))
    assert [g.rid for g in out] == [3]


def test_blocked_and_unblocked_are_idempotent() -> None:
    s = with_workers(make({"CPU": 1}), b"w1")
    g1 = grant_one(s, "a", 1)
    s.blocked(g1.lease_id)
    assert s.blocked(g1.lease_id) == []
    assert s.resources.available["CPU"] == 10_000
    s.unblocked(g1.lease_id)
    assert s.unblocked(g1.lease_id) == []
    assert s.resources.available["CPU"] == 0
    assert s.blocked(999) == [] and s.unblocked(999) == []


def test_returning_a_blocked_lease_frees_its_cpus_once() -> None:
    s = with_workers(make({"CPU": 2, "custom": 1}), b"w1")
    g = grant_one(s, "a", 1, shape_of({"CPU": 2, "custom": 1}))
    s.blocked(g.lease_id)
    s.return_lease(g.lease_id)
    assert s.resources.available == s.resources.total


# ----------------------------------------------------------------------------- dedicated


def test_dedicated_lease_takes_its_worker_exclusively() -> None:
    s = with_workers(make({"CPU": 4}), b"w1")
    actor = grant_one(s, "a", 1, CPU1, "Actor", dedicated=True)
    assert actor.worker_id == b"w1"
    assert s.idle_workers() == []
    actions = s.request("a", 2, CPU1)
    assert grants(actions) == [] and starts(actions) == 1
    g = grants(s.worker_started(b"w2"))[0]
    assert g.worker_id == b"w2"


def test_a_grant_names_the_actor_its_request_was_for() -> None:
    """(An actor placed from another node: the granting node's memory monitor knows that the
    worker hosts it, and the lease says whether it restarts.)"""
    s = with_workers(make({"CPU": 2}), b"w1", b"w2")
    actions = s.request("n", 1, CPU1, dedicated=True, retriable=False, actor_id=b"a1")
    assert [(g.worker_id, g.actor_id) for g in grants(actions)] == [(b"w1", b"a1")]
    assert grant_one(s, "c", 2).actor_id == b""
    assert s.busy_workers()[b"w1"][0] is False


def test_blocked_actor_worker_is_not_shared() -> None:
    s = with_workers(make({"CPU": 2}), b"w1")
    actor = grant_one(s, "a", 1, CPU1, dedicated=True)
    s.blocked(actor.lease_id)
    actions = s.request("a", 2, CPU1)
    assert grants(actions) == [] and starts(actions) == 1


def test_dedicated_request_skips_a_busy_worker() -> None:
    s = with_workers(make({"CPU": 4}), b"w1", b"w2")
    g = grant_one(s, "a", 1)
    actor = grant_one(s, "b", 2, CPU1, dedicated=True)
    assert actor.worker_id != g.worker_id


def test_two_dedicated_requests_need_two_workers() -> None:
    s = with_workers(make({"CPU": 4}), b"w1")
    s.request("a", 1, CPU1, dedicated=True)
    actions = s.request("a", 2, CPU1, dedicated=True)
    assert grants(actions) == [] and starts(actions) == 1
    g = grants(s.worker_started(b"w2"))
    assert [(x.rid, x.worker_id) for x in g] == [(2, b"w2")]


def test_returned_dedicated_lease_frees_the_worker() -> None:
    s = with_workers(make({"CPU": 1}), b"w1")
    actor = grant_one(s, "a", 1, CPU1, dedicated=True)
    assert s.request("a", 2, CPU1) == []  # CPU is taken
    out = s.return_lease(actor.lease_id)
    assert out == [Grant("a", 2, 2, b"w1", (), saturated=True)]


def test_zero_cpu_actor_still_owns_its_worker() -> None:
    s = with_workers(make({"CPU": 1}), b"w1")
    actor = grant_one(s, "a", 1, (), dedicated=True)
    assert actor.worker_id == b"w1"
    actions = s.request("a", 2, CPU1)
    assert grants(actions) == [] and starts(actions) == 1


# ----------------------------------------------------------------------------- worker death


def test_worker_died_reports_lost_leases_and_frees_resources() -> None:
    s = with_workers(make({"CPU": 2}), b"w1", b"w2")
    g1 = grant_one(s, "a", 1)
    s.blocked(g1.lease_id)
    g2 = grant_one(s, "b", 2)  # w2 is idle, so it goes there
    assert g2.worker_id == b"w2"
    g3 = grant_one(s, "c", 3)  # the blocked w1 takes it
    assert g3.worker_id == b"w1"
    assert s.worker_died(b"w1") == []
    assert lease(s, g1.lease_id) is None and lease(s, g3.lease_id) is None
    assert s.resources.available["CPU"] == 10_000  # g2 still holds one
    s.return_lease(g2.lease_id)
    assert s.resources.available == s.resources.total


def test_worker_died_then_queued_request_goes_elsewhere() -> None:
    s = with_workers(make({"CPU": 1}), b"w1", b"w2")
    g1 = grant_one(s, "a", 1)
    assert s.request("b", 1, CPU1) == [Revoke("a", g1.lease_id)]
    assert s.worker_died(b"w1") == [Grant("b", 1, 2, b"w2", (), saturated=True)]
    assert b"w1" not in s.idle_workers()


def test_worker_died_starts_a_replacement_for_queued_work() -> None:
    s = with_workers(make({"CPU": 1}), b"w1")
    grant_one(s, "a", 1)
    s.request("a", 2, CPU1)
    assert s.worker_died(b"w1") == [StartWorker()]


def test_death_of_idle_or_unknown_worker() -> None:
    s = with_workers(make(), b"w1")
    assert s.worker_died(b"w1") == []
    assert s.idle_workers() == []
    assert s.worker_died(b"nope") == []


def test_death_of_actor_worker_loses_the_actor_lease() -> None:
    s = with_workers(make({"CPU": 1}), b"w1")
    grant_one(s, "a", 1, CPU1, dedicated=True)
    assert s.worker_died(b"w1") == []
    assert s.resources.available == s.resources.total


def test_stopping_an_idle_worker_removes_it() -> None:
    s = with_workers(make(), b"w1", b"w2")
    assert s.worker_died(b"w1") == []
    assert s.idle_workers() == [b"w2"]
    g = grant_one(s, "a", 1)
    assert g.worker_id == b"w2"


# ----------------------------------------------------------------------------- clients


def test_client_gone_drops_its_requests_and_leases() -> None:
    s = with_workers(make({"CPU": 2}), b"w1", b"w2")
    g1 = grant_one(s, "a", 1)
    s.blocked(g1.lease_id)
    grant_one(s, "a", 2)
    s.request("a", 3, CPU2)
    s.request("a", 4, shape_of({"GPU": 1}))
    assert len(s.pending()) == 2
    actions = s.client_gone("a")
    assert actions == [StopWorker(b"w1"), StopWorker(b"w2")]  # nobody takes their results
    assert s.pending() == []
    assert lease(s, 1) is None and lease(s, 2) is None
    assert s.resources.available == s.resources.total
    assert s.idle_workers() == []


def test_client_gone_leaves_other_clients_alone() -> None:
    s = with_workers(make({"CPU": 2}), b"w1", b"w2")
    grant_one(s, "a", 1)
    gb = grant_one(s, "b", 1)
    s.request("b", 2, CPU2)
    s.client_gone("a")
    assert lease(s, gb.lease_id) is not None
    assert s.pending() == [("", True)]


def test_dead_caller_ends_other_leases_on_the_workers_it_orphans() -> None:
    """A caller dies while its task, blocked in get, shares its worker with another caller's
    lease: stopping that worker ends both leases, so no CPU stays held when its connection
    closes (this wedged a node: every CPU held, no worker left)."""
    s = with_workers(make({"CPU": 2}), b"w1", b"w2")
    busy = grant_one(s, "driver", 1)  # w1, running
    parent = grant_one(s, "dead", 1)  # w2, blocked in get: lends its CPU
    s.blocked(parent.lease_id)
    other = grant_one(s, "sibling", 1)  # w2 again: its every lease is blocked
    assert (busy.worker_id, other.worker_id) == (b"w1", b"w2")
    assert s.client_gone("dead") == [StopWorker(b"w2")]
    assert lease(s, other.lease_id) is None  # (its holder sees its connection to w2 close)
    assert s.worker_died(b"w2") == []  # its connection closes later: nothing left to free
    assert s.resources.available["CPU"] == 10_000  # only the driver's lease holds a CPU
    assert s.request("new", 1, CPU1) == [StartWorker()]
    new_lease = other.lease_id + 1
    assert grants(s.worker_started(b"w3")) == [Grant("new", 1, new_lease, b"w3", (), True)]


def test_a_blocked_worker_is_shared_only_within_its_job() -> None:
    """Another job's request gets a worker of its own: sharing a process across jobs let one
    job's failure (its caller's death stops that process) end another job's task."""
    s = with_workers(make({"CPU": 2}), b"w1")
    g = grants(s.request("a", 1, CPU1, job=b"A"))[0]
    s.blocked(g.lease_id)
    assert s.request("b", 1, CPU1, job=b"B") == [StartWorker()]
    assert grants(s.worker_started(b"w2"))[0].worker_id == b"w2"
    s.return_lease(grants(s.request("a2", 1, CPU1, job=b"A"))[0].lease_id)  # w1 again: job A
    assert grants(s.request("a3", 1, CPU1, job=b"A"))[0].worker_id == b"w1"


def test_client_gone_without_state_is_harmless() -> None:
    s = with_workers(make(), b"w1")
    assert s.client_gone("nobody") == []


def test_client_gone_grants_what_its_leases_free() -> None:
    s = with_workers(make({"CPU": 1}), b"w1", b"w2")
    g = grant_one(s, "a", 1)
    s.request("b", 1, CPU1)  # waits for a's CPU
    actions = s.client_gone("a")
    assert actions == [StopWorker(b"w1"), Grant("b", 1, g.lease_id + 1, b"w2", (), True)]


def test_client_gone_starts_workers_its_leases_make_room_for() -> None:
    s = with_workers(make({"CPU": 2}), b"w1")
    grant_one(s, "a", 1, CPU2)
    s.request("b", 1, CPU1)
    s.request("b", 2, CPU1)
    actions = s.client_gone("a")
    assert starts(actions) == 2  # a's worker is stopped with it


def test_cancel_request_removes_a_queued_request() -> None:
    s = with_workers(make({"CPU": 1}), b"w1")
    g = grant_one(s, "a", 1)
    s.request("b", 1, CPU1)
    s.request("c", 1, CPU1)
    assert s.cancel_request("b", 1) == []
    assert len(s.pending()) == 1
    out = grants(s.return_lease(g.lease_id))
    assert [(x.client, x.rid) for x in out] == [("c", 1)]


def test_cancel_request_matches_client_and_rid() -> None:
    s = make({"CPU": 1})
    s.request("a", 1, shape_of({"GPU": 1}))
    s.request("b", 1, shape_of({"GPU": 1}))
    s.request("a", 2, shape_of({"GPU": 1}))
    s.cancel_request("a", 1)
    assert len(s.pending()) == 2
    s.cancel_request("a", 99)
    assert len(s.pending()) == 2


def test_cancelled_request_that_waited_for_a_worker_is_not_granted() -> None:
    s = make()
    assert s.request("a", 1, CPU1) == [StartWorker()]
    s.cancel_request("a", 1)
    assert s.worker_started(b"w1") == []
    assert s.idle_workers() == [b"w1"]


# ----------------------------------------------------------------------------- revocation


def test_starved_request_revokes_other_clients_leases_once() -> None:
    s = with_workers(make({"CPU": 1}), b"w1", b"w2")
    g = grant_one(s, "a", 1)
    assert s.request("b", 1, CPU1) == [Revoke("a", g.lease_id)]
    assert lease(s, g.lease_id).revoked  # type: ignore[union-attr]
    assert s.request("c", 1, CPU1) == []  # already asked
    assert s.request("b", 2, CPU1) == []
    out = s.return_lease(g.lease_id)
    assert [(x.client, x.rid) for x in grants(out)] == [("b", 1)]


def test_same_client_same_shape_is_not_revoked() -> None:
    s = with_workers(make({"CPU": 1}), b"w1", b"w2")
    g = grant_one(s, "a", 1)
    assert s.request("a", 2, CPU1) == []
    assert not lease(s, g.lease_id).revoked  # type: ignore[union-attr]


def test_same_client_other_shape_is_not_revoked() -> None:
    # A caller's own shapes compete only inside that caller, which hands back idle leases of
    # one shape when it asks for another; revoking would make two busy queues churn.
    s = with_workers(make({"CPU": 2}), b"w1", b"w2")
    grant_one(s, "a", 1)
    assert s.request("a", 2, CPU2) == []


def test_blocked_and_dedicated_leases_are_not_revoked() -> None:
    s = with_workers(make({"CPU": 2}), b"w1", b"w2", b"w3")
    actor = grant_one(s, "a", 1, CPU1, dedicated=True)
    blocked = grant_one(s, "a", 2)
    s.blocked(blocked.lease_id)
    busy = grant_one(s, "a", 3)  # takes the CPU the blocked one lent
    actions = s.request("b", 1, CPU1)
    assert revokes(actions) == [Revoke("a", busy.lease_id)]
    assert not lease(s, actor.lease_id).revoked  # type: ignore[union-attr]
    assert not lease(s, blocked.lease_id).revoked  # type: ignore[union-attr]


def test_no_revocation_when_waiting_only_for_a_worker() -> None:
    s = with_workers(make({"CPU": 2}), b"w1")
    grant_one(s, "a", 1)
    actions = s.request("b", 1, CPU1)  # fits; only a process is missing
    assert actions == [StartWorker()]


def test_revocation_on_a_later_event() -> None:
    s = with_workers(make({"CPU": 2}), b"w1", b"w2", b"w3")
    g1 = grant_one(s, "a", 1)
    s.request("b", 1, CPU2)  # starved: revokes a's lease
    g2 = grant_one(s, "c", 1)  # backfills the free CPU ...
    # ... and is revoked at once, as the starved request still needs it.
    assert lease(s, g1.lease_id).revoked  # type: ignore[union-attr]
    assert lease(s, g2.lease_id).revoked  # type: ignore[union-attr]


def test_other_clients_starved_request_revokes_even_if_holder_also_waits() -> None:
    s = with_workers(make({"CPU": 1}), b"w1", b"w2")
    g = grant_one(s, "a", 1)
    assert s.request("a", 2, CPU1) == []  # a wants more: no conflict yet
    actions = s.request("b", 1, CPU1)  # b is starved by a's lease
    assert revokes(actions) == [Revoke("a", g.lease_id)]


# ----------------------------------------------------------------------------- queries


def test_pending_reports_description_and_feasibility() -> None:
    s = make({"CPU": 1})
    s.request("a", 1, CPU1, "f()")
    s.request("a", 2, shape_of({"GPU": 1}), "g()")
    assert s.pending() == [("f()", True), ("g()", False)]


def test_waiting_groups_requests_by_kind_and_shape() -> None:
    """What `ember status` shows: tasks and actors waiting, per shape; a group is marked
    capped when one caller has as many requests queued as a caller asks for at once."""
    s = make({"CPU": 1})
    for rid in range(1, 4):
        s.request("a", rid, CPU1, "f()")  # no worker yet: all three wait
    s.request("b", 1, CPU1, "f()")
    s.request(("actor", b"x"), 0, GPU1, "actor A", dedicated=True)
    s.request("node-2", 1, GPU1, "actor B", dedicated=True)  # placed from another node
    assert sorted(s.waiting(cap=3)) == [("actor", GPU1, 2, False), ("task", CPU1, 4, True)]
    assert sorted(s.waiting(cap=4)) == [("actor", GPU1, 2, False), ("task", CPU1, 4, False)]


def test_a_lease_whose_worker_its_holder_lost_stops_that_worker() -> None:
    """The node used to read the lease's worker from the scheduler's record and decide to
    kill it itself; now the scheduler says so."""
    s = with_workers(make({"CPU": 1}), b"w1", b"w2")
    g = grant_one(s, "a", 1)
    assert s.request("b", 1, CPU1) == [Revoke("a", g.lease_id)]
    assert s.lease_failed(g.lease_id) == [
        StopWorker(b"w1"),
        Grant("b", 1, g.lease_id + 1, b"w2", (), saturated=True),
    ]
    assert s.lease_failed(g.lease_id) == []  # (ended already)
    assert s.idle_workers() == []
    assert s.lease_failed(12345) == []


def test_a_grant_says_whether_the_node_is_saturated_once_the_round_is_granted() -> None:
    """The node computed `saturated` from the scheduler's lease record; a Grant carries it,
    counted once every grant of the same round holds its resources."""
    s = make({"CPU": 2})
    assert s.prestart(2) == [StartWorker(), StartWorker()]
    s.request("a", 1, CPU1)
    s.request("a", 2, CPU1)
    assert s.worker_started(b"w1") == [Grant("a", 1, 1, b"w1", (), saturated=False)]
    assert s.worker_started(b"w2") == [Grant("a", 2, 2, b"w2", (), saturated=True)]
    t = with_workers(make({"CPU": 2}), b"w1", b"w2")
    blocker = grant_one(t, "x", 1, CPU2)
    t.request("a", 1, CPU1)
    t.request("b", 1, CPU1)
    # Both are granted in one round, and the first is told that no room is left either.
    assert t.return_lease(blocker.lease_id) == [
        Grant("a", 1, 2, b"w1", (), saturated=True),
        Grant("b", 1, 3, b"w2", (), saturated=True),
    ]


# ----------------------------------------------------------------------------- reclaiming workers


def idle_scheduler(kept: int = 1, seconds: float = 10.0) -> LeaseScheduler:
    s = LeaseScheduler(NodeResources({"CPU": 4}), idle_kept=kept, idle_seconds=seconds)
    return with_workers(s, b"w1", b"w2", b"w3")


def test_idle_workers_beyond_those_kept_are_stopped_after_idling_long_enough() -> None:
    s = idle_scheduler(kept=1, seconds=10.0)
    assert s.idle_check(100.0, lambda w: False) == []  # idle since now
    assert s.idle_check(109.0, lambda w: False) == []
    assert s.idle_check(110.0, lambda w: False) == [StopWorker(b"w1"), StopWorker(b"w2")]
    assert s.idle_workers() == [b"w3"]  # the one kept however long it idles
    assert s.idle_check(1000.0, lambda w: False) == []


def test_a_worker_idles_from_when_a_check_first_sees_it_idle() -> None:
    s = idle_scheduler(kept=1, seconds=10.0)
    g = grant_one(s, "a", 1)  # w1 is busy
    s.idle_check(100.0, lambda w: False)
    s.return_lease(g.lease_id)
    s.idle_check(105.0, lambda w: False)  # w1 idle from now on
    assert s.idle_check(110.0, lambda w: False) == [StopWorker(b"w2"), StopWorker(b"w3")]
    assert s.idle_check(115.0, lambda w: False) == []  # w1 is the one kept


def test_busy_and_actor_workers_are_never_stopped_for_idling() -> None:
    s = idle_scheduler(kept=0, seconds=0.0)
    grant_one(s, "a", 1)
    grant_one(s, "actor", 0, dedicated=True)
    assert s.idle_check(0.0, lambda w: False) == [StopWorker(b"w3")]
    assert s.idle_check(1.0, lambda w: False) == []


def test_an_idle_worker_that_owns_something_is_kept() -> None:
    s = idle_scheduler(kept=0, seconds=0.0)
    owners = {b"w1", b"w3"}
    assert s.idle_check(0.0, lambda w: w in owners) == [StopWorker(b"w2")]
    owners.clear()  # its objects were freed
    assert s.idle_check(1.0, lambda w: w in owners) == [StopWorker(b"w1"), StopWorker(b"w3")]


def test_start_failures_count_only_in_a_row() -> None:
    s = make({"CPU": 2}, max_starting=1)
    assert s.request("a", 1, CPU1) == [StartWorker()]
    assert s.worker_start_failed("crash") == [StartWorker()]
    assert s.worker_start_failed("crash") == [StartWorker()]
    assert grants(s.worker_started(b"w1"))  # a worker came up: the count starts again
    assert s.request("a", 2, CPU1) == [StartWorker()]  # (w1 is busy)
    assert s.worker_start_failed("crash") == [StartWorker()]
    assert s.worker_start_failed("crash") == [StartWorker()]
    (refused,) = s.worker_start_failed("crash")
    assert isinstance(refused, Refuse) and (refused.client, refused.rid) == ("a", 2)


def test_busy_workers_say_whether_all_their_tasks_may_run_again_and_their_newest_lease() -> None:
    """What the node's memory monitor chooses its victims from."""
    s = with_workers(make({"CPU": 3}), b"w1", b"w2")
    [g1] = grants(s.request("a", 1, CPU1, retriable=True))
    [g2] = grants(s.request("b", 2, CPU1, retriable=False))
    assert s.busy_workers() == {
        g1.worker_id: (True, g1.lease_id, "a"),
        g2.worker_id: (False, g2.lease_id, "b"),
    }
    s.return_lease(g2.lease_id)
    assert s.busy_workers() == {g1.worker_id: (True, g1.lease_id, "a")}
