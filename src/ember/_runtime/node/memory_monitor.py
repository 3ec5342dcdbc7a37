"""The node's memory monitor: samples the memory in use and kills workers before the kernel's
OOM killer picks a process at random (the node itself, say).

Every ``memory_monitor_refresh_ms`` (250; 0 turns it off) the node's loop reads what is in
use (``_runtime/memory.py``: the machine's, or its cgroup's when that limits it more); no
task waits for it. Above the threshold, ``_core.memory_monitor`` chooses among the
workers that hold leases; each is killed with SIGKILL and remembers why, so that its owner
is told (``WorkerExited.oom``: the task fails with ``OutOfMemoryError`` when it has no retry
left) and an actor's death or restart says so.

Settings: ``init(_system_config={"memory_usage_threshold": ..., "memory_monitor_refresh_ms":
...})``, else the environment with Ember's or Ray's names (``EMBER_MEMORY_USAGE_THRESHOLD``,
``RAY_memory_usage_threshold``; likewise ``..._MEMORY_MONITOR_REFRESH_MS``,
``..._MIN_MEMORY_FREE_BYTES``, ``..._MAX_KILL_MEMORY_BUFFER_BYTES`` and, for Ray's legacy
policy, ``..._WORKER_KILLING_POLICY_BY_GROUP=1``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ember._core import memory_monitor as mm
from ember._runtime.launch.process_config import setting
from ember._runtime.memory import cgroup_limited, cgroup_usage, machine_usage, process_used

if TYPE_CHECKING:
    from ember._runtime.node.manager import NodeManager


class NodeMemoryMonitor:
    def __init__(self, node: NodeManager) -> None:
        self.node = node
        config = node.config
        self.refresh_s = (
            setting(config.memory_monitor_refresh_ms, "memory_monitor_refresh_ms", 250) / 1000
        )
        self.policy = mm.MemoryMonitor(
            setting(
                config.memory_usage_threshold, "memory_usage_threshold", mm.DEFAULT_USAGE_THRESHOLD
            ),
            int(setting(None, "min_memory_free_bytes", -1)),
            int(setting(None, "max_kill_memory_buffer_bytes", mm.DEFAULT_MAX_KILL_BUFFER_BYTES)),
            by_owner=bool(setting(None, "worker_killing_policy_by_group", 0)),
            idle_kill_bytes=int(
                setting(
                    None, "idle_worker_killing_memory_threshold_bytes", mm.DEFAULT_IDLE_KILL_BYTES
                )
            ),
        )
        self._cgroup = False  # the node's cgroup limits it more than the machine's memory

    def start(self) -> None:
        if self.refresh_s <= 0:
            return
        machine = machine_usage()
        if machine is None:  # (not Linux)
            return
        self._cgroup = cgroup_limited(machine)
        self.node.reactor.call_later(self.refresh_s, self.check)

    def sample(self) -> mm.MemoryUsage | None:
        return cgroup_usage() if self._cgroup else machine_usage()

    def check(self) -> None:
        node = self.node
        usage = self.sample()
        if usage is not None and self.policy.over(usage):
            self.relieve(usage)
        node.reactor.call_later(self.refresh_s, self.check)

    def relieve(self, usage: mm.MemoryUsage) -> None:
        """Memory is above the threshold: kill what the policy chooses."""
        node = self.node
        pool = node.pool
        busy = node.scheduler.busy_workers()
        candidates = [
            mm.Candidate(w.worker_id, w.proc.pid, False, 0, process_used(w.proc.pid), idle=True)
            for w in pool.workers.values()
            if w.worker_id not in busy and not w.actor_id and not w.proc.has_ended()
        ]
        for worker_id, (retriable, newest, client) in busy.items():
            w = pool.get(worker_id)
            if w is None or w.proc.has_ended():
                continue
            if w.actor_id in node.actors.actors:  # (else its lease says whether it restarts)
                retriable = node.actors.may_restart(w.actor_id)
                owner = node.actors.owner_of(w.actor_id)
            else:  # (a caller's connection: its record once it said Hello)
                owner = getattr(getattr(client, "peer", None), "client_id", b"")
            used = process_used(w.proc.pid)
            candidates.append(mm.Candidate(worker_id, w.proc.pid, retriable, newest, used, owner))
        alive = {wid for wid, w in pool.workers.items() if not w.proc.has_ended()}
        chosen = self.policy.choose(usage, candidates, alive)
        where = f"IP: {node.host}, ID: {node.node_id.hex()}"
        for kill in chosen:
            why = self.policy.describe(usage, kill, where, len(chosen))
            sys.stderr.write(f"ember: memory monitor: {why}\n")
            pool.kill(kill.victim.worker_id, oom=why, oom_retry=kill.retry)
