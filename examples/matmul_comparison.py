"""Plain Python versus remote functions on repeated matrix multiplication.

The benchmark seed's experiment: ``continmat`` makes a random square matrix and
multiplies it by itself ``power`` times. For k = 1 .. count, it times k calls
made one after the other in this process, then k remote calls started together
and waited for, and prints the seconds and the speedup.

The seed used 1000 x 1000 matrices and power 100 (minutes of work); the
defaults here are small so that it runs in seconds. Every call returns a
checksum of its last product, and the serial and remote checksums must agree.

numpy is limited to one thread (unless OMP_NUM_THREADS etc. are already set),
so the serial run uses one core and each task one core: the speedup then shows
what running tasks side by side gives, bounded by the number of CPUs.

Run:  python examples/matmul_comparison.py [--count 4] [--power 20] [--size 400]
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import time

import numpy as np

import ember as ray


def continmat(power=20, size=400, seed=0):
    if power <= 0:
        return 0.0
    m = np.random.default_rng(seed).standard_normal((size, size))
    for _ in range(power):
        product = np.matmul(m, m)
    return float(np.trace(product))


@ray.remote
def continmat_remote(power=20, size=400, seed=0):
    return continmat(power, size, seed)


def compare(count, power, size):
    """Rows of (k, serial seconds, remote seconds) for k = 1 .. count."""
    rows = []
    for k in range(1, count + 1):
        start = time.perf_counter()
        serial = [continmat(power, size, seed) for seed in range(k)]
        serial_seconds = time.perf_counter() - start

        start = time.perf_counter()
        task_ids = [continmat_remote.remote(power, size, seed) for seed in range(k)]
        remote = ray.get(task_ids)
        remote_seconds = time.perf_counter() - start

        assert np.allclose(serial, remote), (serial, remote)
        rows.append((k, serial_seconds, remote_seconds))
    return rows


def print_table(rows):
    print(f"{'k':>3} {'serial (s)':>11} {'remote (s)':>11} {'speedup':>8}")
    for k, serial_seconds, remote_seconds in rows:
        speedup = serial_seconds / remote_seconds if remote_seconds > 0 else float("inf")
        print(f"{k:>3} {serial_seconds:>11.3f} {remote_seconds:>11.3f} {speedup:>7.2f}x")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4, help="largest number of calls k")
    parser.add_argument("--power", type=int, default=20, help="multiplications per call")
    parser.add_argument("--size", type=int, default=400, help="matrix size (size x size)")
    parser.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs for ray.init (default: all)"
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.power < 1 or args.size < 1:
        parser.error("--count, --power and --size must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    ray.init(num_cpus=args.num_cpus)
    cpus = int(ray.cluster_resources().get("CPU", 0))
    print(
        f"continmat: {args.size}x{args.size} matrix, {args.power} products per call, "
        f"k = 1..{args.count}, {cpus} CPUs"
    )

    # Start the workers before timing, as the seed notes that start-up costs time.
    ray.get([continmat_remote.remote(1, 8, seed) for seed in range(max(cpus, 1))])

    rows = compare(args.count, args.power, args.size)
    print_table(rows)
    assert [k for k, _, _ in rows] == list(range(1, args.count + 1))
    assert all(serial > 0 and remote > 0 for _, serial, remote in rows)

    ray.shutdown()
    print("matmul_comparison: serial and remote results agree")


if __name__ == "__main__":
    main()
