#!/usr/bin/env python
"""What recording task events costs: the owner's append per event, and no-op tasks with
``enable_task_events`` on and off.

Usage::

    python benchmarks/task_events_overhead.py [--tasks N] [--rounds R]

Prints the cost of the events a task records (submitted, pushed, ended: three appends of
a tuple to the bounded ring, as the client does) in nanoseconds, then the time per task of
``get(f.remote())`` in a loop (sync) and of ``get([f.remote() for _ in range(N)])``
(async), with events on and off, alternating rounds and taking medians so that the machine's
drift falls on both alike. Ember only: it measures Ember's recorder against itself.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit


def record_cost_ns(n: int = 200_000) -> float:
    """The appends one normal task costs its owner (three events), as the client makes them."""
    from ember._core import task_events as te

    buf = te.EventBuffer()
    record = buf.record
    task_id, job, parent, shape, node, worker = (
        b"t" * 12,
        b"j" * 4,
        b"",
        (("CPU", 10000),),
        b"n",
        b"w",
    )
    ran = (1.0, 2.0, 1234, worker)
    now = time.time

    def one_task() -> None:
        record((te.SUBMITTED, task_id, now(), te.NORMAL_TASK, "f", "", b"", job, parent, shape, ()))
        record((te.PUSHED, task_id, now(), node, worker))
        record((te.ENDED, task_id, now(), ran, None))

    per_loop = min(timeit.repeat(one_task, number=n, repeat=5)) / n
    buf.drain()
    return per_loop * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per mode (default 7)")
    args = parser.parse_args()

    print(f"recording a task's events (3 appends): {record_cost_ns():.0f} ns")

    import ember

    ember.init(num_cpus=2)

    @ember.remote
    def noop() -> None:
        return None

    modes = {
        "on": noop.options(enable_task_events=True),
        "off": noop.options(enable_task_events=False),
    }

    def sync(f: ember.RemoteFunction) -> float:
        begin = time.perf_counter()
        for _ in range(args.tasks):
            ember.get(f.remote())
        return (time.perf_counter() - begin) / args.tasks

    def asynchronous(f: ember.RemoteFunction) -> float:
        begin = time.perf_counter()
        ember.get([f.remote() for _ in range(args.tasks)])
        return (time.perf_counter() - begin) / args.tasks

    for name, run in (("sync", sync), ("async", asynchronous)):
        samples: dict[str, list[float]] = {"on": [], "off": []}
        for f in modes.values():  # warm-up
            run(f)
        for _ in range(args.rounds):
            for mode, f in modes.items():
                samples[mode].append(run(f))
        on, off = (statistics.median(samples[m]) for m in ("on", "off"))
        print(
            f"tasks {name:5}: events on {on * 1e6:6.1f} us/task, off {off * 1e6:6.1f} us/task, "
            f"overhead {(on / off - 1) * 100:+.1f} %"
        )
    ember.shutdown()


if __name__ == "__main__":
    main()
