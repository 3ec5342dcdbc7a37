"""Ray generators: a task or actor method that ``yield``s streams its results.

After Ray's "Ray Generators" guide:

* A remote function that yields returns an ``ObjectRefGenerator`` at once; each
  ``next(gen)`` (or ``for ref in gen``) gives the ref of the next item as soon as
  the task has yielded it, long before the task ends.
* An actor method that yields does the same, and ``async for`` works in asyncio.
* An exception raised by the generator is the item after the last it yielded.
* ``_generator_backpressure_num_objects=2`` pauses the generator while two of its
  items wait to be taken.
* ``ray.wait`` takes generators: one is ready when ``next`` would not block.

Run:  python examples/streaming_generator.py
"""

import asyncio
import time

import ember as ray


@ray.remote
def countdown(n, seconds):
    for i in range(n, 0, -1):
        time.sleep(seconds)
        yield i


@ray.remote
def read_chunks(text, size):
    for start in range(0, len(text), size):
        if text[start] == "!":
            raise ValueError(f"bad chunk at {start}")
        yield text[start : start + size]


@ray.remote(_generator_backpressure_num_objects=2)
def produce(log, n):
    for i in range(n):
        ray.get(log.add.remote(i))
        yield i * i


@ray.remote
class Log:
    def __init__(self):
        self.items = []

    def add(self, item):
        self.items.append(item)

    def produced(self):
        return len(self.items)

    def lines(self, prefix):
        for item in self.items:
            yield f"{prefix}{item}"


def main():
    ray.init(num_cpus=2)

    # Items arrive as they are yielded: the first long before the task ends.
    start = time.perf_counter()
    gen = countdown.remote(5, 0.2)
    first = ray.get(next(gen))
    first_after = time.perf_counter() - start
    rest = [ray.get(ref) for ref in gen]
    total = time.perf_counter() - start
    print(f"countdown: {first} after {first_after:.2f} s, then {rest} by {total:.2f} s")
    assert [first, *rest] == [5, 4, 3, 2, 1]
    assert first_after < total

    # An error is the item after the last one yielded; the earlier ones stay readable.
    chunks = []
    for ref in read_chunks.remote("abcdefgh!ij", 4):
        try:
            chunks.append(ray.get(ref))
        except ValueError as e:
            chunks.append(f"error: {e.cause}")  # (the task's own ValueError)
    print("chunks:", chunks)
    assert chunks[:2] == ["abcd", "efgh"] and chunks[2].startswith("error")

    # Backpressure: the producer never runs more than two items ahead of the consumer.
    log = Log.remote()
    squares = []
    for i, ref in enumerate(produce.remote(log, 8)):
        assert ray.get(log.produced.remote()) <= i + 3
        squares.append(ray.get(ref))
    print("squares:", squares)
    assert squares == [i * i for i in range(8)]

    # An actor method that yields, read with async for.
    async def lines():
        return [await ref async for ref in log.lines.remote("item ")]

    print("lines:", asyncio.run(lines()))

    # wait() takes generators: the quick one is ready first.
    slow, quick = countdown.remote(1, 1.0), countdown.remote(1, 0.0)
    ready, _ = ray.wait([slow, quick], num_returns=1)
    assert ready == [quick]
    print("first ready: the quick generator")
    assert [ray.get(ref) for ref in slow] == [1]

    ray.shutdown()


if __name__ == "__main__":
    main()
