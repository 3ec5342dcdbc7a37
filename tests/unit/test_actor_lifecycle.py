"""Tests for ember._core.actor_lifecycle, driven with plain events."""

from __future__ import annotations

from ember._core.actor_lifecycle import (
    ActorLifecycle,
    ActorState,
    AnswerCallers,
    CancelRequest,
    EndProcess,
    Granted,
    GrantFailed,
    HasEnded,
    IsAt,
    IsDead,
    Kill,
    ProcessDied,
    RequestRemoteWorker,
    RequestWorker,
    ReturnWorker,
    SpecFailed,
    SpecReady,
    SpilledTo,
    Started,
    StartFailed,
    StartProcess,
    Unplaceable,
    Unregister,
)


def alive(max_restarts: int = 0) -> ActorLifecycle:
    a = ActorLifecycle(max_restarts)
    assert a.handle(SpecReady()) == [RequestWorker()]
    assert a.handle(Granted(0)) == [StartProcess(0)]
    assert a.handle(Started(0, "tcp:h:1")) == [AnswerCallers()]
    return a


def test_created_placed_and_started() -> None:
    a = alive()
    assert a.state is ActorState.ALIVE
    assert (a.addr, a.incarnation, a.restarts) == ("tcp:h:1", 0, 0)


def test_waits_for_its_arguments_before_asking_for_a_worker() -> None:
    a = ActorLifecycle(0)
    assert a.state is ActorState.PENDING
    assert a.handle(Granted(0)) == [StartProcess(0)]  # (a grant is taken whenever it comes)
    b = ActorLifecycle(0)
    assert b.handle(SpecReady()) == [RequestWorker()]


def test_an_argument_that_failed_kills_it_for_good() -> None:
    a = ActorLifecycle(5)
    out = a.handle(SpecFailed("an argument failed", b"err"))
    assert out == [Unregister(), AnswerCallers()]
    assert (a.state, a.reason, a.cause) == (ActorState.DEAD, "an argument failed", b"err")
    assert a.handle(SpecReady()) == []


def test_worker_death_during_creation_without_restarts() -> None:
    a = ActorLifecycle(0)
    a.handle(SpecReady())
    a.handle(Granted(0))
    out = a.handle(ProcessDied("its worker process was killed by signal SIGKILL (9)"))
    assert out == [Unregister(), AnswerCallers()]
    assert a.state is ActorState.DEAD
    assert "stays dead because max_restarts is 0" in a.reason
    assert a.reason.startswith("its worker process was killed by signal SIGKILL")


def test_worker_death_during_creation_restarts_a_new_incarnation() -> None:
    a = ActorLifecycle(1)
    a.handle(SpecReady())
    a.handle(Granted(0))
    assert a.handle(ProcessDied("it crashed")) == [AnswerCallers(), RequestWorker()]
    assert (a.state, a.incarnation, a.restarts) == (ActorState.RESTARTING, 1, 1)
    assert a.last_end == "it crashed. It was restarted (1 of 1 restarts used)"
    assert a.handle(Started(0, "tcp:old:1")) == []  # an answer about the old incarnation
    assert a.handle(StartFailed(0, "old", None)) == []
    assert a.handle(Granted(1)) == [StartProcess(1)]
    assert a.handle(Started(1, "tcp:new:1")) == [AnswerCallers()]
    assert (a.state, a.addr) == (ActorState.ALIVE, "tcp:new:1")


def test_restarts_exhausted() -> None:
    a = alive(max_restarts=1)
    assert a.handle(ProcessDied("crash 1")) == [AnswerCallers(), RequestWorker()]
    a.handle(Granted(1))
    a.handle(Started(1, "tcp:h:2"))
    assert a.handle(ProcessDied("crash 2")) == [Unregister(), AnswerCallers()]
    assert a.state is ActorState.DEAD
    assert a.reason.startswith("crash 2. It stays dead: 1 of 1 restarts used. Raise max_restarts")


def test_no_limit_on_restarts() -> None:
    a = alive(max_restarts=-1)
    for n in range(1, 4):
        assert a.handle(ProcessDied("crash")) == [AnswerCallers(), RequestWorker()]
        a.handle(Granted(n))
        a.handle(Started(n, "tcp:h:1"))
    assert a.last_end == "crash. It was restarted (restart 3, max_restarts=-1 sets no limit)"
    assert a.state is ActorState.ALIVE


def test_node_death_ends_its_process_like_a_crash() -> None:
    a = alive(max_restarts=1)
    out = a.handle(ProcessDied("its worker process on node 0a0b0c0d went away"))
    assert out == [AnswerCallers(), RequestWorker()]
    assert a.handle(GrantFailed(0)) == []  # about the incarnation that is gone
    assert a.handle(GrantFailed(1)) == [RequestWorker()]  # the node it spilled to died too


def test_a_worker_that_cannot_be_reached_is_asked_for_again() -> None:
    a = ActorLifecycle(0)
    a.handle(SpecReady())
    assert a.handle(Granted(0)) == [StartProcess(0)]
    assert a.handle(GrantFailed(0)) == [RequestWorker()]
    assert a.handle(Granted(0)) == [StartProcess(0)]


def test_kill_with_no_restart_while_alive_ends_the_process_then_dies() -> None:
    a = alive(max_restarts=3)
    out = a.handle(Kill(True, "it was killed by ember.kill()"))
    assert out == [Unregister(), EndProcess()]  # the name is free at once
    assert a.state is ActorState.ALIVE  # until its process has ended
    assert a.handle(ProcessDied("its worker process was killed")) == [AnswerCallers()]
    assert (a.state, a.reason) == (ActorState.DEAD, "it was killed by ember.kill()")
    assert a.handle(Kill(True, "again")) == []


def test_kill_with_no_restart_before_it_has_a_worker() -> None:
    a = ActorLifecycle(3)
    a.handle(SpecReady())
    out = a.handle(Kill(True, "it was killed by ember.kill()"))
    assert out == [Unregister(), CancelRequest(), AnswerCallers()]
    assert a.state is ActorState.DEAD
    assert a.handle(Granted(0)) == [ReturnWorker()]  # a grant that crossed the kill


def test_kill_without_no_restart_restarts_it_and_says_why() -> None:
    a = alive(max_restarts=1)
    assert a.handle(Kill(False, "it was killed by ember.kill()")) == [EndProcess()]
    assert a.handle(ProcessDied("its worker process was killed by signal SIGKILL (9)")) == [
        AnswerCallers(),
        RequestWorker(),
    ]
    assert a.last_end.startswith("it was killed by ember.kill() (with no_restart=False). It was")


def test_kill_without_no_restart_while_restarting_does_nothing() -> None:
    a = alive(max_restarts=2)
    a.handle(ProcessDied("crash"))
    assert a.handle(Kill(False, "killed")) == []
    a.handle(Granted(1))
    a.handle(ProcessDied("a real crash"))
    assert a.last_end.startswith("a real crash.")  # not blamed on the kill


def test_owner_death_kills_it_for_good() -> None:
    a = alive(max_restarts=-1)
    assert a.handle(Kill(True, "its owner (the driver) exited")) == [Unregister(), EndProcess()]
    a.handle(ProcessDied("killed"))
    assert (a.state, a.reason) == (ActorState.DEAD, "its owner (the driver) exited")


def test_constructor_that_raises_kills_it_and_ends_the_process() -> None:
    a = ActorLifecycle(5)
    a.handle(SpecReady())
    a.handle(Granted(0))
    out = a.handle(StartFailed(0, "ValueError: bad", b"pickled"))
    assert out == [Unregister(), AnswerCallers(), EndProcess()]
    assert (a.state, a.reason, a.cause, a.no_restart) == (
        ActorState.DEAD,
        "ValueError: bad",
        b"pickled",
        True,
    )
    assert a.handle(ProcessDied("ended")) == []


def test_unplaceable_actor_dies() -> None:
    a = ActorLifecycle(5)
    a.handle(SpecReady())
    assert a.handle(Unplaceable("no node has GPU")) == [Unregister(), AnswerCallers()]
    assert (a.state, a.reason) == (ActorState.DEAD, "no node has GPU")


def test_a_second_grant_for_the_same_incarnation_is_returned() -> None:
    a = ActorLifecycle(0)
    a.handle(SpecReady())
    a.handle(Granted(0))
    assert a.handle(Granted(0)) == [ReturnWorker()]
    a.handle(Started(0, "x"))
    assert a.handle(Granted(0)) == [ReturnWorker()]


def test_a_dead_actor_ignores_everything_but_grants() -> None:
    a = alive()
    a.handle(ProcessDied("crash"))
    assert a.state is ActorState.DEAD
    for event in (
        SpecReady(),
        Started(0, "x"),
        StartFailed(0, "x", None),
        ProcessDied("x"),
        Kill(True, "x"),
        Kill(False, "x"),
        GrantFailed(0),
        Unplaceable("x"),
        SpecFailed("x", None),
    ):
        assert a.handle(event) == [], event
    assert a.handle(Granted(0)) == [ReturnWorker()]


def test_a_failed_argument_after_it_started_is_ignored() -> None:
    """Regression: SpecFailed in ALIVE or RESTARTING made it DEAD with its process still
    running (no EndProcess). Its arguments fail only before it is placed."""
    a = alive(max_restarts=1)
    assert (a.handle(SpecFailed("late", None)), a.state) == ([], ActorState.ALIVE)
    assert a.handle(ProcessDied("crash")) == [AnswerCallers(), RequestWorker()]
    assert (a.handle(SpecFailed("late", None)), a.state) == ([], ActorState.RESTARTING)


def test_a_failed_argument_with_a_worker_granted_ends_its_process() -> None:
    a = ActorLifecycle(0)
    assert a.handle(Granted(0)) == [StartProcess(0)]
    out = a.handle(SpecFailed("an argument failed", b"err"))
    assert out == [Unregister(), AnswerCallers(), EndProcess()]
    assert a.state is ActorState.DEAD


def test_unplaceable_while_restarting_with_a_worker_ends_its_process() -> None:
    a = alive(max_restarts=1)
    a.handle(ProcessDied("crash"))
    assert a.handle(Granted(1)) == [StartProcess(1)]
    out = a.handle(Unplaceable("no node has GPU"))
    assert out == [Unregister(), AnswerCallers(), EndProcess()]
    assert (a.state, a.reason) == (ActorState.DEAD, "no node has GPU")


def test_unplaceable_while_restarting_without_a_worker_dies() -> None:
    a = alive(max_restarts=1)
    a.handle(ProcessDied("crash"))
    assert a.handle(Unplaceable("no node has GPU")) == [Unregister(), AnswerCallers()]
    assert a.state is ActorState.DEAD


def test_unplaceable_while_alive_is_ignored() -> None:
    a = alive()
    assert a.handle(Unplaceable("stale")) == []
    assert a.state is ActorState.ALIVE


def test_a_spilled_placement_asks_that_node_for_the_current_incarnation() -> None:
    a = alive(max_restarts=1)
    assert a.handle(SpilledTo(b"n2")) == []  # (a stale spill: it has its worker)
    a.handle(ProcessDied("crash"))
    assert a.handle(SpilledTo(b"n2")) == [RequestRemoteWorker(b"n2", 1)]
    b = ActorLifecycle(0)
    b.handle(SpecReady())
    assert b.handle(SpilledTo(b"n3")) == [RequestRemoteWorker(b"n3", 0)]
    b.handle(Kill(True, "killed"))
    assert b.handle(SpilledTo(b"n3")) == []


def test_what_a_caller_is_told_while_it_is_pending_alive_restarting_and_dead() -> None:
    a = ActorLifecycle(1)
    a.handle(SpecReady())
    assert a.answer_for(0, ended=False) is None
    a.handle(Granted(0))
    a.handle(Started(0, "tcp:h:1"))
    assert a.answer_for(0, ended=False) == IsAt("tcp:h:1", 0)
    assert a.answer_for(1, ended=False) is None  # a newer incarnation than there is
    assert a.answer_for(1, ended=True) is None
    a.handle(ProcessDied("crash"))
    ended = "crash. It was restarted (1 of 1 restarts used)"
    assert a.answer_for(1, ended=True) == HasEnded(ended)
    assert a.answer_for(1, ended=False) is None  # restarting: not reachable yet
    a.handle(Granted(1))
    a.handle(Started(1, "tcp:h:2"))
    assert a.answer_for(0, ended=False) == IsAt("tcp:h:2", 1)
    assert a.answer_for(1, ended=True) == HasEnded(ended)
    a.handle(StartFailed(1, "stale", None))
    a.handle(Kill(True, "killed"))
    a.handle(ProcessDied("ended"))
    assert a.answer_for(5, ended=True) == IsDead("killed", None)
    assert a.answer_for(0, ended=False) == IsDead("killed", None)
