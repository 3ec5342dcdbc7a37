"""The node's worker pool, with a stand-in for the node: it tells the lease scheduler of
workers that die before they connect, and stops the workers the scheduler says to stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from ember._core.resources import NodeResources, shape_of
from ember._core.scheduler import Action, LeaseScheduler, Refuse, StartWorker, StopWorker
from ember._protocol.messages import ErrorKind
from ember._runtime.node.worker_pool import WorkerPool, WorkerProc, _Forked


class _Proc(_Forked):
    """A process that never runs: ended or not as the test says; kills are recorded."""

    def __init__(self, ended: bool) -> None:
        super().__init__(pid=-1)
        self.ended = ended
        self.killed = False

    def has_ended(self) -> bool:
        return self.ended

    def kill(self) -> None:
        self.killed = True


class _Owned:
    def owned_by(self, client_id: bytes) -> bool:
        return False


class _Node:
    """Only what the pool uses of the node manager: it runs the pool's StopWorker actions
    and records every action it is given."""

    def __init__(self, log_dir: Path, scheduler: LeaseScheduler) -> None:
        self.scheduler = scheduler
        self.log_dir = str(log_dir)
        self.session_dir = str(log_dir)
        self.objects = self.actors = _Owned()
        self.pool: WorkerPool | None = None
        self.ran: list[Action] = []

    def run_actions(self, actions: list[Action]) -> None:
        self.ran.extend(actions)
        for action in actions:
            if isinstance(action, StopWorker):
                assert self.pool is not None
                self.pool.kill(action.worker_id)


def _make(tmp_path: Path, scheduler: LeaseScheduler) -> tuple[_Node, WorkerPool]:
    node = _Node(tmp_path, scheduler)
    node.pool = WorkerPool(cast(Any, node), {})
    return node, node.pool


def _crash(pool: WorkerPool, log_dir: Path, n: int) -> None:
    log = log_dir / f"worker-{n}.log"
    log.write_text("ImportError: no module named boom\n")
    worker_id = bytes([n]) * 12
    pool.workers[worker_id] = WorkerProc(worker_id, _Proc(ended=True), str(log))
    pool.reap(now=0.0)


def test_workers_that_fail_to_start_fail_the_requests_with_the_last_log(
    tmp_path: Path, capsys: Any
) -> None:
    """Regression: after the third failure the node dropped the actions of
    ``worker_start_failed()`` and failed the queue itself; now every action is run."""
    node, pool = _make(tmp_path, LeaseScheduler(NodeResources({"CPU": 2}), max_starting=1))
    node.run_actions(node.scheduler.request("caller", 7, shape_of({"CPU": 1})))
    assert node.ran == [StartWorker()]
    _crash(pool, tmp_path, 1)
    _crash(pool, tmp_path, 2)
    assert node.ran == [StartWorker()] * 3  # another one each time
    _crash(pool, tmp_path, 3)
    why = (
        "Ember workers fail to start on this node. The last one's log says:\n"
        "ImportError: no module named boom\n"
    )
    assert node.ran[3:] == [Refuse("caller", 7, why, ErrorKind.WORKER_START_FAILED)]
    assert node.scheduler.pending() == [] and pool.workers == {}
    assert "a worker failed to start" in capsys.readouterr().err


def test_reap_stops_the_workers_the_scheduler_finds_idle_too_long(tmp_path: Path) -> None:
    scheduler = LeaseScheduler(NodeResources({"CPU": 2}), idle_kept=1, idle_seconds=10.0)
    node, pool = _make(tmp_path, scheduler)
    procs = {}
    for worker_id in (b"w1", b"w2"):
        procs[worker_id] = _Proc(ended=False)
        pool.workers[worker_id] = WorkerProc(worker_id, procs[worker_id], "")
        scheduler.worker_started(worker_id)
    pool.reap(now=100.0)
    pool.reap(now=105.0)
    assert node.ran == [] and not any(p.killed for p in procs.values())
    pool.reap(now=110.0)
    assert node.ran == [StopWorker(b"w1")]
    assert procs[b"w1"].killed and not procs[b"w2"].killed
