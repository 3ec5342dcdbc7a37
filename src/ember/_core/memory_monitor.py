"""The memory monitor's decisions: when a node runs short of memory, which workers to kill.

Theory of operation (Ray 2.60's default, time-based policy): the node samples the memory in
use every ``memory_monitor_refresh_ms``. Once it passes the threshold (``memory_usage_threshold``
of the total, or the total less ``min_memory_free_bytes`` when that is larger), the workers
running tasks or actors are ordered retriable first (killing them loses no work: they run
again), then the most recently granted first (they have done the least), and taken in that
order until their memory covers what must be freed: down to the threshold, less a buffer (5%
of the total, at most ``max_kill_memory_buffer_bytes``), so that the node does not hover at
the edge and kill again at once. An idle worker (holding no lease) goes before all of them if
its own memory passes ``idle_worker_killing_memory_threshold_bytes`` (the largest first);
other idle workers, the node and drivers are never chosen. While a chosen worker is still
alive nothing more is chosen: its memory is not free yet, and the next sample would
otherwise pick another victim for the same excess.
Ray's legacy policy (``by_owner``) is here too: one worker at a time, from the owner with the
most retriable tasks running.

This module decides and nothing else: the node samples, builds the candidates, kills the
chosen ones and tells their owners why (``describe``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from ember._protocol.records import record

DEFAULT_USAGE_THRESHOLD = 0.95
DEFAULT_REFRESH_MS = 250
KILL_BUFFER_FRACTION = 0.05
DEFAULT_MAX_KILL_BUFFER_BYTES = 3 << 30
DEFAULT_IDLE_KILL_BYTES = 1 << 30
_GIB = 1 << 30


@record
class MemoryUsage:
    """A sample of the node's memory: bytes in use (not reclaimable) and the total."""

    used: int
    total: int


@record
class Candidate:
    """A worker the monitor may kill: ``order`` grows with the time its newest lease was
    granted; ``used`` is its own memory (resident, not shared), in bytes."""

    worker_id: bytes
    pid: int
    retriable: bool
    order: int
    used: int
    owner: bytes = b""  # the process whose task or actor it runs
    idle: bool = False  # it holds no lease


@record
class Kill:
    """Kill ``victim``; ``retry``: its task may run again (the legacy policy spares the last
    task of an owner that retries: it would only be killed again)."""

    victim: Candidate
    retry: bool


def threshold_bytes(total: int, fraction: float, min_free_bytes: int = -1) -> int:
    """Memory use above which the monitor kills; ``min_free_bytes`` -1: the fraction alone."""
    by_fraction = int(total * fraction)
    if min_free_bytes < 0:
        return by_fraction
    return max(by_fraction, total - min_free_bytes)


def kill_buffer_bytes(total: int, max_buffer_bytes: int = DEFAULT_MAX_KILL_BUFFER_BYTES) -> int:
    return max(0, min(int(total * KILL_BUFFER_FRACTION), max_buffer_bytes))


class MemoryMonitor:
    def __init__(
        self,
        usage_threshold: float = DEFAULT_USAGE_THRESHOLD,
        min_free_bytes: int = -1,
        max_kill_buffer_bytes: int = DEFAULT_MAX_KILL_BUFFER_BYTES,
        by_owner: bool = False,
        idle_kill_bytes: int = DEFAULT_IDLE_KILL_BYTES,
    ) -> None:
        """``by_owner``: Ray's legacy policy (``worker_killing_policy_by_group``);
        ``idle_kill_bytes``: an idle worker using more goes first (it holds no work)."""
        if not 0.0 <= usage_threshold <= 1.0:
            raise ValueError(
                f"memory_usage_threshold must be between 0 and 1, got {usage_threshold!r}"
            )
        self.usage_threshold = usage_threshold
        self.min_free_bytes = min_free_bytes
        self.max_kill_buffer_bytes = max_kill_buffer_bytes
        self.by_owner = by_owner
        self.idle_kill_bytes = idle_kill_bytes
        self._killing: set[bytes] = set()  # chosen, not known dead yet

    def threshold(self, total: int) -> int:
        return threshold_bytes(total, self.usage_threshold, self.min_free_bytes)

    def over(self, usage: MemoryUsage) -> bool:
        return usage.used > self.threshold(usage.total)

    def choose(
        self, usage: MemoryUsage, candidates: Sequence[Candidate], alive: Collection[bytes]
    ) -> list[Kill]:
        """The workers to kill now (none if memory is below the threshold, or while a worker
        chosen before is still in ``alive``, the ids of live worker processes)."""
        self._killing.intersection_update(alive)
        if self._killing or not candidates or not self.over(usage):
            return []
        big_idle = sorted(
            (c for c in candidates if c.idle and c.used > self.idle_kill_bytes),
            key=lambda c: -c.used,
        )
        busy = [c for c in candidates if not c.idle]
        if self.by_owner:
            chosen = [Kill(big_idle[0], False)] if big_idle else self._by_owner(busy)
        else:
            chosen = self._by_time(usage, big_idle + self._time_order(busy))
        self._killing.update(k.victim.worker_id for k in chosen)
        return chosen

    @staticmethod
    def _time_order(busy: Sequence[Candidate]) -> list[Candidate]:
        return sorted(busy, key=lambda c: (not c.retriable, -c.order))

    def _by_time(self, usage: MemoryUsage, ordered: Sequence[Candidate]) -> list[Kill]:
        """Take ``ordered`` until their memory covers the excess and the buffer."""
        to_free = (
            usage.used
            - self.threshold(usage.total)
            + kill_buffer_bytes(usage.total, self.max_kill_buffer_bytes)
        )
        chosen: list[Kill] = []
        for c in ordered:
            if to_free <= 0:
                break
            chosen.append(Kill(c, c.retriable))
            to_free -= c.used
        return chosen

    @staticmethod
    def _by_owner(candidates: Sequence[Candidate]) -> list[Kill]:
        """The legacy policy: one worker at a time, from the retriable tasks of the owner with
        the most running (all non-retriable ones form one group, chosen last), the group
        whose first lease is newest on a tie; in it, the newest."""
        if not candidates:
            return []
        groups: dict[bytes | None, list[Candidate]] = {}
        for c in candidates:
            groups.setdefault(c.owner if c.retriable else None, []).append(c)
        group = min(
            groups.values(),
            key=lambda g: (not g[0].retriable, -len(g), -min(c.order for c in g)),
        )
        victim = max(group, key=lambda c: c.order)
        return [Kill(victim, victim.retriable and len(group) > 1)]

    def describe(self, usage: MemoryUsage, kill: Kill, node: str, killed: int) -> str:
        """What the owner of a killed worker's task or actor is told: Ray's message, with the
        node's numbers and what to do."""
        threshold = self.threshold(usage.total)
        victim = kill.victim
        if victim.idle:
            because = (
                f"it was idle and held more than {self.idle_kill_bytes}B "
                "(`RAY_idle_worker_killing_memory_threshold_bytes`)"
            )
        elif self.by_owner:
            because = "it was the newest of the owner with the most tasks running"
        else:
            retriable = "retriable " if victim.retriable else ""
            because = f"it was the most recently granted {retriable}task"
        return (
            f"{killed} worker(s) were killed due to the node running low on memory. Memory on "
            f"the node ({node}) was {usage.used / _GIB:.2f}GB used / {usage.total / _GIB:.2f}GB "
            f"limit ({usage.used / usage.total:.6f})\n"
            f"OOM kill reason: Memory usage {usage.used}B exceeded threshold of {threshold}B "
            f"({100 * threshold / usage.total:.1f}% of {usage.total}B limit)\n"
            f"Ember killed this worker (ID: {victim.worker_id.hex()}, pid {victim.pid}, memory "
            f"used {victim.used / _GIB:.2f}GB) because {because}.\n"
            "Consider provisioning more memory on this node or reducing task parallelism by "
            "requesting more CPUs per task. Set max_retries (for an actor, max_restarts and "
            "max_task_retries) to run it again when it is killed for memory. To adjust the kill "
            "threshold, set the environment variable `RAY_memory_usage_threshold` when starting "
            "Ember. To disable worker killing, set the environment variable "
            "`RAY_memory_monitor_refresh_ms` to zero."
        )
