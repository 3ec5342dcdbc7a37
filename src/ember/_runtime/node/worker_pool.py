"""The node manager's worker pool: forking workers, noticing how they end, stopping them.

Workers are forked from the node process (which has the runtime imported and no threads), so
a start costs milliseconds. The lease scheduler decides when to start or stop one (idle ones
too) and when to give up on workers that die before they connect; the pool carries that out,
tells it of such deaths with the end of their logs, and keeps each worker's process, so that
a caller or an actor's restart can be told how a process ended (its exit status and log).
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ember import exceptions as exc
from ember._core.log_files import worker_log_name
from ember._protocol import ids
from ember._protocol import messages as m
from ember._runtime.launch.cluster_files import describe_logs, log_tail
from ember._transport.reactor import Connection

if TYPE_CHECKING:
    from ember._runtime.node.manager import NodeManager, _Client

# Workers whose process ended, kept so that a caller can still ask how (WorkerExit).
_ENDED_WORKERS_KEPT = 64
# A worker's connection closes a moment before its process can be reaped: how long to wait
# for its exit status, and how often to look.
_EXIT_WAIT_SECONDS = 1.0
_EXIT_POLL_SECONDS = 0.005


class _Forked:
    """A worker forked from this process. ``returncode`` is its exit status as Popen has it
    (a signal as its negative number) once it is reaped, and stays None for one that ended
    with a status nobody can tell (reaped elsewhere: not this process's child any more)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._ended = False

    def has_ended(self) -> bool:
        if not self._ended:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self._ended = True
                return True
            if pid:
                self._ended = True
                self.returncode = os.waitstatus_to_exitcode(status)
        return self._ended

    def kill(self) -> None:
        if not self._ended:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.has_ended() and time.monotonic() < deadline:
            time.sleep(0.002)


@dataclass
class WorkerProc:
    worker_id: bytes
    proc: _Forked
    log_path: str
    client: _Client | None = None  # once it has connected
    actor_id: bytes = b""  # the actor it hosts, if any
    oom: str = ""  # why the memory monitor killed it, if it did
    oom_retry: bool = True  # and whether its task may run again
    runtime_env: str = ""  # the env it is set up for (canonical text)
    started: float = 0.0  # when it was forked, and when its connection closed (time.time())
    ended_at: float = 0.0


class WorkerPool:
    def __init__(self, node: NodeManager, worker_env: dict[str, str]) -> None:
        self.node = node
        self.worker_env = worker_env
        self.workers: dict[bytes, WorkerProc] = {}
        self.ended: collections.OrderedDict[bytes, WorkerProc] = collections.OrderedDict()
        self.exited: list[_Forked] = []  # ended processes not reaped yet

    def __len__(self) -> int:
        return len(self.workers)

    def get(self, worker_id: bytes) -> WorkerProc | None:
        return self.workers.get(worker_id)

    def start(self, runtime_env: str = "") -> None:
        """Fork a worker: this process has the runtime imported and no threads, so a fork
        costs a few milliseconds where starting an interpreter costs a hundred or more. A
        worker for a runtime env sets itself up (see ``worker/runtime_env.py``)."""
        node = self.node
        worker_id = node.node_id[:4] + ids.random_id(8)
        pid = os.fork()
        log_path = os.path.join(node.log_dir, worker_log_name(worker_id, pid or os.getpid()))
        if pid == 0:
            self._become_worker(worker_id, log_path, runtime_env)
        self.workers[worker_id] = WorkerProc(
            worker_id, _Forked(pid), log_path, runtime_env=runtime_env, started=time.time()
        )

    def _become_worker(self, worker_id: bytes, log_path: str, runtime_env: str) -> None:
        code = 1
        node = self.node
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            node.reactor.close_in_child()
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
            sys.stdout = open(1, "w", buffering=1, closefd=False)
            sys.stderr = open(2, "w", buffering=1, closefd=False)
            os.environ.clear()
            os.environ.update(self.worker_env)
            from ember._runtime.worker import worker  # already imported by start(): no cost here

            listen = f"tcp:{node.host}:0" if node.clustered else ""
            argv = [node.address, node.control_address, node.session_dir, worker_id.hex(), listen]
            token = node.token if node.clustered else None
            setup_error = ""
            if runtime_env:
                from ember._runtime.worker import runtime_env as worker_env

                # (returns only if the env has no pip, or its venv failed)
                setup_error = worker_env.exec_in_venv(runtime_env, argv, token, node.session_dir)
            worker.main(argv, token=token, runtime_env=runtime_env, setup_error=setup_error)
            code = 0
        except BaseException:  # a child must never return into the node's loop
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)

    def connected(self, client: _Client) -> bool:
        """A worker said Hello; False if it is not one this pool started."""
        w = self.workers.get(client.client_id)
        if w is None:
            return False
        w.client = client
        return True

    def host(self, worker_id: bytes, actor_id: bytes) -> Connection:
        """The worker is leased to an actor for good: its connection, to start the actor on."""
        w = self.workers[worker_id]
        w.actor_id = actor_id
        assert w.client is not None
        return w.client.conn

    def kill(self, worker_id: bytes, oom: str = "", oom_retry: bool = True) -> None:
        """End a worker's process; ``oom``: the memory monitor's reason, told to whoever asks
        how it ended, with whether its task may run again."""
        w = self.workers.get(worker_id)
        if w is not None:
            if oom and not w.oom:
                w.oom, w.oom_retry = oom, oom_retry
            with contextlib.suppress(OSError):
                w.proc.kill()

    def disconnected(self, worker_id: bytes) -> WorkerProc | None:
        """A worker's connection closed: it is gone from the pool (its process is reaped
        later, without blocking the loop; how it ended stays known for a while)."""
        w = self.workers.pop(worker_id, None)
        if w is None:
            return None
        if not w.proc.has_ended():
            self.exited.append(w.proc)
        w.ended_at = time.time()
        self.ended[w.worker_id] = w
        while len(self.ended) > _ENDED_WORKERS_KEPT:
            self.ended.popitem(last=False)
        return w

    def reap(self, now: float) -> None:
        """Notice workers that exited without ever connecting (a crash at start-up), reap
        ended processes, and let the scheduler stop workers that idled too long."""
        node = self.node
        for w in list(self.workers.values()):
            if w.proc.has_ended() and w.client is None:
                del self.workers[w.worker_id]
                tail = log_tail(w.log_path, 20)
                sys.stderr.write(f"ember: a worker failed to start:\n{tail}\n")
                node.run_actions(node.scheduler.worker_start_failed(tail, w.runtime_env))
        self.exited = [p for p in self.exited if not p.has_ended()]
        node.run_actions(node.scheduler.idle_check(now, self._owns_anything))
        node.run_actions(node.scheduler.stalled_check(now))

    def _owns_anything(self, worker_id: bytes) -> bool:
        """Do objects, actors or leases of its own (as a caller) still depend on it?"""
        node = self.node
        w = self.workers.get(worker_id)
        conn = w.client.conn if w is not None and w.client is not None else None
        return (
            (conn is not None and node.scheduler.has_client(conn))
            or node.objects.owned_by(worker_id)
            or node.actors.owned_by(worker_id)
        )

    def when_exited(
        self, w: WorkerProc, then: Callable[[], None], deadline: float | None = None
    ) -> None:
        """Call ``then`` once the worker's exit status is known (or after a second: a process
        whose connection closed is normally reaped within milliseconds), without blocking."""
        now = time.monotonic()
        deadline = now + _EXIT_WAIT_SECONDS if deadline is None else deadline
        if w.proc.has_ended() or now >= deadline:
            then()
        else:
            self.node.reactor.call_later(
                _EXIT_POLL_SECONDS, lambda: self.when_exited(w, then, deadline)
            )

    def worker_exit(self, conn: Connection, msg: m.WorkerExit) -> None:
        """A caller asks how a worker's process ended (its connection to it closed)."""
        w = self.workers.get(msg.worker_id) or self.ended.get(msg.worker_id)
        if w is None:
            conn.send(m.WorkerExited(rid=msg.rid))
            return
        session_dir = self.node.session_dir
        self.when_exited(
            w,
            lambda: conn.send(
                m.WorkerExited(
                    rid=msg.rid,
                    pid=w.proc.pid,
                    code=w.proc.returncode,
                    log=w.log_path,
                    log_note=describe_logs(w.log_path, session_dir),
                    oom=w.oom,
                    oom_retry=w.oom_retry,
                )
            ),
        )

    def process_end(self, w: WorkerProc) -> str:
        """How an actor's process ended, for its death or restart."""
        end = (
            f"its worker process (pid {w.proc.pid}, log "
            f"{describe_logs(w.log_path, self.node.session_dir)}) "
            f"{exc.describe_exit(w.proc.returncode)}"
        )
        return f"{end}, by the memory monitor. {w.oom.rstrip('.')}" if w.oom else end

    def stop_all(self) -> None:
        """Kill every worker process this node started and wait for them (the node ends)."""
        procs = [w.proc for w in self.workers.values()] + self.exited
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(timeout=5)
