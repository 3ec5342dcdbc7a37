"""The flow decisions of a generator task's stream (``_core.generator_stream``), with plain
values: which items are new, what ``next`` does, and when the worker is told what was taken."""

from __future__ import annotations

from ember._core.generator_stream import ItemStream, Next, must_pause


def test_items_are_handed_out_in_order_then_it_stops() -> None:
    s = ItemStream()
    assert s.next() is Next.WAIT
    assert s.arrived(0) and s.arrived(1)
    assert s.next() is Next.ITEM
    s.took()
    assert s.next() is Next.ITEM
    s.took()
    assert s.next() is Next.WAIT  # the task may yield more
    s.ended(failed=False)
    assert s.next() is Next.STOP


def test_a_retry_sends_items_again_and_they_are_dropped() -> None:
    s = ItemStream()
    assert s.arrived(0) and s.arrived(1)
    s.took()
    s.attempt_over()  # the worker died; the task runs again from its first item
    assert not s.arrived(0)
    assert not s.arrived(1)
    assert s.arrived(2)
    assert (s.received, s.consumed) == (3, 1)


def test_a_failure_around_the_task_comes_after_its_items_once() -> None:
    s = ItemStream()
    s.arrived(0)
    s.ended(failed=True)
    assert s.next() is Next.ITEM
    s.took()
    assert s.next() is Next.ERROR
    s.took()
    assert s.next() is Next.STOP


def test_nothing_arrives_after_the_end_or_the_drop() -> None:
    s = ItemStream()
    s.ended(failed=False)
    assert not s.arrived(0)
    t = ItemStream()
    assert not t.release()  # no backpressure: the worker never waits, nothing to tell it
    assert not t.arrived(0)


def test_the_worker_pauses_at_the_threshold() -> None:
    assert not must_pause(5, 0, -1)  # no backpressure
    assert must_pause(1, 0, 1)
    assert not must_pause(1, 1, 1)
    assert not must_pause(2, 0, 3)
    assert must_pause(3, 0, 3)


def test_with_threshold_one_every_take_is_told() -> None:
    s = ItemStream(threshold=1)
    s.arrived(0)
    assert s.ack() is None  # nothing taken yet: the worker waits, rightly
    s.took()
    assert s.ack() == 1
    s.arrived(1)
    assert s.ack() is None
    s.took()
    assert s.ack() == 2


def test_takes_are_told_only_when_the_worker_may_wait_for_them() -> None:
    s = ItemStream(threshold=3)
    s.arrived(0)
    s.took()
    assert s.ack() is None  # the worker has produced 1 of 3: it does not wait
    s.arrived(1)
    assert s.ack() is None
    s.arrived(2)  # 3 produced, 0 told: it waits now
    assert s.ack() == 1
    assert s.ack() is None  # told already


def test_an_item_in_flight_while_the_caller_takes_is_not_a_deadlock() -> None:
    # The worker produced 3 (threshold 2, told 1) and waits; item 2 is still on its way when
    # the caller takes item 1: telling must happen when item 2 arrives.
    s = ItemStream(threshold=2)
    s.arrived(0)
    s.arrived(1)
    s.took()
    assert s.ack() == 1
    s.took()
    assert s.ack() is None  # received 2, told 1: the worker (2 - 1 < 2) is not waiting
    s.arrived(2)
    assert s.ack() == 2
    worker_produced = 3
    assert not must_pause(worker_produced, 2, 2)


def test_a_new_attempt_is_told_what_was_taken() -> None:
    s = ItemStream(threshold=1)
    s.arrived(0)
    s.took()
    assert s.ack() == 1
    s.attempt_over()  # a retry's worker starts at 0 taken
    assert not s.arrived(0)  # (its first item again)
    assert s.ack() == 1  # it would wait for it otherwise


def test_a_dropped_generator_releases_a_worker_that_may_wait() -> None:
    s = ItemStream(threshold=2)
    s.arrived(0)
    assert s.release()
    assert not s.arrived(1)
    done = ItemStream(threshold=2)
    done.ended(failed=False)
    assert not done.release()  # over: no worker to release
