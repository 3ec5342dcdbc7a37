"""The client's decisions about its tasks and the leases that run them.

Theory of operation: tasks whose arguments are ready queue per *key* (resource shape and
placement). For each key the client asks its node for leases, up to the queue length (at most
``MAX_LEASE_REQUESTS`` at a time); a lease names a worker, and tasks are pushed straight to
it, one at a time, or two when the node said it has no room for another lease of that shape
(``saturated``): the second hides the round trip between one task's end and the next one's
start. A task queued behind another still wants a worker of its own, so its request stays
open, and a lease that becomes free asks for it back (*take-back*) if it has not started. A
node with no room may answer a request by naming another node (*spill*); the client asks that
one. A lease left without tasks goes back after ``IDLE_LEASE_SECONDS`` (a loop of
submit-and-get reuses it meanwhile), or at once if the node revokes it.

When a worker dies, the client asks its node how it ended (the node may see the end after
this process did), then the task it ran is retried while it has retries left, else fails
with that. A worker the node's memory monitor killed uses one of the task's OOM retries
instead (``task_oom_retries``, for tasks with ``max_retries`` != 0, as in Ray), after a
backoff; a task queued behind it most likely never ran, and queues again without using a
retry. A task whose stored result
was lost with its node runs again (*lineage*), also within its retries.

This class decides and nothing else: the client feeds it events (a task ready or an
argument of it failed, a lease granted, spilled or refused, a task done, a worker lost, a
cancel, a re-run, the time) and carries out
every action it returns, in order. It holds no sockets, threads or clocks; the client's
records for tasks extend ``Task``, and ``Lease.via``/``Lease.peer`` are the client's handles
for the node that granted a lease and the worker it names, opaque here.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

from ember import exceptions as exc
from ember._core.resources import Shape, shape_dict
from ember._protocol.messages import ReturnValue
from ember._protocol.records import record

# A lease left without tasks goes back this long after (a loop of submit-and-get reuses it
# meanwhile): until then its resources count as used in available_resources().
IDLE_LEASE_SECONDS = 0.1
MAX_LEASE_REQUESTS = 16
# When the node has no room for another lease of a shape, a lease may carry a second task
# queued behind the first. (Not for GPU tasks: a task queued behind a blocked one may start
# beside it, in the same process.)
PIPELINE_DEPTH = 2
# A task the memory monitor killed runs again after a backoff (by default, Ray's
# ``task_oom_retry_delay_base_ms``), doubling with each such kill.
OOM_RETRY_DELAY_BASE = 1.0
OOM_RETRY_DELAY_MAX = 60.0


class Task:
    """What the client's machines (this one and ``actor_calls``) know of one task; the
    client's record of a task extends it."""

    __slots__ = (
        "task_id",
        "shape",
        "strategy",
        "runtime_env",
        "name",
        "job",
        "ready",
        "lease",
        "started",
        "cancelled",
        "retries_left",
        "retriable",
        "oom_retries_left",
        "oom_kills",
    )

    # Set by whoever makes the task:
    task_id: bytes  # (ids count up in submission order)
    shape: Shape
    name: str
    job: bytes  # the submitter's job, as it was at submission

    def __init__(self) -> None:
        self.strategy: Any = None  # where it may run: None, "SPREAD", ["node", id, soft]...
        self.runtime_env = ""  # (canonical text) only workers set up for it may run it
        self.ready = False  # its arguments are
        self.lease: Lease | None = None  # pushed to it, and not done
        self.started = False  # known to run: its worker refused to hand it back
        self.cancelled = False
        self.retries_left = 0  # -1: no limit
        self.retriable = False  # submitted with max_retries != 0 (it may run again)
        self.oom_retries_left = 0  # runs after the memory monitor killed it (-1: no limit)
        self.oom_kills = 0

    def use_retry(self) -> bool:
        """Whether the task may run again after a failure, using one of its retries if so."""
        if self.retries_left == 0 or self.cancelled:
            return False
        if self.retries_left > 0:
            self.retries_left -= 1
        return True


class Lease:
    __slots__ = (
        "lease_id",
        "worker_id",
        "gpu_ids",
        "key",
        "via",
        "peer",
        "tasks",
        "revoked",
        "idle_since",
        "spent",
        "lost",
        "retired",
    )

    def __init__(
        self, lease_id: int, worker_id: bytes, gpu_ids: list[int], key: Key, via: Any, peer: Any
    ) -> None:
        self.lease_id = lease_id
        self.worker_id = worker_id
        self.gpu_ids = gpu_ids
        self.key = key
        self.via = via  # the node that granted it
        self.peer = peer  # its worker
        self.tasks: list[Task] = []  # pushed and not done, in order
        self.revoked = False
        self.idle_since = 0.0
        self.spent = False  # has run a task
        self.lost = False  # its worker cannot be reached: take no more tasks
        # Its worker retires (``max_calls``): it starts nothing more, so what it still holds
        # when it ends never ran there. It goes back when the worker's connection closes.
        self.retired = False


class Key:
    """Tasks of one resource shape and placement, and the leases that run them."""

    __slots__ = (
        "shape",
        "strategy",
        "runtime_env",
        "spread",
        "resources",
        "cpu_only",
        "describe",
        "job",
        "queue",
        "leases",
        "requests",
        "saturated",
        "taking_back",
        "retriable",
    )

    def __init__(
        self,
        shape: Shape,
        strategy: Any,
        describe: str,
        runtime_env: str = "",
        retriable: bool = True,
    ) -> None:
        self.shape = shape
        self.strategy = strategy
        self.runtime_env = runtime_env
        self.spread = strategy == "SPREAD"  # one task per lease: each is placed on its own
        self.resources = shape_dict(shape)
        # Only CPU-only leases carry a second task: only they let it start when the first
        # blocks (a GPU, custom resource or memory stays with the blocked task).
        self.cpu_only = set(self.resources) <= {"CPU"}
        self.describe = describe
        self.job = b""  # of the latest task queued: leases are asked for that job
        self.queue: collections.deque[Task] = collections.deque()
        self.leases: dict[int, Lease] = {}
        self.requests: set[int] = set()  # lease requests not answered yet
        self.saturated = False  # the node said it has no room for another lease of this shape
        self.taking_back: set[bytes] = set()  # queued behind another task, asked back
        # Its tasks may run again: the node's memory monitor kills such workers first.
        self.retriable = retriable


# -- actions ---------------------------------------------------------------------------------


# (Records, made once or twice per task: ``records.record``'s constructor costs what a
# hand-written one does.)


@record
class Push:
    task: Task
    lease: Lease


@record
class AskLease:
    """Request a lease for ``key``, numbered ``req``, from ``to`` (None: this client's node;
    else the spill target a node named)."""

    key: Key
    req: int
    to: Any
    spilled: bool


@record
class CancelAsk:
    key: Key
    req: int


@record
class ReturnLease:
    lease: Lease
    failed: bool


@record
class TakeBack:
    """Ask the worker of ``lease`` to hand back these tasks queued behind another; answer
    with ``took_back``."""

    key: Key
    lease: Lease
    task_ids: list[bytes]


@record
class Finish:
    task: Task
    results: Sequence[ReturnValue]


@record
class Fail:
    task: Task
    error: BaseException


@record
class SendCancel:
    """Ask the worker of ``lease`` to cancel ``task``; with ``kill``, have its node end it."""

    task: Task
    lease: Lease
    force: bool
    recursive: bool
    kill: bool


@record
class RunAgain:
    """Run ``task`` again (lineage): its return values are pending again, and it queues
    (``submit``) once its arguments are ready."""

    task: Task


@record
class WorkerCrashed:
    """The worker running ``task`` died: ask its node how it ended, and tell
    ``worker_ended``."""

    task: Task
    lease: Lease


@record
class RetryLater:
    """Queue ``task`` again (``submit``) after ``delay`` seconds."""

    task: Task
    delay: float


Action = (
    Push
    | AskLease
    | CancelAsk
    | ReturnLease
    | TakeBack
    | Finish
    | Fail
    | SendCancel
    | RunAgain
    | WorkerCrashed
    | RetryLater
)
_NONE: list[Action] = []  # returned when there is nothing to do; never appended to


def key_id(task: Task) -> Any:
    """Tasks share leases when they have the same shape, placement and runtime env, and
    either all may run again or none may (so the node knows which workers it may kill at
    less cost when memory runs short)."""
    return task.shape, _frozen(task.strategy), task.runtime_env, task.retriable


def _frozen(value: Any) -> Any:
    """A strategy from the wire (lists within lists, with a label selector) as a hashable."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


class TaskLeases:
    def __init__(self, oom_retry_delay_base: float = OOM_RETRY_DELAY_BASE) -> None:
        self.oom_retry_delay_base = oom_retry_delay_base
        self._keys: dict[Any, Key] = {}
        self._leases: dict[int, Lease] = {}
        self._reqs = 0

    # -- queries ------------------------------------------------------------------------------

    def leases_of(self, peer: Any) -> list[Lease]:
        return [x for x in self._leases.values() if x.peer is peer]

    def leases_on(self, node_tag: bytes) -> list[Lease]:
        """The leases of workers on the node whose id starts with ``node_tag``."""
        n = len(node_tag)
        return [x for x in self._leases.values() if x.worker_id[:n] == node_tag]

    def asking(self, key: Key, req: int) -> bool:
        """Whether request ``req`` for ``key`` is still waiting for its answer."""
        return req in key.requests

    # -- events -------------------------------------------------------------------------------

    def submit(self, task: Task) -> list[Action]:
        """``task``'s arguments are ready: queue it to run (unless it was cancelled
        meanwhile: it failed then)."""
        if task.cancelled:
            return _NONE
        out: list[Action] = []
        self._enqueue(task, out)
        return out

    def args_failed(self, task: Task, results: Any) -> list[Action]:
        """An argument of ``task`` failed: it never runs, and finishes with ``results`` (that
        error), unless it was cancelled meanwhile (it failed then)."""
        return _NONE if task.cancelled else [Finish(task, results)]

    def granted(
        self,
        key: Key,
        req: int,
        lease_id: int,
        worker_id: bytes,
        gpu_ids: list[int],
        saturated: bool,
        via: Any,
        peer: Any,
    ) -> list[Action]:
        """A node granted request ``req``; ``peer`` None: its worker cannot be reached."""
        lease = Lease(lease_id, worker_id, gpu_ids, key, via, peer)
        if peer is None:
            key.requests.discard(req)
            out: list[Action] = [ReturnLease(lease, True)]
            self._pump(key, out)
            return out
        key.saturated = saturated and key.cpu_only
        if req not in key.requests:  # no longer wanted
            return [ReturnLease(lease, False)]
        key.requests.discard(req)
        key.leases[lease_id] = lease
        self._leases[lease_id] = lease
        out = []
        self._pump(key, out)
        return out

    def spilled(self, key: Key, req: int, to: Any) -> list[Action]:
        """The node asked has no room and names another (``to``): ask that one."""
        if req not in key.requests:
            return _NONE
        key.requests.discard(req)
        return [self._ask(key, to, True)]

    def refused(
        self, key: Key, req: int, error: BaseException | None, ask_again: bool
    ) -> list[Action]:
        """Request ``req`` failed: with ``error``, every task queued for ``key`` fails with it
        (no worker can run them); else (the node asked went away) ask again if
        ``ask_again``."""
        key.requests.discard(req)
        out: list[Action] = []
        if error is not None:
            while key.queue:
                out.append(Fail(key.queue.popleft(), error))
        elif ask_again:
            self._pump(key, out)
        return out

    def task_done(
        self, task: Task, results: Sequence[ReturnValue], retryable: bool, now: float
    ) -> list[Action]:
        """The task's worker answered; ``retryable``: it failed with an error that counts for
        a retry (one of its ``retry_exceptions``)."""
        out: list[Action] = []
        if retryable and task.use_retry():
            self._detach(task, now, out)
            self._enqueue(task, out)
        else:  # (the next task goes out first: the results are recorded while it runs)
            self._detach(task, now, out)
            out.append(Finish(task, results))
        return out

    def detach(self, task: Task, now: float) -> list[Action]:
        """The task is off its lease (and submitted again once an argument is rebuilt)."""
        out: list[Action] = []
        self._detach(task, now, out)
        return out

    def push_failed(self, task: Task, lease: Lease) -> list[Action]:
        """The worker of ``lease`` was gone when ``task`` was pushed to it: the task never
        ran there; no more go there (its loss is reported with ``worker_lost``)."""
        lease.lost = True
        if task in lease.tasks:
            lease.tasks.remove(task)
        task.lease = None
        key = lease.key
        key.queue.appendleft(task)
        out: list[Action] = []
        self._pump(key, out)
        return out

    def worker_lost(self, lease: Lease) -> list[Action]:
        """The connection to the lease's worker closed: the lease is gone, with its tasks."""
        if self._leases.get(lease.lease_id) is not lease:
            return _NONE
        out: list[Action] = []
        lost, lease.tasks = lease.tasks, []
        self._return(lease, True, out)
        for i, task in enumerate(lost):
            task.lease = None
            if i == 0 and not lease.retired or task.started:
                if task.cancelled:
                    out.append(Fail(task, exc.TaskCancelledError(task.task_id.hex())))
                else:
                    out.append(WorkerCrashed(task, lease))
            else:  # queued behind the first: it most likely never ran; no retry used
                self._enqueue(task, out)
        self._pump(lease.key, out)
        return out

    def worker_ended(
        self, task: Task, oom: bool, error: BaseException, oom_retry: bool = True
    ) -> list[Action]:
        """The node said how the worker of a ``WorkerCrashed`` task ended (``oom``: its memory
        monitor killed it, and ``oom_retry``: the task may run again): run the task again if
        a retry of that kind is left, else fail it with ``error``."""
        if task.cancelled:  # (failed when it was cancelled)
            return _NONE
        out: list[Action] = []
        if not oom:
            if task.use_retry():
                self._enqueue(task, out)
            else:
                out.append(Fail(task, error))
        elif task.oom_retries_left == 0 or not oom_retry:
            out.append(Fail(task, error))
        else:
            if task.oom_retries_left > 0:
                task.oom_retries_left -= 1
            delay = self.oom_retry_delay_base * 2**task.oom_kills
            task.oom_kills += 1
            if delay > 0:
                out.append(RetryLater(task, min(delay, OOM_RETRY_DELAY_MAX)))
            else:
                self._enqueue(task, out)
        return out

    def retiring(self, lease: Lease) -> None:
        """The lease's worker said it retires once its running tasks are answered (a
        function's ``max_calls``): push nothing more to it; what it holds that did not start
        queues again without a retry when its connection closes (``worker_lost``)."""
        lease.lost = lease.retired = True

    def took_back(
        self, key: Key, lease: Lease, asked: list[bytes], back: list[bytes] | None, now: float
    ) -> list[Action]:
        """The worker answered a take-back with the tasks it handed back (None: it is gone,
        and its tasks are redone when its loss is handled; meanwhile none go to it, nor are
        asked back from it)."""
        key.taking_back.difference_update(asked)
        if back is None:
            lease.lost = True
        handed = set(back or ())
        returned = []
        # (The task ahead may have finished meanwhile: a task handed back can be first.)
        for task in lease.tasks:
            if task.task_id in handed:
                returned.append(task)
            elif back is not None and task.task_id in asked:
                task.started = True
        for task in returned:
            lease.tasks.remove(task)
            task.lease = None
        if not lease.tasks:
            lease.idle_since = now
        out: list[Action] = []
        for task in reversed(returned):
            if task.cancelled:
                out.append(Fail(task, exc.TaskCancelledError(task.task_id.hex())))
            else:
                key.queue.appendleft(task)
        self._pump(key, out)
        return out

    def revoked(self, lease_id: int) -> list[Action]:
        """The node wants the lease back (another caller is starved)."""
        lease = self._leases.get(lease_id)
        if lease is None:
            return _NONE
        lease.revoked = True
        out: list[Action] = []
        if not lease.tasks:
            self._return(lease, False, out)
        return out

    def distrust(self, node_tag: bytes) -> list[Action]:
        """A copy of an object on that node could not be had: the node is likely dying before
        anyone said so. Put no task on the leases held there (each loss would use a retry)."""
        out: list[Action] = []
        for lease in self.leases_on(node_tag):
            lease.revoked = True
            if not lease.tasks:
                self._return(lease, False, out)
        return out

    def cancel(self, task: Task, force: bool, recursive: bool) -> list[Action]:
        """Cancel a task: one not pushed yet fails at once; a pushed one is interrupted by
        its worker (which also ends the task's children with ``recursive``); ``force`` has
        the node end the worker too, if the task is the one it runs."""
        task.cancelled = True
        lease = task.lease
        if lease is None:
            out: list[Action] = [Fail(task, exc.TaskCancelledError(task.task_id.hex()))]
            key = self._keys.get(key_id(task))
            if key is not None and task in key.queue:
                key.queue.remove(task)
                self._pump(key, out)  # (a lease request it kept open may be wanted no more)
            return out
        # Only the running task is killed with its worker; one queued behind it on the
        # lease is skipped by the worker when its turn comes.
        kill = force and lease.tasks[0] is task
        return [SendCancel(task, lease, force, recursive, kill)]

    def rerun(self, task: Task, node_tag: bytes) -> list[Action] | None:
        """An object that ``task`` made was lost with the node whose id starts with
        ``node_tag``: run the task again, using a retry (lineage reconstruction); None if it
        may not run again."""
        if not task.use_retry():
            return None
        task.ready = False
        out = self.distrust(node_tag) if node_tag else []
        out.append(RunAgain(task))
        return out

    def tick(self, now: float) -> list[Action]:
        """Periodically: leases idle for long enough go back."""
        out: list[Action] = []
        for lease in list(self._leases.values()):
            if (
                not lease.tasks
                and not lease.retired
                and now - lease.idle_since > IDLE_LEASE_SECONDS
            ):
                self._return(lease, False, out)
        return out

    def return_idle(self) -> list[Action]:
        """Every lease without tasks goes back now (the caller asks what is free)."""
        out: list[Action] = []
        for lease in [x for x in self._leases.values() if not x.tasks and not x.retired]:
            self._return(lease, False, out)
        return out

    # -- decisions ----------------------------------------------------------------------------

    def _enqueue(self, task: Task, out: list[Action]) -> None:
        kid = key_id(task)
        key = self._keys.get(kid)
        if key is None:
            key = self._keys[kid] = Key(
                task.shape, task.strategy, task.name, task.runtime_env, task.retriable
            )
        key.job = task.job
        key.queue.append(task)
        self._pump(key, out)

    def _detach(self, task: Task, now: float, out: list[Action]) -> None:
        lease = task.lease
        if lease is not None:
            task.lease = None
            if task in lease.tasks:
                lease.tasks.remove(task)
            if not lease.tasks:
                lease.idle_since = now
            self._pump(lease.key, out)

    def _push(self, task: Task, lease: Lease, out: list[Action]) -> None:
        lease.spent = True
        task.started = False  # (not known to run here yet, whatever happened elsewhere)
        lease.tasks.append(task)
        task.lease = lease
        out.append(Push(task, lease))

    def _pump(self, key: Key, out: list[Action]) -> None:
        """Push queued tasks to free leases (or take back, for a free lease, a task waiting
        behind another), and ask for or give back leases."""
        spread = key.spread
        queue = key.queue
        if queue:
            depth = PIPELINE_DEPTH if key.saturated and key.requests and not spread else 1
            for room in range(1, depth + 1):  # free leases first, then seconds on busy ones
                for lease in key.leases.values():
                    if len(lease.tasks) < room and not lease.revoked and not lease.lost:
                        if spread and lease.spent:
                            continue
                        self._push(queue.popleft(), lease, out)
                        if not queue:
                            break
                if not queue:
                    break
        # Tasks queued behind another still want a worker of their own: a lease granted
        # later takes them back. (One pass over the leases: this runs for every task.)
        waiting = len(queue)
        behind = 0
        taking_back = key.taking_back
        done: list[Lease] = []
        for lease in key.leases.values():
            tasks = lease.tasks
            if len(tasks) > 1:
                for i in range(1, len(tasks)):
                    # (one asked back has a free lease waiting for it)
                    if not tasks[i].started and tasks[i].task_id not in taking_back:
                        behind += 1
            elif not tasks and (lease.revoked or spread and lease.spent):
                done.append(lease)
        for lease in done:
            self._return(lease, False, out)
        if behind:
            if not queue:
                behind -= self._take_back(key, out)
            waiting += behind
        wanted = min(waiting, MAX_LEASE_REQUESTS) - len(key.requests)
        for _ in range(wanted):
            # Idle leases of other shapes would only hold resources this request may need.
            # (A retired lease goes back only when its worker has ended: see ``retiring``.)
            for lease in [
                x
                for x in self._leases.values()
                if not x.tasks and x.key is not key and not x.retired
            ]:
                self._return(lease, False, out)
            out.append(self._ask(key, None, False))
        if not waiting and key.requests:
            for req in key.requests:
                out.append(CancelAsk(key, req))
            key.requests.clear()

    def _ask(self, key: Key, to: Any, spilled: bool) -> AskLease:
        self._reqs += 1
        key.requests.add(self._reqs)
        return AskLease(key, self._reqs, to, spilled)

    def _take_back(self, key: Key, out: list[Action]) -> int:
        """With no task queued for ``key``: for each free lease, ask the worker of the oldest
        task waiting behind another on its lease to hand it back; unless it started
        meanwhile, it then runs on the free lease (``took_back``). Returns how many it asked
        back (they need no lease of their own meanwhile)."""
        free = sum(1 for x in key.leases.values() if not x.tasks and not x.revoked and not x.lost)
        free -= len(key.taking_back)
        if free <= 0:
            return 0
        behind = sorted(
            (
                (task, lease)
                for lease in key.leases.values()
                if not lease.lost  # (its tasks are redone when its loss is handled)
                for task in lease.tasks[1:]
            ),
            key=lambda pair: pair[0].task_id,  # (ids count up in submission order)
        )
        asks: dict[Lease, list[bytes]] = {}
        asked = 0
        for task, lease in behind:
            if asked == free:
                break
            if not task.started and task.task_id not in key.taking_back:
                asks.setdefault(lease, []).append(task.task_id)
                asked += 1
        for lease, task_ids in asks.items():
            key.taking_back.update(task_ids)
            out.append(TakeBack(key, lease, task_ids))
        return asked

    def _return(self, lease: Lease, failed: bool, out: list[Action]) -> None:
        lease.key.leases.pop(lease.lease_id, None)
        self._leases.pop(lease.lease_id, None)
        out.append(ReturnLease(lease, failed))
