"""The node's worker pool, with a stand-in for the node: what it does when workers die before
they connect."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from ember._core.resources import NodeResources, shape_of
from ember._core.scheduler import Action, LeaseScheduler, Refuse, StartWorker
from ember._protocol.messages import ErrorKind
from ember._runtime.node.worker_pool import WorkerPool, WorkerProc, _Forked


class _EndedProc(_Forked):
    def __init__(self) -> None:
        super().__init__(pid=-1)

    def has_ended(self) -> bool:
        return True


class _Node:
    """Only what the pool uses of the node manager: it records the actions it is given."""

    def __init__(self, log_dir: Path) -> None:
        self.scheduler = LeaseScheduler(NodeResources({"CPU": 2}), max_starting=1)
        self.log_dir = str(log_dir)
        self.session_dir = str(log_dir)
        self.ran: list[Action] = []

    def run_actions(self, actions: list[Action]) -> None:
        self.ran.extend(actions)


def _crash(pool: WorkerPool, log_dir: Path, n: int) -> None:
    log = log_dir / f"worker-{n}.log"
    log.write_text("ImportError: no module named boom\n")
    worker_id = bytes([n]) * 12
    pool.workers[worker_id] = WorkerProc(worker_id, _EndedProc(), str(log))
    pool.reap(now=0.0)


def test_workers_that_fail_to_start_fail_the_requests_through_the_scheduler(
    tmp_path: Path, capsys: Any
) -> None:
    """Regression: after the third failure the node dropped the actions of
    ``worker_start_failed()`` and failed the queue itself; now every action is run."""
    node = _Node(tmp_path)
    pool = WorkerPool(cast(Any, node), {}, soft_limit=1)
    node.run_actions(node.scheduler.request("caller", 7, shape_of({"CPU": 1})))
    assert node.ran == [StartWorker()]
    _crash(pool, tmp_path, 1)
    _crash(pool, tmp_path, 2)
    assert node.ran == [StartWorker()] * 3  # another one each time
    _crash(pool, tmp_path, 3)
    refused = node.ran[3:]
    assert len(refused) == 1 and isinstance(refused[0], Refuse)
    assert (refused[0].client, refused[0].rid, refused[0].error) == (
        "caller",
        7,
        ErrorKind.WORKER_START_FAILED,
    )
    assert "no module named boom" in refused[0].message
    assert node.scheduler.pending() == []
    assert "a worker failed to start" in capsys.readouterr().err
