"""Tests for ember._core.task_leases.TaskLeases, driven with plain events and values."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from ember import exceptions as exc
from ember._core.resources import shape_of
from ember._core.task_leases import (
    IDLE_LEASE_SECONDS,
    MAX_LEASE_REQUESTS,
    Action,
    AskLease,
    CancelAsk,
    Fail,
    Finish,
    Push,
    RetryLater,
    ReturnLease,
    RunAgain,
    SendCancel,
    TakeBack,
    Task,
    TaskLeases,
    WorkerCrashed,
)
from tests._helpers import cancelled, of

CPU1 = shape_of({"CPU": 1})
GPU1 = shape_of({"CPU": 1, "GPU": 1})
NODE = "node"  # the handles the client would hold: opaque to the machine
_ids = itertools.count(1)


def task(retries: int = 0, shape: Any = CPU1, strategy: Any = None) -> Task:
    t = Task()
    t.task_id = next(_ids).to_bytes(4, "big")  # (ids count up in submission order)
    t.shape = shape
    t.strategy = strategy
    t.name = "f"
    t.job = b""
    t.retries_left = retries
    t.retriable = retries != 0
    return t


def grant(
    m: TaskLeases, ask: AskLease, lease_id: int, saturated: bool = False, worker: str = "w"
) -> list[Action]:
    return m.granted(
        ask.key,
        ask.req,
        lease_id,
        f"{worker}{lease_id}".encode(),
        [],
        saturated,
        NODE,
        f"peer{lease_id}",
    )


def test_a_task_asks_for_a_lease_and_is_pushed_once_it_is_granted() -> None:
    m = TaskLeases()
    t = task()
    [ask] = m.submit(t)
    assert ask == AskLease(ask.key, 1, None, False)
    [push] = grant(m, ask, 7)
    assert push == Push(t, t.lease) and push.lease.lease_id == 7


def test_a_finished_task_frees_its_lease_for_the_next_and_results_follow_the_push() -> None:
    m = TaskLeases()
    a, b = task(), task()
    [ask] = m.submit(a)
    grant(m, ask, 1)
    lease = a.lease
    out = m.submit(b)  # one lease wanted beside the busy one
    assert out == [AskLease(ask.key, 2, None, False)]
    done = m.task_done(a, "results", False, now=5.0)  # next task out first
    assert done == [Push(b, lease), CancelAsk(ask.key, 2), Finish(a, "results")]


def test_an_idle_lease_goes_back_after_a_while_and_at_once_when_asked() -> None:
    m = TaskLeases()
    a = task()
    [ask] = m.submit(a)
    grant(m, ask, 1)
    lease = a.lease
    m.task_done(a, None, False, now=10.0)
    assert m.tick(10.0 + IDLE_LEASE_SECONDS / 2) == []
    assert m.tick(10.0 + IDLE_LEASE_SECONDS * 2) == [ReturnLease(lease, False)]
    b = task()
    [ask] = m.submit(b)
    grant(m, ask, 2)
    lease = b.lease
    m.task_done(b, None, False, now=20.0)
    assert m.return_idle() == [ReturnLease(lease, False)]


def test_requests_are_capped_and_cancelled_once_nothing_waits() -> None:
    m = TaskLeases()
    tasks = [task() for _ in range(MAX_LEASE_REQUESTS + 4)]
    asks = [a for t in tasks for a in of(AskLease, m.submit(t))]
    assert len(asks) == MAX_LEASE_REQUESTS
    key = asks[0].key
    assert of(AskLease, grant(m, asks[0], 1)) == [
        AskLease(key, MAX_LEASE_REQUESTS + 1, None, False)
    ]
    for t in tasks[1:-1]:
        assert m.cancel(t, False, False) == [cancelled(t)]  # (others still wait)
    # The last one queued: no task waits, the requests are withdrawn (refilled to the cap
    # when the first lease came).
    assert m.cancel(tasks[-1], False, False) == [
        cancelled(tasks[-1]),
        *[CancelAsk(key, req) for req in range(2, MAX_LEASE_REQUESTS + 2)],
    ]
    assert m.task_done(tasks[0], None, False, now=0.0) == [Finish(tasks[0], None)]


def test_a_saturated_node_gets_a_second_task_queued_behind_a_running_one() -> None:
    m = TaskLeases()
    a, b = task(), task()
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    out = grant(m, asks[0], 1, saturated=True)
    assert out == [Push(a, a.lease), Push(b, a.lease)]  # b waits behind a, request kept open
    assert a.lease.tasks == [a, b] and m.asking(asks[1].key, asks[1].req)


def test_no_second_task_on_a_gpu_lease() -> None:
    m = TaskLeases()
    a, b = task(shape=GPU1), task(shape=GPU1)
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    assert grant(m, asks[0], 1, saturated=True) == [Push(a, a.lease)]


def test_a_free_lease_takes_back_a_task_waiting_behind_another() -> None:
    m = TaskLeases()
    a, b = task(), task()
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    key = asks[0].key
    first = grant(m, asks[0], 1, saturated=True)
    busy = first[0].lease
    # Nothing queued: ask for b back (and no lease for it meanwhile: one is waiting for it).
    assert grant(m, asks[1], 2) == [TakeBack(key, busy, [b.task_id])]
    out = m.took_back(key, busy, [b.task_id], [b.task_id], now=1.0)
    assert out == [Push(b, key.leases[2])] and busy.tasks == [a]


def test_a_task_that_started_before_it_could_be_taken_back_stays() -> None:
    m = TaskLeases()
    a, b = task(), task()
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    busy = grant(m, asks[0], 1, saturated=True)[0].lease
    [take] = grant(m, asks[1], 2)
    out = m.took_back(take.key, busy, take.task_ids, [], now=1.0)
    assert out == [] and b.started and b.lease is busy


def test_a_spilled_request_asks_the_node_named() -> None:
    m = TaskLeases()
    [ask] = m.submit(task())
    t = ask.key.queue[0]
    [again] = m.spilled(ask.key, ask.req, ("node2", "tcp:addr"))
    assert again == AskLease(ask.key, 2, ("node2", "tcp:addr"), True)
    assert m.spilled(ask.key, ask.req, ("node3", "x")) == []  # (answered already)
    assert grant(m, again, 9) == [Push(t, t.lease)]


def test_a_refused_request_fails_the_queue_or_asks_again() -> None:
    m = TaskLeases()
    a, b = task(), task()
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    error = exc.TaskUnschedulableError("never")
    out = m.refused(asks[0].key, asks[0].req, error, ask_again=True)
    assert [(f.task, f.error) for f in of(Fail, out)] == [(a, error), (b, error)]
    assert m.submit(task()) == []  # (the other request is still open)
    [ask] = of(AskLease, m.refused(asks[1].key, asks[1].req, None, ask_again=True))  # again
    assert m.refused(ask.key, ask.req, None, ask_again=False) == []  # our own node is gone


def test_a_lease_granted_after_it_is_no_longer_wanted_goes_back() -> None:
    m = TaskLeases()
    a, b = task(), task()
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    grant(m, asks[0], 1)
    # b was the only task waiting for a lease: its request is withdrawn at once.
    assert m.cancel(b, False, False) == [cancelled(b), CancelAsk(asks[1].key, asks[1].req)]
    assert not m.asking(asks[1].key, asks[1].req)
    assert m.task_done(a, None, False, now=0.0) == [Finish(a, None)]
    [ret] = grant(m, asks[1], 3)  # (its answer crossed the withdrawal)
    assert ret == ReturnLease(ret.lease, False) and ret.lease.lease_id == 3


def test_an_unreachable_worker_gives_its_lease_back_as_failed_and_asks_again() -> None:
    m = TaskLeases()
    [ask] = m.submit(task())
    out = m.granted(ask.key, ask.req, 4, b"w4", [], False, NODE, None)
    assert out == [ReturnLease(out[0].lease, True), AskLease(ask.key, 2, None, False)]
    assert out[0].lease.lease_id == 4


def test_a_worker_crash_retries_the_running_task_and_requeues_the_one_behind_for_free() -> None:
    m = TaskLeases()
    a, b = task(retries=2), task(retries=1)
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    lease = grant(m, asks[0], 1, saturated=True)[0].lease
    assert m.leases_of(lease.peer) == [lease]
    out = m.worker_lost(lease)
    # b most likely never ran: it queues again at once, using no retry (its request is
    # still open); the node is asked how a's worker ended.
    assert out == [ReturnLease(lease, True), WorkerCrashed(a, lease)]
    assert list(asks[0].key.queue) == [b] and b.retries_left == 1
    assert m.worker_lost(lease) == []  # (reported once)
    # It crashed (not the memory monitor): a retry is used, and a queues again.
    assert m.worker_ended(a, False, RuntimeError("crashed")) == [
        AskLease(asks[0].key, 3, None, False)
    ]
    assert a.retries_left == 1 and list(asks[0].key.queue) == [b, a]


def test_a_worker_crash_with_no_retry_left_fails_the_task_with_how_the_worker_ended() -> None:
    m = TaskLeases()
    a = task(retries=0)
    [ask] = m.submit(a)
    lease = grant(m, ask, 1)[0].lease
    assert m.worker_lost(lease) == [ReturnLease(lease, True), WorkerCrashed(a, lease)]
    error = RuntimeError("its process was killed by SIGSEGV")
    assert m.worker_ended(a, False, error) == [Fail(a, error)]


def test_a_task_killed_for_memory_uses_its_oom_retries_after_a_backoff() -> None:
    """As in Ray: a task with max_retries != 0 that the memory monitor killed runs again
    without using its max_retries (task_oom_retries), after a delay that doubles."""
    m = TaskLeases(oom_retry_delay_base=0.5)
    a = task(retries=1)
    a.oom_retries_left = 2
    [ask] = m.submit(a)
    lease = grant(m, ask, 1)[0].lease
    m.worker_lost(lease)
    oom = RuntimeError("killed for memory")
    assert m.worker_ended(a, True, oom) == [RetryLater(a, 0.5)]
    assert m.worker_ended(a, True, oom) == [RetryLater(a, 1.0)]
    assert a.retries_left == 1 and a.oom_retries_left == 0
    assert m.worker_ended(a, True, oom) == [Fail(a, oom)]


def test_a_task_without_retries_killed_for_memory_fails() -> None:
    m = TaskLeases(oom_retry_delay_base=0.0)
    a = task(retries=0)
    [ask] = m.submit(a)
    m.worker_lost(grant(m, ask, 1)[0].lease)
    oom = RuntimeError("killed for memory")
    assert m.worker_ended(a, True, oom) == [Fail(a, oom)]


def test_a_task_killed_for_memory_with_no_retry_fails() -> None:
    """Ray's legacy policy kills an owner's last task without a retry."""
    m = TaskLeases(oom_retry_delay_base=0.0)
    a = task(retries=1)
    a.oom_retries_left = -1
    [ask] = m.submit(a)
    m.worker_lost(grant(m, ask, 1)[0].lease)
    oom = RuntimeError("killed for memory")
    assert m.worker_ended(a, True, oom, oom_retry=False) == [Fail(a, oom)]


def test_a_task_cancelled_while_its_node_is_asked_stays_failed() -> None:
    m = TaskLeases()
    a = task(retries=1)
    [ask] = m.submit(a)
    m.worker_lost(grant(m, ask, 1)[0].lease)
    assert of(Fail, m.cancel(a, False, True))  # fails at once
    assert m.worker_ended(a, False, RuntimeError("crashed")) == []


def test_a_started_task_behind_another_uses_a_retry_when_its_worker_dies() -> None:
    m = TaskLeases()
    a, b = task(retries=0), task(retries=0)
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    busy = grant(m, asks[0], 1, saturated=True)[0].lease
    [take] = grant(m, asks[1], 2)
    m.took_back(take.key, busy, take.task_ids, [], now=0.0)  # b started
    assert m.worker_lost(busy) == [
        ReturnLease(busy, True),
        WorkerCrashed(a, busy),
        WorkerCrashed(b, busy),
    ]


def test_a_retiring_worker_gets_nothing_more_and_what_it_held_queues_again_for_free() -> None:
    m = TaskLeases()
    a, b = task(retries=0), task(retries=0)
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    lease = grant(m, asks[0], 1, saturated=True)[0].lease
    assert lease.tasks == [a, b]
    m.retiring(lease)  # a's answer says its worker retires (max_calls)
    out = m.task_done(a, "results", False, now=1.0)
    assert of(Push, out) == [] and of(Finish, out) == [Finish(a, "results")]
    assert m.tick(1.0 + IDLE_LEASE_SECONDS * 2) == []  # goes back only once the worker ends
    out = m.worker_lost(lease)
    assert out[0] == ReturnLease(lease, True) and not of(WorkerCrashed, out)
    assert list(asks[0].key.queue) == [b] and b.retries_left == 0  # b never ran there


def test_retries_on_error_run_again_until_exhausted() -> None:
    m = TaskLeases()
    t = task(retries=1)
    [ask] = m.submit(t)
    lease = grant(m, ask, 1)[0].lease
    assert m.task_done(t, "error", True, now=0.0) == [Push(t, lease)]
    assert t.retries_left == 0
    assert m.task_done(t, "error", True, now=0.0) == [Finish(t, "error")]


def test_unlimited_retries_stay_unlimited() -> None:
    m = TaskLeases()
    t = task(retries=-1)
    [ask] = m.submit(t)
    lease = grant(m, ask, 1)[0].lease
    m.worker_lost(lease)
    m.worker_ended(t, False, RuntimeError("crashed"))
    assert t.retries_left == -1


def test_cancelling_a_queued_task_fails_it_and_it_never_runs() -> None:
    m = TaskLeases()
    a, b = task(), task()
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    assert m.cancel(b, False, False) == [cancelled(b)]  # (a still waits for a lease)
    assert grant(m, asks[0], 1, saturated=True) == [Push(a, a.lease), CancelAsk(asks[1].key, 2)]


@pytest.mark.parametrize("force", [False, True])
def test_cancelling_a_running_task_asks_its_worker_and_kills_only_with_force(force: bool) -> None:
    m = TaskLeases()
    a, b = task(), task()
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    lease = grant(m, asks[0], 1, saturated=True)[0].lease
    [send] = m.cancel(a, force, True)
    assert send == SendCancel(a, lease, force, True, kill=force)
    [send] = m.cancel(b, force, True)  # queued behind: the worker skips it; nobody is killed
    assert send == SendCancel(b, lease, force, True, kill=False)


def test_a_cancelled_task_lost_with_its_worker_fails_as_cancelled() -> None:
    m = TaskLeases()
    a = task(retries=3)
    [ask] = m.submit(a)
    lease = grant(m, ask, 1)[0].lease
    m.cancel(a, False, False)
    assert m.worker_lost(lease) == [ReturnLease(lease, True), cancelled(a)]
    assert a.retries_left == 3


def test_a_revoked_lease_goes_back_once_its_task_is_done() -> None:
    m = TaskLeases()
    a, b = task(), task()
    [ask] = m.submit(a)
    lease = grant(m, ask, 1)[0].lease
    assert m.revoked(1) == []
    [ask_b] = m.submit(b)
    # b waits for another lease (asked for when it came).
    assert m.task_done(a, None, False, now=0.0) == [ReturnLease(lease, False), Finish(a, None)]
    assert m.revoked(1) == []  # (gone)
    assert ask_b == AskLease(ask.key, 2, None, False)


def test_a_node_thought_dying_gets_no_more_tasks() -> None:
    m = TaskLeases()
    a, b = task(), task()
    [ask] = m.submit(a)
    lease = m.granted(ask.key, ask.req, 1, b"NODEworker", [], False, NODE, "peer")[0].lease
    m.task_done(a, None, False, now=0.0)
    assert m.leases_on(b"NODE") == [lease]
    assert m.distrust(b"NODE") == [ReturnLease(lease, False)]
    assert m.submit(b) == [AskLease(ask.key, 2, None, False)]


def test_a_push_to_a_worker_already_gone_requeues_the_task_without_a_retry() -> None:
    m = TaskLeases()
    a = task(retries=0)
    [ask] = m.submit(a)
    [push] = grant(m, ask, 1)
    out = m.push_failed(a, push.lease)
    assert out == [AskLease(ask.key, 2, None, False)] and a.lease is None
    assert m.worker_lost(push.lease) == [ReturnLease(push.lease, True)]  # no retry used
    assert list(ask.key.queue) == [a]


def test_spread_puts_one_task_on_each_lease() -> None:
    m = TaskLeases()
    a, b = task(strategy="SPREAD"), task(strategy="SPREAD")
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    lease = grant(m, asks[0], 1)[0].lease
    assert m.task_done(a, None, False, now=0.0) == [ReturnLease(lease, False), Finish(a, None)]
    assert grant(m, asks[1], 2) == [Push(b, b.lease)] and b.lease is not lease


def test_a_task_off_its_lease_for_a_lost_argument_keeps_its_retries() -> None:
    m = TaskLeases()
    a = task(retries=1)
    [ask] = m.submit(a)
    lease = grant(m, ask, 1)[0].lease
    assert m.detach(a, now=0.0) == [] and a.lease is None and a.retries_left == 1
    assert m.submit(a) == [Push(a, lease)]  # arguments made again: it runs on the idle lease


def test_a_request_for_one_shape_returns_idle_leases_of_another() -> None:
    m = TaskLeases()
    a, b = task(), task(shape=GPU1)
    [ask] = m.submit(a)
    lease = grant(m, ask, 1)[0].lease
    m.task_done(a, None, False, now=0.0)
    out = m.submit(b)
    assert out == [ReturnLease(lease, False), AskLease(out[1].key, 2, None, False)]


def test_cancelling_the_last_queued_task_withdraws_its_lease_request() -> None:
    m = TaskLeases()
    a = task()
    [ask] = m.submit(a)
    assert m.cancel(a, False, False) == [cancelled(a), CancelAsk(ask.key, ask.req)]
    [ret] = grant(m, ask, 1)  # (its answer crossed the withdrawal)
    assert ret == ReturnLease(ret.lease, False) and ret.lease.lease_id == 1


def test_cancelling_a_task_waiting_for_its_arguments_fails_it_and_nothing_else() -> None:
    m = TaskLeases()
    a = task()
    assert m.cancel(a, False, False) == [cancelled(a)]  # (not queued: no lease wanted)
    assert m.submit(a) == []  # its arguments come ready later: it does not run
    assert m.args_failed(a, "error") == []  # or one fails: it is not finished twice


def test_a_task_whose_argument_failed_finishes_with_that_error() -> None:
    m = TaskLeases()
    a = task(retries=3)
    assert m.args_failed(a, "error") == [Finish(a, "error")] and a.retries_left == 3


def test_a_retryable_error_of_a_cancelled_task_is_not_retried() -> None:
    m = TaskLeases()
    a = task(retries=2)
    [ask] = m.submit(a)
    lease = grant(m, ask, 1)[0].lease
    assert m.cancel(a, False, False) == [SendCancel(a, lease, False, False, False)]
    assert m.task_done(a, "error", True, now=0.0) == [Finish(a, "error")]
    assert a.retries_left == 2


def test_a_cancelled_task_handed_back_fails_and_is_not_queued_again() -> None:
    m = TaskLeases()
    a, b = task(), task()
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    busy = grant(m, asks[0], 1, saturated=True)[0].lease
    [take] = grant(m, asks[1], 2)
    assert m.cancel(b, False, False) == [SendCancel(b, busy, False, False, False)]
    assert m.took_back(take.key, busy, [b.task_id], [b.task_id], now=1.0) == [cancelled(b)]
    assert not take.key.queue and busy.tasks == [a] and b.lease is None


def test_a_take_back_unanswered_because_the_worker_is_gone_leaves_its_tasks_for_the_loss() -> None:
    m = TaskLeases()
    a, b = task(), task()
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    key = asks[0].key
    busy = grant(m, asks[0], 1, saturated=True)[0].lease
    [take] = grant(m, asks[1], 2)
    # Not asked again from the same worker, nor marked started; one lease wanted for b
    # (the free one may be taken by the next task submitted).
    assert m.took_back(key, busy, [b.task_id], None, now=1.0) == [AskLease(key, 3, None, False)]
    assert busy.tasks == [a, b] and not b.started and busy.lost
    c = task()
    assert m.submit(c) == [Push(c, key.leases[2])]  # (not behind a, on the lost lease)
    out = m.worker_lost(busy)  # a has no retry left; b most likely never ran
    assert out == [ReturnLease(busy, True), WorkerCrashed(a, busy)]
    assert list(key.queue) == [b]


def test_rerunning_a_task_for_a_lost_object_uses_a_retry_and_distrusts_its_node() -> None:
    m = TaskLeases()
    a, b = task(retries=1), task(retries=1)
    [ask] = m.submit(a)
    lease = m.granted(ask.key, ask.req, 1, b"NODEworker", [], False, NODE, "peer")[0].lease
    m.task_done(a, "results", False, now=0.0)
    assert m.rerun(a, b"NODE") == [ReturnLease(lease, False), RunAgain(a)]
    assert a.retries_left == 0 and not a.ready
    assert m.rerun(a, b"NODE") is None  # no retry left
    assert m.rerun(b, b"") == [RunAgain(b)]  # (no lease there)
    c = task(retries=-1)
    c.cancelled = True
    assert m.rerun(c, b"NODE") is None


def test_use_retry() -> None:
    t = task(retries=2)
    assert t.use_retry() and t.use_retry() and not t.use_retry() and t.retries_left == 0
    t = task(retries=-1)
    assert t.use_retry() and t.retries_left == -1
    t.cancelled = True
    assert not t.use_retry()


def test_tasks_with_and_without_retries_left_do_not_share_leases() -> None:
    """So that the node's memory monitor knows which workers run tasks that would run again."""
    m = TaskLeases()
    a, b = task(retries=1), task(retries=0)
    ka, kb = of(AskLease, m.submit(a))[0].key, of(AskLease, m.submit(b))[0].key
    assert ka is not kb and ka.retriable and not kb.retriable
