#!/usr/bin/env python
"""What recording task events costs: the owner's append per event, and no-op tasks with
``enable_task_events`` on and off.

Usage::

    python benchmarks/task_events_overhead.py [--tasks N] [--rounds R]

Prints the cost of the events a task records (submitted, pushed, ended: three appends of
a tuple to the bounded ring, as the client does) in nanoseconds, then the time per task of
``get(f.remote())`` in a loop (sync) and of ``get([f.remote() for _ in range(N)])``
(async), with events on and off, alternating rounds and taking medians so that the machine's
drift falls on both alike, in wall time and in the CPU time of the driver, its node and the
workers (which other load on the machine disturbs less). Ember only: it measures Ember's
recorder against itself.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit
from collections.abc import Callable


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
        record((te.PUSHED, task_id, now(), node, worker, True))
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

    import psutil

    me = psutil.Process()

    def cpu_seconds() -> float:
        """CPU used by this process and the node and workers it started: what recording
        and shipping cost, less sensitive than wall time to other load on the machine."""
        total = sum(me.cpu_times()[:2])
        for child in me.children(recursive=True):
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.Error:
                pass
        return total

    def measured(work: Callable[[], None]) -> tuple[float, float]:
        """Wall time per task, and CPU per task counted until the round's events have been
        shipped and merged (a report interval later)."""
        cpu, begin = cpu_seconds(), time.perf_counter()
        work()
        wall = time.perf_counter() - begin
        time.sleep(1.2)
        return wall / args.tasks, (cpu_seconds() - cpu) / args.tasks

    def sync(f: ember.RemoteFunction) -> tuple[float, float]:
        def work() -> None:
            for _ in range(args.tasks):
                ember.get(f.remote())

        return measured(work)

    def asynchronous(f: ember.RemoteFunction) -> tuple[float, float]:
        def work() -> None:
            ember.get([f.remote() for _ in range(args.tasks)])

        return measured(work)

    for name, run in (("sync", sync), ("async", asynchronous)):
        samples: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
        for f in modes.values():  # warm-up
            run(f)
        for _ in range(args.rounds):
            for mode, f in modes.items():
                samples[mode].append(run(f))
        (on, on_cpu), (off, off_cpu) = (
            (
                statistics.median(s[0] for s in samples[m]),
                statistics.median(s[1] for s in samples[m]),
            )
            for m in ("on", "off")
        )
        print(
            f"tasks {name:5}: events on {on * 1e6:6.1f} us/task, off {off * 1e6:6.1f} us/task, "
            f"overhead {(on / off - 1) * 100:+.1f} %; CPU of all processes on "
            f"{on_cpu * 1e6:6.1f} us/task, off {off_cpu * 1e6:6.1f} us/task, "
            f"{(on_cpu / off_cpu - 1) * 100:+.1f} %"
        )
    ember.shutdown()


if __name__ == "__main__":
    main()
