"""Tests for ember._core.wait_index.WaitIndex: a wait() loop's list, driven with plain ids."""

from __future__ import annotations

from ember._core.wait_index import WaitIndex

IDS = [bytes([i]) for i in range(6)]


def always(_: bytes) -> bool:
    return True


def test_a_call_takes_the_first_ready_in_input_order_and_leaves_the_rest() -> None:
    index = WaitIndex(IDS, [4, 1], fetch=True)
    assert index.matches(IDS, True) and not index.matches(IDS, False)
    first = index.first(1, always)
    assert first == [1]
    assert index.take(first) == [1]
    assert index.expected == [IDS[0], *IDS[2:]]
    assert index.matches(index.expected, True) and not index.matches(IDS, True)


def test_positions_are_in_the_shrunk_list_each_call_receives() -> None:
    index = WaitIndex(IDS, [], fetch=True)
    assert index.first(1, always) == []
    for oid in (IDS[5], IDS[2], IDS[3]):
        assert index.arrived(oid)
    assert index.take(index.first(1, always)) == [2]  # IDS[2], at 2
    assert index.take(index.first(2, always)) == [2, 4]  # IDS[3] and IDS[5], one gone before
    assert index.expected == [IDS[0], IDS[1], IDS[4]]
    index.arrived(IDS[0])
    assert index.take(index.first(1, always)) == [0]
    assert index.expected == [IDS[1], IDS[4]]


def test_arrivals_count_once_and_only_for_its_own_ids_not_returned() -> None:
    index = WaitIndex(IDS, [0], fetch=True)
    assert not index.arrived(IDS[0])  # known ready already
    assert not index.arrived(b"other")
    assert index.arrived(IDS[3]) and not index.arrived(IDS[3])
    index.take(index.first(2, always))
    assert not index.arrived(IDS[3])  # returned: made ready again means nothing here


def test_one_made_again_is_ready_only_once_it_arrives_again() -> None:
    index = WaitIndex(IDS, [1, 2], fetch=True)
    assert index.first(2, lambda oid: oid != IDS[1]) == [2]
    assert index.arrived(IDS[1])
    assert index.first(2, always) == [1, 2]


def test_taking_fewer_than_asked_on_timeout() -> None:
    index = WaitIndex(IDS, [3], fetch=True)
    first = index.first(2, always)
    assert index.take(first) == [3]
    assert index.take(index.first(2, always)) == []
    assert len(index.expected) == 5
