"""System tests: generator tasks and actor methods (``ObjectRefGenerator``, dynamic returns).

Checked against real Ray 2.60. Things Ray does that may surprise an implementer:
- A function that yields is a streaming generator by default: ``.remote()`` returns an
  ``ObjectRefGenerator`` of refs, one per item, each available as soon as it is yielded.
- An exception raised by the generator is one more item, after those it yielded: ``get`` of
  that item raises it, ``next`` after it stops, and ``completed()`` holds None. A failure
  around the task (its worker died) is instead held by ``completed()``, which ``next`` hands
  out once after the items.
- A retried generator (``max_retries`` after a crash, ``retry_exceptions``) runs again from
  its start, and the items the caller already has are not handed out twice.
- ``wait`` takes generators: one is ready when ``next`` would not block, including when it
  would stop. ``get`` of a generator is not supported (Ray hands the generator back).
- ``num_returns="dynamic"`` returns one ref whose value is a ``DynamicObjectRefGenerator``
  of the items' refs (deprecated in Ray, which warns); an exception raised by the generator
  is its last ref, and ``get`` of the task's ref does not raise.
- A generator called with a fixed ``num_returns=N`` fills its N refs as it yields; when it
  raises (or yields fewer) the refs left hold the error, and a value too many only ends it.
- Ray drives the generator with ``send``, so ``yield from`` an iterator that has no ``send``
  (``yield from range(n)``) fails there; these tests loop instead.
"""

# ruff: noqa: UP028  (no ``yield from``: see the last point above)

from __future__ import annotations

import asyncio
import os
import pickle

import pytest

from tests._helpers import wait_until

T = 30  # upper bound for every get: a bug fails the test instead of hanging it


def _values(ray, gen):
    out = []
    for ref in gen:
        try:
            out.append(ray.get(ref, timeout=T))
        except Exception as e:  # the item holds an error: record its kind (the cause's)
            out.append(type(getattr(e, "cause", None) or e).__name__)
    return out


def test_a_function_that_yields_streams_its_items(ray):
    @ray.remote
    def count(n):
        for i in range(n):
            yield i

    gen = count.remote(3)
    assert isinstance(gen, ray.ObjectRefGenerator)
    assert [ray.get(ref, timeout=T) for ref in gen] == [0, 1, 2]
    with pytest.raises(StopIteration):
        next(gen)
    assert ray.get(gen.completed(), timeout=T) is None
    assert gen.is_finished()


def test_items_are_available_before_the_task_ends(ray, signal_cls):
    sig = signal_cls.remote()

    @ray.remote
    def first_then_wait(sig):
        yield "first"
        ray.get(sig.wait.remote())
        yield "second"

    gen = first_then_wait.remote(sig)
    assert ray.get(next(gen), timeout=T) == "first"
    ready, _ = ray.wait([gen.completed()], timeout=0)
    assert not ready  # the task still runs
    ray.get(sig.send.remote(), timeout=T)
    assert ray.get(next(gen), timeout=T) == "second"
    with pytest.raises(StopIteration):
        next(gen)


def test_a_task_iterates_another_tasks_generator(ray):
    @ray.remote
    def produce(n):
        for i in range(n):
            yield i

    @ray.remote
    def consume(n):
        return sum(ray.get(ref) for ref in produce.remote(n))

    assert ray.get(consume.remote(5), timeout=T) == 10


def test_large_items_go_through_the_store(ray):
    np = pytest.importorskip("numpy")

    @ray.remote(num_returns="streaming")
    def arrays():
        for i in range(3):
            yield np.full(200_000, i, dtype=np.int64)

    assert [int(ray.get(ref, timeout=T)[-1]) for ref in arrays.remote()] == [0, 1, 2]


def test_async_for_over_a_generator(ray):
    @ray.remote
    def count(n):
        for i in range(n):
            yield i

    async def consume():
        return [await ref async for ref in count.remote(4)]

    assert asyncio.run(consume()) == [0, 1, 2, 3]


def test_actor_methods_stream_on_every_kind_of_actor(ray):
    @ray.remote
    class Sync:
        def items(self, n):
            for i in range(n):
                yield i

    @ray.remote(max_concurrency=2)
    class Threaded:
        def items(self, n):
            for i in range(n):
                yield i

    @ray.remote
    class Async:
        async def items(self, n):
            for i in range(n):
                await asyncio.sleep(0)
                yield i

        def sync_items(self, n):
            for i in range(n):
                yield i

    for cls in (Sync, Threaded):
        actor = cls.remote()
        assert [ray.get(r, timeout=T) for r in actor.items.remote(3)] == [0, 1, 2]
    actor = Async.remote()
    assert [ray.get(r, timeout=T) for r in actor.items.remote(3)] == [0, 1, 2]
    assert [ray.get(r, timeout=T) for r in actor.sync_items.remote(2)] == [0, 1]


def test_an_error_is_the_item_after_the_last_yielded(ray):
    @ray.remote
    def fails_at(n):
        for i in range(5):
            if i == n:
                raise ValueError(f"no {i}")
            yield i

    gen = fails_at.remote(2)
    assert ray.get(next(gen), timeout=T) == 0
    assert ray.get(next(gen), timeout=T) == 1
    bad = next(gen)
    with pytest.raises(ValueError, match="no 2") as info:
        ray.get(bad, timeout=T)
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    with pytest.raises(StopIteration):
        next(gen)
    assert ray.get(gen.completed(), timeout=T) is None


def test_a_failed_argument_fails_the_generator_task(ray):
    @ray.remote(max_retries=0)
    def broken():
        raise ValueError("no argument")

    @ray.remote
    def echo(x):
        yield x

    gen = echo.remote(broken.remote())
    refs = list(gen)  # the task never ran: its own ref holds the error, handed out once
    assert len(refs) == 1
    with pytest.raises(ValueError, match="no argument"):
        ray.get(refs[0], timeout=T)
    with pytest.raises(ValueError, match="no argument"):
        ray.get(gen.completed(), timeout=T)


def test_a_retried_generator_hands_out_no_item_twice(ray, tmp_path):
    @ray.remote(retry_exceptions=True, max_retries=2)
    def flaky(flag):
        for i in range(4):
            if i == 2 and not os.path.exists(flag):
                open(flag, "w").close()
                raise ValueError("first attempt")
            yield i

    assert _values(ray, flaky.remote(str(tmp_path / "raised"))) == [0, 1, 2, 3]


def test_a_worker_dying_mid_stream_is_retried_without_duplicates(ray, tmp_path):
    @ray.remote(max_retries=1)
    def dies_once(flag):
        for i in range(4):
            if i == 2 and not os.path.exists(flag):
                open(flag, "w").close()
                os._exit(1)
            yield i

    assert _values(ray, dies_once.remote(str(tmp_path / "died"))) == [0, 1, 2, 3]


def test_a_worker_dying_mid_stream_raises_at_the_next_item(ray, signal_cls):
    sig = signal_cls.remote()

    @ray.remote(max_retries=0)
    def dies(sig):
        yield 1
        ray.get(sig.wait.remote())  # (the item is surely out before the process ends)
        os._exit(1)

    gen = dies.remote(sig)
    assert ray.get(next(gen), timeout=T) == 1
    ray.get(sig.send.remote(), timeout=T)
    assert _values(ray, gen) == ["WorkerCrashedError"]
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(gen.completed(), timeout=T)


def test_an_actor_restarted_mid_stream_hands_out_no_item_twice(ray, tmp_path):
    @ray.remote(max_restarts=1, max_task_retries=1)
    class Source:
        def items(self, flag):
            for i in range(4):
                if i == 2 and not os.path.exists(flag):
                    open(flag, "w").close()
                    os._exit(1)
                yield i

    source = Source.remote()
    assert _values(ray, source.items.remote(str(tmp_path / "died"))) == [0, 1, 2, 3]


def test_cancel_a_generator(ray, signal_cls):
    sig = signal_cls.remote()

    @ray.remote
    def waits_after_one(sig):
        yield 1
        ray.get(sig.wait.remote())
        yield 2

    gen = waits_after_one.remote(sig)
    assert ray.get(next(gen), timeout=T) == 1
    ray.cancel(gen)
    rest = [next(gen)]
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(rest[0], timeout=T)
    rest += list(gen)  # nothing more after the cancel
    assert len(rest) == 1


def test_cancel_a_generator_paused_by_backpressure(ray):
    @ray.remote(_generator_backpressure_num_objects=1)
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    gen = endless.remote()
    assert ray.get(next(gen), timeout=T) == 0
    ray.cancel(gen)
    rest = _values(ray, gen)
    assert rest[-1] == "TaskCancelledError" and len(rest) <= 2, rest


def test_wait_takes_generators(ray, signal_cls):
    sig = signal_cls.remote()

    @ray.remote
    def gated(sig):
        ray.get(sig.wait.remote())
        yield "after"

    @ray.remote
    def quick():
        yield "now"

    slow, fast = gated.remote(sig), quick.remote()
    ready, not_ready = ray.wait([slow, fast], num_returns=1, timeout=T)
    assert ready == [fast] and not_ready == [slow]
    assert ray.get(next(fast), timeout=T) == "now"
    ready, _ = ray.wait([fast], timeout=T)  # next() would stop now: ready too
    assert ready == [fast]
    with pytest.raises(StopIteration):
        next(fast)
    ready, _ = ray.wait([slow], timeout=0)
    assert not ready
    ray.get(sig.send.remote(), timeout=T)
    ref = ray.put("plain")
    ready, _ = ray.wait([slow, ref], num_returns=2, timeout=T)
    assert len(ready) == 2
    assert ray.get(next(slow), timeout=T) == "after"


def test_backpressure_pauses_the_generator(ray):
    @ray.remote(num_cpus=0)
    class Produced:
        def __init__(self):
            self.n = 0

        def one(self):
            self.n += 1

        def count(self):
            return self.n

    produced = Produced.remote()

    @ray.remote(_generator_backpressure_num_objects=2)
    def fast(produced, n):
        for i in range(n):
            ray.get(produced.one.remote())
            yield i

    gen = fast.remote(produced, 20)
    wait_until(
        lambda: ray.get(produced.count.remote(), timeout=T),
        T,
        "two items produced",
        until=lambda k: k >= 2,
    )
    for i in range(20):
        # Never more than the items taken (i) plus the 2 allowed ahead, plus the one whose
        # production the take just allowed.
        assert ray.get(produced.count.remote(), timeout=T) <= i + 3
        assert ray.get(next(gen), timeout=T) == i
    with pytest.raises(StopIteration):
        next(gen)


@pytest.mark.ember_only  # Ray 2.60 pauses on the actor's loop: its other calls wait meanwhile
def test_a_paused_generator_does_not_hold_up_an_async_actor(ray):
    @ray.remote
    class Async:
        def __init__(self):
            self.made = 0

        @ray.method(_generator_backpressure_num_objects=1)
        def sync_items(self, n):
            for i in range(n):
                self.made += 1
                yield i

        @ray.method(_generator_backpressure_num_objects=1)
        async def async_items(self, n):
            for i in range(n):
                self.made += 1
                yield i

        def made_so_far(self):
            return self.made

    for method in ("async_items", "sync_items"):
        actor = Async.remote()
        gens = [getattr(actor, method).remote(10) for _ in range(12)]  # (more than threads)
        for gen in gens:
            assert ray.get(next(gen), timeout=T) == 0
        # All paused by backpressure: the actor still answers, and made no more than allowed.
        assert ray.get(actor.made_so_far.remote(), timeout=T) <= 12 * 3
        for gen in reversed(gens):
            assert [ray.get(r, timeout=T) for r in gen] == list(range(1, 10))


def test_dropping_a_paused_generator_lets_its_task_finish(ray):
    @ray.remote(_generator_backpressure_num_objects=1)
    def items(n):
        for i in range(n):
            yield i

    gen = items.remote(5)
    done = gen.completed()
    assert ray.get(next(gen), timeout=T) == 0
    del gen
    assert ray.get(done, timeout=T) is None


def test_dynamic_returns(ray):
    @ray.remote(num_returns="dynamic")
    def split(n):
        for i in range(n):
            yield i

    ref = split.remote(3)
    dyn = ray.get(ref, timeout=T)
    assert isinstance(dyn, ray.DynamicObjectRefGenerator)
    assert len(dyn) == 3
    assert [ray.get(r, timeout=T) for r in dyn] == [0, 1, 2]

    @ray.remote(num_returns="dynamic")
    def broken():
        yield 1
        raise ValueError("broken")

    assert _values(ray, ray.get(broken.remote(), timeout=T)) == [1, "ValueError"]

    @ray.remote
    class Splitter:
        @ray.method(num_returns="dynamic")
        def split(self, n):
            for i in range(n):
                yield i

    refs = ray.get(Splitter.remote().split.remote(2), timeout=T)
    assert [ray.get(r, timeout=T) for r in refs] == [0, 1]


def test_a_generator_with_a_fixed_count_fills_that_many_refs(ray):
    @ray.remote(num_returns=2)
    def pair():
        yield "a"
        yield "b"

    assert ray.get(pair.remote(), timeout=T) == ["a", "b"]

    @ray.remote(num_returns=1)
    def one():
        yield "only"

    assert ray.get(one.remote(), timeout=T) == "only"

    @ray.remote
    def count(n, fail=False):
        for i in range(n):
            yield i
        if fail:
            raise KeyError("broken")

    # The values yielded before an error stand; the refs left hold the error.
    assert _values(ray, count.options(num_returns=4).remote(2, fail=True)) == [
        0,
        1,
        "KeyError",
        "KeyError",
    ]
    # Too few values: the refs left hold a ValueError; too many: the first ones are kept.
    assert _values(ray, count.options(num_returns=3).remote(2)) == [0, 1, "ValueError"]
    assert _values(ray, count.options(num_returns=3).remote(5)) == [0, 1, 2]


def test_bad_uses_are_refused(ray):
    with pytest.raises(ValueError, match="generator"):

        @ray.remote(num_returns="streaming")
        def not_a_generator():
            return 1

    @ray.remote
    def count():
        yield 1

    gen = count.remote()
    with pytest.raises(TypeError, match="generator"):
        pickle.dumps(gen)
    with pytest.raises(ValueError, match="_generator_backpressure_num_objects"):
        count.options(_generator_backpressure_num_objects=0)
    assert [ray.get(r, timeout=T) for r in gen] == [1]


@pytest.mark.ember_only
def test_generators_in_local_mode(start_ember):
    ray = start_ember(local_mode=True)

    @ray.remote
    def fails_at(n):
        for i in range(n):
            yield i
        raise ValueError("end")

    assert _values(ray, fails_at.remote(2)) == [0, 1, "ValueError"]

    @ray.remote(num_returns="dynamic")
    def split(n):
        for i in range(n):
            yield i

    assert [ray.get(r) for r in ray.get(split.remote(2))] == [0, 1]


@pytest.mark.ember_only
def test_get_of_a_generator_says_what_to_do(ray):
    @ray.remote
    def count():
        yield 1

    gen = count.remote()
    with pytest.raises(ValueError, match="iterate it"):
        ray.get(gen)
    assert [ray.get(r, timeout=T) for r in gen] == [1]


@pytest.mark.ember_only
def test_large_items_made_on_another_node(make_cluster):
    np = pytest.importorskip("numpy")
    import ember
    from ember.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    other = cluster.nodes[1].node_id

    @ember.remote
    def arrays():
        for i in range(3):
            yield np.full(200_000, i, dtype=np.int64)

    on_other = NodeAffinitySchedulingStrategy(other, soft=False)
    gen = arrays.options(scheduling_strategy=on_other).remote()
    assert [int(ember.get(ref, timeout=T)[0]) for ref in gen] == [0, 1, 2]
