"""Tests for ember._core.task_leases.TaskLeases, driven with plain events and values."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
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
    ReturnLease,
    SendCancel,
    TakeBack,
    Task,
    TaskLeases,
    WorkerCrashed,
)

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
    return t


def of(kind: type, actions: Sequence[Action]) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


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
    assert isinstance(ask, AskLease) and ask.to is None and not ask.spilled
    [push] = grant(m, ask, 7)
    assert isinstance(push, Push) and push.task is t and push.lease.lease_id == 7
    assert t.lease is push.lease


def test_a_finished_task_frees_its_lease_for_the_next_and_results_follow_the_push() -> None:
    m = TaskLeases()
    a, b = task(), task()
    [ask] = m.submit(a)
    grant(m, ask, 1)
    out = m.submit(b)  # one lease wanted beside the busy one
    assert of(AskLease, out) and not of(Push, out)
    done = m.task_done(a, "results", False, now=5.0)
    assert [type(x) for x in done] == [Push, CancelAsk, Finish]  # next task out first
    assert done[0].task is b and done[2].results == "results"


def test_an_idle_lease_goes_back_after_a_while_and_at_once_when_asked() -> None:
    m = TaskLeases()
    a = task()
    [ask] = m.submit(a)
    grant(m, ask, 1)
    m.task_done(a, None, False, now=10.0)
    assert m.tick(10.0 + IDLE_LEASE_SECONDS / 2) == []
    [ret] = m.tick(10.0 + IDLE_LEASE_SECONDS * 2)
    assert isinstance(ret, ReturnLease) and not ret.failed
    b = task()
    [ask] = m.submit(b)
    grant(m, ask, 2)
    m.task_done(b, None, False, now=20.0)
    assert [r.lease.lease_id for r in of(ReturnLease, m.return_idle())] == [2]


def test_requests_are_capped_and_cancelled_once_nothing_waits() -> None:
    m = TaskLeases()
    tasks = [task() for _ in range(MAX_LEASE_REQUESTS + 4)]
    asks = [a for t in tasks for a in of(AskLease, m.submit(t))]
    assert len(asks) == MAX_LEASE_REQUESTS
    grant(m, asks[0], 1)
    for t in tasks[1:]:
        m.cancel(t, False, False)
    out = m.task_done(tasks[0], None, False, now=0.0)
    assert len(of(CancelAsk, out)) == MAX_LEASE_REQUESTS  # (refilled when the first came)


def test_a_saturated_node_gets_a_second_task_queued_behind_a_running_one() -> None:
    m = TaskLeases()
    a, b = task(), task()
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    out = grant(m, asks[0], 1, saturated=True)
    assert [p.task for p in of(Push, out)] == [a, b]  # b waits behind a, request kept open
    assert [x.task_id for x in out[0].lease.tasks] == [a.task_id, b.task_id]


def test_no_second_task_on_a_gpu_lease() -> None:
    m = TaskLeases()
    a, b = task(shape=GPU1), task(shape=GPU1)
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    assert [p.task for p in of(Push, grant(m, asks[0], 1, saturated=True))] == [a]


def test_a_free_lease_takes_back_a_task_waiting_behind_another() -> None:
    m = TaskLeases()
    a, b = task(), task()
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    first = grant(m, asks[0], 1, saturated=True)
    busy = first[0].lease
    [take] = of(TakeBack, grant(m, asks[1], 2))  # nothing queued: ask for b back
    assert take.lease is busy and take.lease is busy and take.task_ids == [b.task_id]
    out = m.took_back(take.key, busy, take.task_ids, [b.task_id], now=1.0)
    [push] = of(Push, out)
    assert push.task is b and push.lease.lease_id == 2


def test_a_task_that_started_before_it_could_be_taken_back_stays() -> None:
    m = TaskLeases()
    a, b = task(), task()
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    busy = grant(m, asks[0], 1, saturated=True)[0].lease
    [take] = of(TakeBack, grant(m, asks[1], 2))
    out = m.took_back(take.key, busy, take.task_ids, [], now=1.0)
    assert not of(Push, out) and b.started and b.lease is busy


def test_a_spilled_request_asks_the_node_named() -> None:
    m = TaskLeases()
    [ask] = m.submit(task())
    [again] = m.spilled(ask.key, ask.req, ("node2", "tcp:addr"))
    assert isinstance(again, AskLease) and again.to == ("node2", "tcp:addr") and again.spilled
    assert m.spilled(ask.key, ask.req, ("node3", "x")) == []  # (answered already)
    assert of(Push, grant(m, again, 9))


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
    m.cancel(b, False, False)
    assert of(CancelAsk, m.task_done(a, None, False, now=0.0)) == [
        CancelAsk(asks[1].key, asks[1].req)
    ]
    [ret] = grant(m, asks[1], 3)
    assert isinstance(ret, ReturnLease) and ret.lease.lease_id == 3


def test_an_unreachable_worker_gives_its_lease_back_as_failed_and_asks_again() -> None:
    m = TaskLeases()
    [ask] = m.submit(task())
    out = m.granted(ask.key, ask.req, 4, b"w4", [], False, NODE, None)
    assert [type(x) for x in out] == [ReturnLease, AskLease] and out[0].failed


def test_a_worker_crash_retries_the_running_task_and_requeues_the_one_behind_for_free() -> None:
    m = TaskLeases()
    a, b = task(retries=2), task(retries=0)
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    lease = grant(m, asks[0], 1, saturated=True)[0].lease
    assert m.leases_of(lease.peer) == [lease]
    out = m.worker_lost(lease)
    assert of(ReturnLease, out) == [ReturnLease(lease, True)]
    assert not of(WorkerCrashed, out) and not of(Fail, out)
    assert a.retries_left == 1 and b.retries_left == 0  # b most likely never ran
    assert list(asks[0].key.queue) == [a, b]
    assert m.worker_lost(lease) == []  # (reported once)


def test_a_worker_crash_with_no_retry_left_fails_the_task_with_how_the_worker_ended() -> None:
    m = TaskLeases()
    a = task(retries=0)
    [ask] = m.submit(a)
    lease = grant(m, ask, 1)[0].lease
    [ret, crashed] = m.worker_lost(lease)
    assert isinstance(ret, ReturnLease) and crashed == WorkerCrashed(a, lease)


def test_a_started_task_behind_another_uses_a_retry_when_its_worker_dies() -> None:
    m = TaskLeases()
    a, b = task(retries=0), task(retries=0)
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    busy = grant(m, asks[0], 1, saturated=True)[0].lease
    [take] = of(TakeBack, grant(m, asks[1], 2))
    m.took_back(take.key, busy, take.task_ids, [], now=0.0)  # b started
    assert [c.task for c in of(WorkerCrashed, m.worker_lost(busy))] == [a, b]


def test_retries_on_error_run_again_until_exhausted() -> None:
    m = TaskLeases()
    t = task(retries=1)
    [ask] = m.submit(t)
    grant(m, ask, 1)
    out = m.task_done(t, "error", True, now=0.0)
    assert [p.task for p in of(Push, out)] == [t] and not of(Finish, out)
    assert t.retries_left == 0
    out = m.task_done(t, "error", True, now=0.0)
    assert of(Finish, out) == [Finish(t, "error")]


def test_unlimited_retries_stay_unlimited() -> None:
    m = TaskLeases()
    t = task(retries=-1)
    [ask] = m.submit(t)
    lease = grant(m, ask, 1)[0].lease
    m.worker_lost(lease)
    assert t.retries_left == -1


def test_cancelling_a_queued_task_fails_it_and_it_never_runs() -> None:
    m = TaskLeases()
    a, b = task(), task()
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    [fail] = m.cancel(b, False, False)
    assert isinstance(fail, Fail) and isinstance(fail.error, exc.TaskCancelledError)
    assert [p.task for p in of(Push, grant(m, asks[0], 1, saturated=True))] == [a]


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
    fails = of(Fail, m.worker_lost(lease))
    assert [f.task for f in fails] == [a] and a.retries_left == 3


def test_a_revoked_lease_goes_back_once_its_task_is_done() -> None:
    m = TaskLeases()
    a, b = task(), task()
    [ask] = m.submit(a)
    lease = grant(m, ask, 1)[0].lease
    assert m.revoked(1) == []
    m.submit(b)
    out = m.task_done(a, None, False, now=0.0)
    assert ReturnLease(lease, False) in out and not of(Push, out)  # b waits for another
    assert m.revoked(1) == []  # (gone)


def test_a_node_thought_dying_gets_no_more_tasks() -> None:
    m = TaskLeases()
    a, b = task(), task()
    [ask] = m.submit(a)
    lease = m.granted(ask.key, ask.req, 1, b"NODEworker", [], False, NODE, "peer")[0].lease
    m.task_done(a, None, False, now=0.0)
    assert m.leases_on(b"NODE") == [lease]
    assert m.distrust(b"NODE") == [ReturnLease(lease, False)]
    assert not of(Push, m.submit(b))


def test_a_push_to_a_worker_already_gone_requeues_the_task_without_a_retry() -> None:
    m = TaskLeases()
    a = task(retries=0)
    [ask] = m.submit(a)
    [push] = grant(m, ask, 1)
    out = m.push_failed(a, push.lease)
    assert of(AskLease, out) and not of(Push, out) and a.lease is None
    assert of(Push, m.worker_lost(push.lease)) == []  # still queued, no retry used
    assert list(ask.key.queue) == [a]


def test_spread_puts_one_task_on_each_lease() -> None:
    m = TaskLeases()
    a, b = task(strategy="SPREAD"), task(strategy="SPREAD")
    asks = of(AskLease, m.submit(a)) + of(AskLease, m.submit(b))
    lease = grant(m, asks[0], 1)[0].lease
    out = m.task_done(a, None, False, now=0.0)
    assert ReturnLease(lease, False) in out and not of(Push, out)
    assert of(Push, grant(m, asks[1], 2))[0].task is b


def test_a_task_off_its_lease_for_a_lost_argument_keeps_its_retries() -> None:
    m = TaskLeases()
    a = task(retries=1)
    [ask] = m.submit(a)
    grant(m, ask, 1)
    assert not of(Finish, m.detach(a, now=0.0)) and a.lease is None and a.retries_left == 1
    assert of(Push, m.submit(a))  # arguments made again: it runs on the idle lease


def test_a_request_for_one_shape_returns_idle_leases_of_another() -> None:
    m = TaskLeases()
    a, b = task(), task(shape=GPU1)
    [ask] = m.submit(a)
    lease = grant(m, ask, 1)[0].lease
    m.task_done(a, None, False, now=0.0)
    out = m.submit(b)
    assert out[0] == ReturnLease(lease, False) and isinstance(out[1], AskLease)
