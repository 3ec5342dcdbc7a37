"""A short tour of the core API: start here.

Remote functions, tasks depending on other tasks, tasks starting tasks, an
actor, ``ray.wait``, ``ray.put`` of a numpy array, and finally the same matrix
work done serially and as parallel tasks. Takes a few seconds on two cores.

The program is a Ray program: only the import line says which framework runs it.

Run:  python examples/demo.py
"""

import os

# One numpy thread per process, so that the timing at the end compares like with like.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import time

import numpy as np

import ember as ray


def section(title):
    print(f"\n== {title}")


# 1. A remote function: calling it starts a task and returns a ref at once.
@ray.remote
def square(x):
    return x * x


# 2. Tasks can take refs as arguments: they run once those values exist.
@ray.remote
def add(x, y):
    return x + y


# 3. Tasks can start tasks.
@ray.remote
def sum_of_squares(n):
    return sum(ray.get([square.remote(i) for i in range(n)]))


# 4. An actor: a remote object with state.
@ray.remote
class Counter:
    def __init__(self):
        self.value = 0

    def increment(self, by=1):
        self.value += by
        return self.value


# 5. Tasks of different lengths, for ray.wait.
@ray.remote
def sleep_then_return(seconds):
    time.sleep(seconds)
    return seconds


# 6. A task reading a shared numpy array.
@ray.remote
def column_means(matrix):
    return matrix.mean(axis=0)


# 7. The benchmark seed's matrix work.
def continmat(power, size, seed):
    m = np.random.default_rng(seed).standard_normal((size, size))
    for _ in range(power):
        product = m @ m
    return float(np.trace(product))


@ray.remote
def continmat_remote(power, size, seed):
    return continmat(power, size, seed)


def main():
    ray.init(num_cpus=2)
    print("Started with", int(ray.cluster_resources()["CPU"]), "CPUs.")

    section("Remote functions")
    ref = square.remote(4)
    print("square.remote(4) returned", ref)
    print("ray.get of it:", ray.get(ref))
    assert ray.get(ref) == 16
    squares = ray.get([square.remote(i) for i in range(10)])
    print("ten tasks at once:", squares)
    assert squares == [i * i for i in range(10)]

    section("Dependencies")
    total = add.remote(square.remote(3), square.remote(4))
    print("add(square(3), square(4)) =", ray.get(total))
    assert ray.get(total) == 25
    chained = add.remote(total, 100)
    print("add(that, 100)            =", ray.get(chained))
    assert ray.get(chained) == 125

    section("Nested tasks")
    result = ray.get(sum_of_squares.remote(10))
    print("sum_of_squares(10), computed by ten tasks started inside a task:", result)
    assert result == 285

    section("An actor")
    counter = Counter.remote()
    for by in (1, 2, 3):
        counter.increment.remote(by)
    value = ray.get(counter.increment.remote(4))
    print("Counter after increments of 1, 2, 3 and 4:", value)
    assert value == 10

    section("ray.wait")
    refs = [sleep_then_return.remote(seconds) for seconds in (0.05, 1.0, 0.1, 1.5)]
    ready, not_ready = ray.wait(refs, num_returns=2, timeout=10)
    print(f"first 2 of 4 finished: {sorted(ray.get(ready))} (still running: {len(not_ready)})")
    assert sorted(ray.get(ready)) == [0.05, 0.1]
    assert len(not_ready) == 2

    section("ray.put of a numpy array")
    matrix = np.arange(12, dtype=np.float64).reshape(4, 3)
    matrix_ref = ray.put(matrix)
    means = ray.get([column_means.remote(matrix_ref) for _ in range(4)])
    print("4 tasks shared one stored copy; column means:", means[0])
    for m in means:
        np.testing.assert_allclose(m, [4.5, 5.5, 6.5])

    section("Serial versus parallel matrix multiplication")
    power, size, calls = 20, 400, 4
    ray.get([continmat_remote.remote(1, 8, seed) for seed in range(2)])  # warm the workers
    start = time.perf_counter()
    serial = [continmat(power, size, seed) for seed in range(calls)]
    serial_seconds = time.perf_counter() - start
    start = time.perf_counter()
    parallel = ray.get([continmat_remote.remote(power, size, seed) for seed in range(calls)])
    parallel_seconds = time.perf_counter() - start
    print(f"{calls} calls of {power} products of {size}x{size} matrices:")
    print(f"  serial   {serial_seconds:.3f} s")
    print(f"  parallel {parallel_seconds:.3f} s  ({serial_seconds / parallel_seconds:.2f}x)")
    assert np.allclose(serial, parallel)

    ray.shutdown()
    print("\nDemo finished: every result was checked.")


if __name__ == "__main__":
    main()
