"""Tests for ember._core.concurrency_groups.GroupAdmission, with plain values as calls."""

from __future__ import annotations

import pytest

from ember._core.concurrency_groups import DEFAULT, GroupAdmission


def test_a_group_runs_up_to_its_limit_then_starts_waiting_calls_in_order() -> None:
    a: GroupAdmission[str] = GroupAdmission({"io": 2}, default_limit=1)
    assert a.arrive("io1", "io") == "io1"
    assert a.arrive("io2", "io") == "io2"
    assert a.arrive("io3", "io") is None
    assert a.arrive("io4", "io") is None
    assert a.running("io") == 2
    assert a.done("io") == "io3"  # takes the ended call's place
    assert a.running("io") == 2
    assert a.done("io") == "io4"
    assert a.done("io") is None
    assert a.done("io") is None
    assert a.running("io") == 0


def test_groups_do_not_wait_for_each_other() -> None:
    a: GroupAdmission[str] = GroupAdmission({"io": 1, "compute": 1}, default_limit=1)
    assert a.arrive("slow", "io") == "slow"
    assert a.arrive("queued", "io") is None
    assert a.arrive("c", "compute") == "c"  # starts while "io" is full
    assert a.arrive("d", DEFAULT) == "d"
    assert a.arrive("d2", DEFAULT) is None
    assert a.done(DEFAULT) == "d2"


def test_unknown_or_empty_group_is_the_default_group() -> None:
    a: GroupAdmission[str] = GroupAdmission({"io": 3}, default_limit=1)
    assert a.group_of("") == DEFAULT and a.group_of("nope") == DEFAULT
    assert a.arrive("x", "nope") == "x"
    assert a.arrive("y", "") is None  # the default group's one place is taken
    assert a.done("nope") == "y"


def test_a_call_that_arrives_while_others_wait_queues_behind_them() -> None:
    a: GroupAdmission[int] = GroupAdmission({}, default_limit=1)
    assert a.arrive(1, DEFAULT) == 1
    assert a.arrive(2, DEFAULT) is None
    assert a.done(DEFAULT) == 2
    assert a.arrive(3, DEFAULT) is None  # not ahead of nothing: 2 still runs
    assert a.done(DEFAULT) == 3


def test_total_limit_and_bad_limits() -> None:
    assert GroupAdmission({"io": 2, "compute": 4}, default_limit=1).total_limit() == 7
    with pytest.raises(ValueError, match="limit >= 1"):
        GroupAdmission({"io": 0}, default_limit=1)
