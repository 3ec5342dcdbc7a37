"""Tests for ember._core.refcount.RefTable: per-process holders, grace period, free_now."""

from __future__ import annotations

from ember._core.refcount import RefTable

X = b"object-x"
Y = b"object-y"


def test_empty_table() -> None:
    t = RefTable()
    assert X not in t
    assert t.count(X) == 0
    assert t.due(100.0) == []
    assert t.next_due() is None


def test_add_counts_per_holder() -> None:
    t = RefTable()
    t.add(X, "p1")
    t.add(X, "p1")
    t.add(X, "p2")
    assert X in t
    assert t.count(X) == 3
    t.remove(X, "p1", now=0.0)
    assert t.count(X) == 2
    assert t.next_due() is None  # still held


# ----------------------------------------------------------------------------- free_now


def test_free_now_of_unknown_id() -> None:
    t = RefTable()
    assert t.free_now(X, "owner") is True
    assert X not in t


def test_free_now_when_unshared() -> None:
    t = RefTable()
    t.add(X, "owner")
    t.add(X, "owner")  # several counts of the same holder still mean "unshared"
    assert t.free_now(X, "owner") is True
    assert X not in t
    assert t.due(1e9) == []  # gone at once, nothing left for later


def test_free_now_when_shared_waits_for_others() -> None:
    t = RefTable(grace=1.0)
    t.add(X, "owner")
    t.add(X, "borrower")
    assert t.free_now(X, "owner") is False
    assert X in t
    assert t.count(X) == 1
    t.remove(X, "borrower", now=10.0)
    assert t.due(10.5) == []
    assert t.due(11.0) == [X]
    assert X not in t


def test_free_now_by_a_non_holder_keeps_the_holders() -> None:
    t = RefTable()
    t.add(X, "borrower")
    assert t.free_now(X, "owner") is False
    assert t.count(X) == 1


# ----------------------------------------------------------------------------- grace period


def test_shared_id_is_due_only_after_grace() -> None:
    t = RefTable(grace=2.0)
    t.add(X, "p1")
    t.remove(X, "p1", now=5.0)
    assert X in t  # not freed yet
    assert t.count(X) == 0
    assert t.next_due() == 7.0
    assert t.due(5.0) == []
    assert t.due(6.999) == []
    assert t.due(7.0) == [X]
    assert X not in t
    assert t.due(100.0) == []  # reported once
    assert t.next_due() is None


def test_zero_grace_is_due_immediately() -> None:
    t = RefTable(grace=0.0)
    t.add(X, "p1")
    t.remove(X, "p1", now=3.0)
    assert t.due(3.0) == [X]


def test_readd_within_grace_cancels_the_free() -> None:
    # A DecRef overtakes the IncRef of the process the reference was sent to.
    t = RefTable(grace=1.0)
    t.add(X, "sender")
    t.remove(X, "sender", now=10.0)
    t.add(X, "receiver")
    assert t.next_due() is None
    assert t.due(20.0) == []
    assert X in t and t.count(X) == 1


def test_free_after_cancelled_free_restarts_the_grace() -> None:
    t = RefTable(grace=1.0)
    t.add(X, "a")
    t.remove(X, "a", now=10.0)
    t.add(X, "b")
    t.remove(X, "b", now=10.8)
    assert t.due(11.0) == []  # the first zero no longer counts
    assert t.next_due() == 11.8
    assert t.due(11.8) == [X]


def test_readd_after_due_starts_a_new_entry() -> None:
    t = RefTable(grace=1.0)
    t.add(X, "a")
    t.remove(X, "a", now=0.0)
    assert t.due(1.0) == [X]
    t.add(X, "a")
    assert X in t and t.count(X) == 1
    assert t.next_due() is None


def test_count_must_reach_zero_across_all_holders() -> None:
    t = RefTable(grace=1.0)
    t.add(X, "a")
    t.add(X, "a")
    t.add(X, "b")
    t.remove(X, "a", now=0.0)
    t.remove(X, "b", now=0.0)
    assert t.next_due() is None
    assert t.due(10.0) == []
    t.remove(X, "a", now=10.0)
    assert t.due(10.5) == []
    assert t.due(11.0) == [X]


def test_remove_of_unknown_id_is_ignored() -> None:
    t = RefTable()
    t.remove(X, "a", now=0.0)
    assert X not in t
    assert t.next_due() is None


def test_remove_by_a_non_holder_does_not_touch_others() -> None:
    t = RefTable()
    t.add(X, "a")
    t.remove(X, "stranger", now=0.0)
    assert t.count(X) == 1
    assert t.next_due() is None


def test_due_returns_only_ids_past_grace() -> None:
    t = RefTable(grace=1.0)
    for key in (X, Y):
        t.add(key, "p")
    t.remove(X, "p", now=0.0)
    t.remove(Y, "p", now=5.0)
    assert t.next_due() == 1.0
    assert t.due(2.0) == [X]
    assert t.next_due() == 6.0
    assert t.due(6.0) == [Y]
    assert t.next_due() is None


def test_due_returns_several_at_once() -> None:
    t = RefTable(grace=1.0)
    keys = [bytes([i]) for i in range(5)]
    for i, key in enumerate(keys):
        t.add(key, "p")
        t.remove(key, "p", now=float(i) / 10)
    assert sorted(t.due(5.0)) == sorted(keys)


# ----------------------------------------------------------------------------- holder_gone


def test_holder_gone_drops_all_its_counts() -> None:
    t = RefTable(grace=1.0)
    t.add(X, "dead")
    t.add(X, "dead")
    t.add(Y, "dead")
    t.add(Y, "alive")
    t.holder_gone("dead", now=3.0)
    assert t.count(X) == 0
    assert t.count(Y) == 1
    assert t.next_due() == 4.0
    assert t.due(3.5) == []
    assert t.due(4.0) == [X]
    assert Y in t


def test_holder_gone_of_unknown_holder() -> None:
    t = RefTable()
    t.add(X, "a")
    t.holder_gone("nobody", now=0.0)
    assert t.count(X) == 1
    assert t.next_due() is None


def test_holder_gone_does_not_restart_an_earlier_zero() -> None:
    t = RefTable(grace=1.0)
    t.add(X, "a")
    t.remove(X, "a", now=0.0)
    t.holder_gone("b", now=0.9)
    assert t.due(1.0) == [X]


def test_readd_after_holder_gone_cancels_the_free() -> None:
    t = RefTable(grace=1.0)
    t.add(X, "dead")
    t.holder_gone("dead", now=0.0)
    t.add(X, "new")
    assert t.due(10.0) == []
    assert t.count(X) == 1


# ----------------------------------------------------------------------------- next_due


def test_next_due_is_the_earliest_zero_plus_grace() -> None:
    t = RefTable(grace=0.5)
    for key in (X, Y):
        t.add(key, "p")
    t.remove(Y, "p", now=3.0)
    t.remove(X, "p", now=2.0)
    assert t.next_due() == 2.5
    t.add(X, "q")  # X is saved; Y is next
    assert t.next_due() == 3.5


def test_the_holders_of_a_dead_node_let_go_at_once():
    table = RefTable(grace=1.0)
    table.add(b"o1", b"nodeA-worker")
    table.add(b"o1", b"nodeB-driver")
    table.add(b"o2", b"nodeA-driver")
    table.holders_gone(lambda h: h.startswith(b"nodeA"), now=10.0)
    assert table.count(b"o1") == 1
    assert table.due(11.0) == [b"o2"]
