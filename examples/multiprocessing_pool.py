"""A standard-library ``multiprocessing.Pool`` program, run on Ember by changing one import.

Everything below the import is plain ``multiprocessing`` code: ``Pool(processes,
initializer, initargs)`` as a context manager, ``map`` with a ``chunksize``,
``imap_unordered`` over a generator, ``starmap``, and ``apply_async`` with a callback.
Swap the import back to ``from multiprocessing import Pool`` and it prints the same. On
Ember each pool process is an actor, so with ``Pool(ray_address=...)`` (or
``EMBER_ADDRESS`` set) the same program spreads over a cluster's nodes.

Run:  python examples/multiprocessing_pool.py
"""

import os
import random

from ember.util.multiprocessing import Pool  # was: from multiprocessing import Pool

SAMPLES_PER_TASK = 20_000
SEED_BASE = None  # set in each process by the initializer


def init_worker(seed_base):
    global SEED_BASE
    SEED_BASE = seed_base


def darts_inside(task):
    """How many of SAMPLES_PER_TASK random darts land inside the unit circle."""
    rng = random.Random(SEED_BASE + task)
    hits = 0
    for _ in range(SAMPLES_PER_TASK):
        x, y = rng.random(), rng.random()
        hits += x * x + y * y <= 1.0
    return hits


def collatz_steps(start):
    n, steps = start, 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps, start


def power(base, exponent):
    return base**exponent


def main():
    with Pool(processes=2, initializer=init_worker, initargs=(1000,)) as pool:
        tasks = 40
        hits = pool.map(darts_inside, range(tasks), chunksize=5)
        pi = 4 * sum(hits) / (tasks * SAMPLES_PER_TASK)
        print(f"pi is about {pi:.4f} from {tasks * SAMPLES_PER_TASK} darts")
        assert abs(pi - 3.1416) < 0.02

        numbers = (n for n in range(1, 2001))  # a generator: read as results come back
        longest = max(pool.imap_unordered(collatz_steps, numbers, chunksize=100))
        print(f"the longest Collatz run below 2001 starts at {longest[1]}: {longest[0]} steps")
        assert longest == (181, 1161)

        assert pool.starmap(power, [(2, 10), (3, 4)]) == [1024, 81]

        done = []
        result = pool.apply_async(os.getpid, callback=done.append)
        worker_pid = result.get(timeout=60)
        assert worker_pid != os.getpid() and done == [worker_pid]
        print(f"apply_async ran in process {worker_pid}, not in {os.getpid()}")


if __name__ == "__main__":
    main()
