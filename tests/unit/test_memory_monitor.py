"""Tests for ember._core.memory_monitor: when to kill, and whom (Ray's time-based policy)."""

from __future__ import annotations

import pytest

from ember._core.memory_monitor import (
    Candidate,
    Kill,
    MemoryMonitor,
    MemoryUsage,
    kill_buffer_bytes,
    threshold_bytes,
)

GB = 1 << 30
TOTAL = 100 * GB


def cand(name: str, retriable: bool, order: int, used: int = 10 * GB, owner: str = "") -> Candidate:
    return Candidate(name.encode(), order, retriable, order, used, owner.encode())


def names(chosen: list[Kill]) -> list[str]:
    return [k.victim.worker_id.decode() for k in chosen]


def test_threshold_is_the_fraction_or_the_total_less_the_minimum_free() -> None:
    assert threshold_bytes(TOTAL, 0.95) == int(TOTAL * 0.95)
    assert threshold_bytes(TOTAL, 0.5, min_free_bytes=10 * GB) == 90 * GB
    assert threshold_bytes(TOTAL, 0.95, min_free_bytes=10 * GB) == int(TOTAL * 0.95)


def test_kill_buffer_is_five_percent_at_most_the_cap() -> None:
    assert kill_buffer_bytes(TOTAL) == 3 * GB
    assert kill_buffer_bytes(20 * GB) == GB
    assert kill_buffer_bytes(TOTAL, max_buffer_bytes=0) == 0


def test_a_bad_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="memory_usage_threshold"):
        MemoryMonitor(1.5)


def test_nothing_is_killed_below_the_threshold() -> None:
    mon = MemoryMonitor(0.9)
    usage = MemoryUsage(used=90 * GB, total=TOTAL)
    assert not mon.over(usage)
    assert mon.choose(usage, [cand("a", True, 1)], alive={b"a"}) == []


def test_retriable_first_then_newest() -> None:
    mon = MemoryMonitor(0.9, max_kill_buffer_bytes=0)
    workers = [
        cand("old-retriable", True, 1),
        cand("new-fixed", False, 9),
        cand("new-retriable", True, 5),
    ]
    chosen = mon.choose(MemoryUsage(used=91 * GB, total=TOTAL), workers, alive={b"x"})
    assert names(chosen) == ["new-retriable"]


def test_a_non_retriable_worker_is_killed_when_no_retriable_one_runs() -> None:
    mon = MemoryMonitor(0.9, max_kill_buffer_bytes=0)
    workers = [cand("old", False, 1), cand("new", False, 2)]
    chosen = mon.choose(MemoryUsage(used=91 * GB, total=TOTAL), workers, alive=set())
    assert names(chosen) == ["new"]


def test_kills_until_the_excess_and_the_buffer_are_covered() -> None:
    mon = MemoryMonitor(0.9)  # buffer: 3 GB of 100
    workers = [
        cand("a", True, 3, used=2 * GB),
        cand("b", True, 2, used=2 * GB),
        cand("c", True, 1, used=2 * GB),
    ]
    # 1 GB over the threshold + 3 GB of buffer: two of 2 GB each cover it.
    chosen = mon.choose(MemoryUsage(used=91 * GB, total=TOTAL), workers, alive=set())
    assert names(chosen) == ["a", "b"]


def test_nothing_more_is_chosen_while_a_victim_lives() -> None:
    mon = MemoryMonitor(0.9, max_kill_buffer_bytes=0)
    usage = MemoryUsage(used=95 * GB, total=TOTAL)
    workers = [cand("a", True, 2), cand("b", True, 1)]
    assert names(mon.choose(usage, workers, alive={b"a", b"b"})) == ["a"]
    assert mon.choose(usage, workers, alive={b"a", b"b"}) == []  # a is still dying
    # a is gone and memory is still high: the next one goes.
    assert names(mon.choose(usage, workers[1:], alive={b"b"})) == ["b"]


def test_no_candidates_no_kill() -> None:
    mon = MemoryMonitor(0.5)
    assert mon.choose(MemoryUsage(used=99 * GB, total=TOTAL), [], alive=set()) == []


def test_the_message_names_the_numbers_and_what_to_do() -> None:
    mon = MemoryMonitor(0.95)
    usage = MemoryUsage(used=96 * GB, total=TOTAL)
    text = mon.describe(usage, Kill(cand("w", True, 1, used=3 * GB), True), "IP: 10.0.0.1", 1)
    assert text.startswith("1 worker(s) were killed due to the node running low on memory.")
    assert "was 96.00GB used / 100.00GB limit (0.960000)" in text
    assert f"Memory usage {96 * GB}B exceeded threshold of {int(TOTAL * 0.95)}B (95.0%" in text
    assert "IP: 10.0.0.1" in text and "retriable task" in text
    assert "RAY_memory_usage_threshold" in text and "RAY_memory_monitor_refresh_ms" in text


def test_the_time_based_policy_lets_a_killed_retriable_task_run_again() -> None:
    mon = MemoryMonitor(0.9, max_kill_buffer_bytes=0)
    chosen = mon.choose(
        MemoryUsage(used=99 * GB, total=TOTAL),
        [cand("a", True, 2, used=5 * GB), cand("b", False, 1, used=5 * GB)],
        set(),
    )
    assert [k.retry for k in chosen] == [True, False]


def test_the_legacy_policy_kills_one_newest_worker_of_the_owner_with_most_retriable_tasks() -> None:
    mon = MemoryMonitor(0.9, by_owner=True)
    usage = MemoryUsage(used=99 * GB, total=TOTAL)
    workers = [
        cand("x1", True, 1, owner="x"),
        cand("y1", True, 2, owner="y"),
        cand("y2", True, 4, owner="y"),
        cand("fixed", False, 9, owner="y"),
    ]
    assert mon.choose(usage, workers, alive=set()) == [Kill(workers[2], True)]


def test_the_legacy_policy_does_not_retry_an_owner_s_last_task() -> None:
    """It would only be killed again: the owner's task fails with OutOfMemoryError."""
    mon = MemoryMonitor(0.9, by_owner=True)
    usage = MemoryUsage(used=99 * GB, total=TOTAL)
    workers = [cand("x1", True, 1, owner="x"), cand("y1", True, 2, owner="y")]
    # Two groups of one: the one whose lease is newer goes, without a retry.
    assert mon.choose(usage, workers, alive=set()) == [Kill(workers[1], False)]


def test_the_legacy_policy_kills_non_retriable_workers_last_newest_first() -> None:
    mon = MemoryMonitor(0.9, by_owner=True)
    usage = MemoryUsage(used=99 * GB, total=TOTAL)
    workers = [cand("a", False, 1, owner="x"), cand("b", False, 2, owner="y")]
    assert mon.choose(usage, workers, alive=set()) == [Kill(workers[1], False)]


def test_an_idle_worker_holding_much_memory_goes_first_and_small_ones_never() -> None:
    mon = MemoryMonitor(0.9, max_kill_buffer_bytes=0, idle_kill_bytes=GB)
    usage = MemoryUsage(used=99 * GB, total=TOTAL)
    small = Candidate(b"small", 1, False, 0, GB // 2, idle=True)
    big = Candidate(b"big", 2, False, 0, 3 * GB, idle=True)
    bigger = Candidate(b"bigger", 3, False, 0, 4 * GB, idle=True)
    busy = cand("busy", True, 5)
    assert names(mon.choose(usage, [small, big, busy, bigger], set())) == [
        "bigger",
        "big",
        "busy",
    ]
    legacy = MemoryMonitor(0.9, by_owner=True, idle_kill_bytes=GB)
    assert legacy.choose(usage, [small, big, busy], set()) == [Kill(big, False)]
    assert names(legacy.choose(usage, [small, busy], {b"big"})) == []  # (big still dies)
    assert names(legacy.choose(usage, [small, busy], {b"small"})) == ["busy"]
