"""``ember.util.queue.Queue`` with a real actor: FIFO order between tasks and the driver,
blocking with timeouts, the no-wait and batch variants, async use, and shutdown; as Ray's
``ray.util.queue``."""

from __future__ import annotations

import asyncio
import queue as std_queue
from typing import Any

import pytest

from ember.util.queue import Empty, Full, Queue

pytestmark = pytest.mark.ember_only


def test_items_go_through_in_order_between_tasks_and_the_driver(ray: Any) -> None:
    q = Queue()

    @ray.remote
    def produce(q: Queue, n: int) -> int:
        for i in range(n):
            q.put(i)
        return n

    assert ray.get(produce.remote(q, 5)) == 5
    assert len(q) == q.qsize() == q.size() == 5 and not q.empty()
    assert [q.get() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert q.empty()


def test_a_blocked_get_waits_for_a_put(ray: Any) -> None:
    q = Queue()

    @ray.remote
    def consume(q: Queue) -> Any:
        return q.get(timeout=30)

    ref = consume.remote(q)
    ready, _ = ray.wait([ref], timeout=0.2)
    assert not ready  # waiting inside the queue's actor
    q.put("item")
    assert ray.get(ref) == "item"


def test_full_and_empty_at_once_or_after_a_timeout(ray: Any) -> None:
    q = Queue(maxsize=2)
    q.put(1)
    q.put_nowait(2)
    assert q.full()
    with pytest.raises(Full):
        q.put(3, block=False)
    with pytest.raises(Full):
        q.put(3, timeout=0.1)
    with pytest.raises(std_queue.Full):  # the standard library's classes catch them too
        q.put_nowait(3)
    assert [q.get(), q.get_nowait()] == [1, 2]
    with pytest.raises(Empty):
        q.get(block=False)
    with pytest.raises(Empty):
        q.get(timeout=0.1)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)


def test_batches_are_all_or_nothing(ray: Any) -> None:
    q = Queue(maxsize=3)
    q.put_nowait_batch([1, 2])
    with pytest.raises(Full, match="cannot add 2 items"):
        q.put_nowait_batch([3, 4])
    assert q.size() == 2  # nothing of the refused batch went in
    with pytest.raises(Empty, match="fewer than 3"):
        q.get_nowait_batch(3)
    assert q.get_nowait_batch(2) == [1, 2]


def test_async_put_and_get(ray: Any) -> None:
    q = Queue(maxsize=1)

    async def main() -> list[Any]:
        await q.put_async("a")
        with pytest.raises(Full):
            await q.put_async("b", timeout=0.1)
        first = await q.get_async()
        with pytest.raises(Empty):
            await q.get_async(block=False)
        return [first]

    assert asyncio.run(main()) == ["a"]


def test_shutdown_ends_the_actor(ray: Any) -> None:
    q = Queue(actor_options={"name": "the-queue"})
    q.put(1)
    assert ray.get_actor("the-queue") is not None  # actor_options reach the actor
    q.shutdown()
    assert q.actor is None
    with pytest.raises(RuntimeError, match="shut down"):
        q.get()
    with pytest.raises(TypeError, match="maxsize must be an int"):
        Queue(maxsize=1.5)  # type: ignore[arg-type]
