"""Tests for ember._core.actor_calls.ActorCalls, driven with plain events and values."""

from __future__ import annotations

import itertools

from ember import exceptions as exc
from ember._core.actor_calls import (
    Actor,
    ActorCalls,
    AskHowLost,
    CancelCall,
    Resolve,
    SendCall,
    SendRelease,
    State,
)
from ember._core.task_leases import Fail, Finish, Task
from tests._helpers import cancelled

_ids = itertools.count(1)
PEER = "peer"  # the client's handle for the actor's process: opaque to the machine


def call(retries: int = 0, ready: bool = True) -> Task:
    t = Task()
    t.task_id = next(_ids).to_bytes(4, "big")
    t.name = "method"
    t.retries_left = retries
    t.ready = ready
    return t


def alive(m: ActorCalls, max_task_retries: int = 0) -> Actor:
    actor = m.add(Actor(b"actor", "A", max_task_retries))
    [resolve] = m.flush(actor)
    assert resolve == Resolve(actor, 0)
    assert m.resolved(actor, 0, PEER) == []
    return actor


def test_calls_wait_for_the_actor_to_be_resolved_then_go_in_order() -> None:
    m = ActorCalls()
    actor = m.add(Actor(b"actor", "A", 0))
    a, b = call(), call()
    m.submit(actor, a)
    m.submit(actor, b)
    assert m.flush(actor) == [Resolve(actor, 0)]
    assert m.flush(actor) == []  # (one resolve at a time)
    out = m.resolved(actor, 0, PEER)
    assert out == [SendCall(a, actor), SendCall(b, actor)] and actor.state is State.ALIVE


def test_a_call_waits_for_its_arguments_and_holds_back_the_ones_behind() -> None:
    m = ActorCalls()
    actor = alive(m)
    a, b = call(ready=False), call()
    m.submit(actor, a)
    m.submit(actor, b)
    assert m.flush(actor) == []
    a.ready = True
    assert m.flush(actor) == [SendCall(a, actor), SendCall(b, actor)]


def test_an_unreachable_process_is_resolved_again_at_the_next_incarnation() -> None:
    m = ActorCalls()
    actor = m.add(Actor(b"actor", "A", 0))
    m.flush(actor)
    assert m.unreachable(actor, 3) == [Resolve(actor, 4)]


def test_a_dead_actor_fails_every_call_with_why() -> None:
    m = ActorCalls()
    actor = m.add(Actor(b"actor", "A", 0))
    a, b = call(), call()
    m.submit(actor, a)
    m.flush(actor)
    m.submit(actor, b)
    error = exc.ActorDiedError("constructor failed", actor_id="00", class_name="A")
    assert m.died(actor, error) == [Fail(a, error), Fail(b, error)]
    later = call()
    m.submit(actor, later)
    assert m.flush(actor) == [Fail(later, error)]


def test_a_done_call_finishes_and_one_failing_retryably_is_sent_again() -> None:
    m = ActorCalls()
    actor = alive(m)
    a = call(retries=1)
    m.submit(actor, a)
    m.flush(actor)
    assert m.call_done(a, actor, "error", retryable=True) == [SendCall(a, actor)]
    assert a.retries_left == 0
    assert m.call_done(a, actor, "error", retryable=True) == [Finish(a, "error")]


def test_a_lost_connection_resends_calls_with_retries_and_asks_about_the_others() -> None:
    m = ActorCalls()
    actor = alive(m)
    a, b, c = call(retries=1), call(retries=0), call(retries=-1)
    for t in (a, b, c):
        m.submit(actor, t)
    m.flush(actor)
    assert m.on_peer(PEER) == [actor]
    assert m.connection_lost(actor) == [AskHowLost(b, actor, 0), Resolve(actor, 1)]
    assert actor.state is State.PENDING
    assert list(actor.queue) == [a, c] and a.retries_left == 0 and c.retries_left == -1
    assert m.resolved(actor, 1, "new peer") == [SendCall(a, actor), SendCall(c, actor)]
    error = exc.ActorDiedError("it crashed", actor_id="00", class_name="A")
    assert m.lost_call_failed(b, actor, error) == [Fail(b, error)]


def test_cancelling_a_queued_call_fails_it_and_a_sent_one_is_interrupted() -> None:
    m = ActorCalls()
    actor = alive(m)
    a, b = call(), call(ready=False)
    m.submit(actor, a)
    m.submit(actor, b)
    m.flush(actor)
    assert m.cancel(b, actor, recursive=True) == [cancelled(b)]
    assert m.cancel(a, actor, recursive=True) == [CancelCall(a, actor, True)]
    # A cancelled call is not retried.
    assert m.connection_lost(actor) == [cancelled(a), Resolve(actor, 1)]


def test_cancelling_a_call_waiting_for_its_arguments_lets_the_ones_behind_go() -> None:
    m = ActorCalls()
    actor = alive(m)
    a, b = call(ready=False), call()
    m.submit(actor, a)
    m.submit(actor, b)
    assert m.flush(actor) == []
    assert m.cancel(a, actor, recursive=False) == [cancelled(a), SendCall(b, actor)]
    assert m.args_failed(a, actor, "error") == []  # (failed already, as cancelled)


def test_a_call_whose_arguments_failed_finishes_with_that_and_the_ones_behind_go() -> None:
    m = ActorCalls()
    actor = alive(m)
    a, b = call(ready=False), call()
    m.submit(actor, a)
    m.submit(actor, b)
    assert m.args_failed(a, actor, "error") == [Finish(a, "error"), SendCall(b, actor)]
    assert not actor.queue


def test_a_release_deferred_behind_a_call_whose_arguments_failed_goes_then() -> None:
    m = ActorCalls()
    actor = alive(m)
    a = call(ready=False)
    m.submit(actor, a)
    assert m.release(b"actor", "kill it") == []
    assert m.args_failed(a, actor, "error") == [Finish(a, "error"), SendRelease("kill it")]
    assert m.get(b"actor") is None


def test_a_release_deferred_behind_a_cancelled_call_goes_then() -> None:
    m = ActorCalls()
    actor = alive(m)
    a = call(ready=False)
    m.submit(actor, a)
    assert m.release(b"actor", "kill it") == []
    assert m.cancel(a, actor, recursive=False) == [cancelled(a), SendRelease("kill it")]
    assert m.get(b"actor") is None


def test_a_release_deferred_behind_a_cancelled_call_lost_with_its_process_goes_then() -> None:
    m = ActorCalls()
    actor = alive(m)
    a = call(retries=3)
    m.submit(actor, a)
    m.flush(actor)
    m.release(b"actor", "kill it")
    assert m.cancel(a, actor, recursive=False) == [CancelCall(a, actor, False)]
    assert m.connection_lost(actor) == [cancelled(a), SendRelease("kill it")]  # (no resolve)


def test_an_actor_known_dead_is_not_resolved_again_when_its_connection_closes() -> None:
    m = ActorCalls()
    actor = alive(m)
    a, b = call(retries=1), call()
    m.submit(actor, a)
    m.submit(actor, b)
    m.flush(actor)
    error = exc.ActorDiedError("killed", actor_id="00", class_name="A")
    assert m.died(actor, error) == []  # (both were sent: they wait for the connection)
    assert m.connection_lost(actor) == [Fail(b, error), Fail(a, error)]
    assert actor.state is State.DEAD and a.retries_left == 1


def test_a_release_waits_for_the_calls_already_submitted() -> None:
    m = ActorCalls()
    actor = alive(m)
    a = call()
    m.submit(actor, a)
    m.flush(actor)
    assert m.release(b"actor", "kill it") == []
    assert m.call_done(a, actor, "ok", retryable=False) == [SendRelease("kill it"), Finish(a, "ok")]
    assert m.get(b"actor") is None


def test_a_release_of_an_idle_actor_goes_at_once_and_none_is_sent_for_a_detached_one() -> None:
    m = ActorCalls()
    alive(m)
    assert m.release(b"actor", "dec ref") == [SendRelease("dec ref")]
    alive(m)
    assert m.release(b"actor", None) == []


def test_a_release_deferred_behind_a_lost_call_goes_once_it_fails() -> None:
    m = ActorCalls()
    actor = alive(m)
    a = call(retries=0)
    m.submit(actor, a)
    m.flush(actor)
    m.release(b"actor", "kill it")
    m.connection_lost(actor)
    error = exc.ActorDiedError("gone", actor_id="00", class_name="A")
    assert m.lost_call_failed(a, actor, error) == [Fail(a, error), SendRelease("kill it")]


def test_max_pending_calls_counts_calls_queued_and_sent_until_answered() -> None:
    m = ActorCalls()
    assert m.has_room(None, 1)  # no call made yet from here
    actor = alive(m)
    a, b = call(), call()
    m.submit(actor, a)
    assert not m.has_room(actor, 1) and m.has_room(actor, 2) and m.has_room(actor, -1)
    m.flush(actor)  # sent: still pending
    m.submit(actor, b)
    assert not m.has_room(actor, 2)
    m.call_done(a, actor, [], retryable=False)
    assert m.has_room(actor, 2)


def test_an_actor_killed_here_while_being_resolved_stays_dead() -> None:
    m = ActorCalls()
    actor = m.add(Actor(b"actor", "A", 0))
    a = call()
    m.submit(actor, a)
    assert m.flush(actor) == [Resolve(actor, 0)]
    error = exc.ActorDiedError("killed")
    assert m.died(actor, error) == [Fail(a, error)]
    assert m.resolved(actor, 0, PEER) == []  # the node's late answer
    assert m.unreachable(actor, 0) == []
    b = call()
    m.submit(actor, b)
    assert m.flush(actor) == [Fail(b, error)] and actor.state is State.DEAD
