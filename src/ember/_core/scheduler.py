"""The node's lease decisions: which request gets resources and which worker, and when to
start, stop or give up starting workers.

Theory of operation: a caller asks for a *lease* of a resource shape; the node grants it with
a worker process, and the caller then pushes tasks straight to that worker. This class decides
grants and nothing else: the node manager feeds it events (requests, returns, workers starting
and dying, tasks blocking in ``get``, the cluster view, the passing of time for idle
workers) and carries out every action it returns.

On a cluster, a ``Placement`` first decides whether a request stays here or *spills* to
another node (the caller then asks that node); requests queued here spill later when the
cluster view shows room elsewhere and none here (``view_changed``).

Workers beyond ``idle_kept`` that idle for ``idle_seconds`` are stopped (``idle_check``);
after ``START_FAILURES_TOLERATED`` workers in a row die before they connect, requests that
wait for a worker are refused with the last one's log instead of workers being started for
ever.

Workers are pooled per runtime env (its canonical text, "" for none): a request gets only
a worker started for its env, and workers are started, counted and given up on per env.

A worker whose every lease is blocked in ``get`` counts as free: it may take another lease and
run that task on another thread. That is how nested tasks (fib by recursion) run on two CPUs
without starting a process per waiting task.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ember._core.labels import Selector, matches
from ember._core.labels import describe as describe_selector
from ember._core.placement import Placement, Unschedulable, pinned, split_labels
from ember._core.placement_groups import group_of, in_group
from ember._core.resources import Allocation, NodeResources, Shape, describe, is_gpu, shape_dict
from ember._protocol.messages import ErrorKind
from ember._protocol.records import record

_GROUP_REMOVED = "its placement group was removed (remove_placement_group, or the end of its job)"
# Idle workers beyond ``idle_kept`` are stopped after this long.
IDLE_WORKER_SECONDS = 10.0
# This many workers in a row that die before connecting: stop starting more.
START_FAILURES_TOLERATED = 3
# A node stalled this long (work waits for resources that only actors hold) warns.
STALLED_WARN_SECONDS = 10.0


@record
class Grant:
    client: Hashable
    rid: int
    lease_id: int
    worker_id: bytes
    gpu_ids: tuple[int, ...]
    # No room for another lease of this shape now, here or (as far as this node knows)
    # elsewhere: the caller may queue a task behind another on its leases instead of waiting.
    saturated: bool = False
    actor_id: bytes = b""  # the actor the (dedicated) worker is for, placed from another node


@record
class StartWorker:
    """Start a worker for this runtime env ("" for none: a plain fork)."""

    runtime_env: str = ""


@record
class WarnInfeasible:
    client: Hashable
    rid: int
    message: str


@record
class WarnStalled:
    """A request that could run here waits while actors hold what it needs and no task runs
    that would free it (Ray's "cluster full of actors")."""

    client: Hashable
    rid: int
    message: str


@record
class Revoke:
    client: Hashable
    lease_id: int


@record
class Spill:
    """Ask another node instead."""

    client: Hashable
    rid: int
    node_id: bytes


@record
class Refuse:
    """The request fails: it can never run (a hard node affinity to a node that is gone,
    ``Unschedulable``), or workers fail to start here (``WorkerStartFailed``)."""

    client: Hashable
    rid: int
    message: str
    error: ErrorKind = ErrorKind.UNSCHEDULABLE


@record
class StopWorker:
    """End this worker's process: its caller is gone (nobody would take what it computes),
    its caller lost it, or it idled too long. The scheduler has forgotten it already; the
    holders of its leases see their connections to it close."""

    worker_id: bytes


Action = Grant | StartWorker | StopWorker | WarnInfeasible | WarnStalled | Revoke | Spill | Refuse


@dataclass
class _Request:
    client: Hashable
    rid: int
    shape: Shape
    describe: str
    dedicated: bool
    movable: bool = False  # may still spill to another node
    job: bytes = b""
    runtime_env: str = ""  # (canonical text) only a worker set up for it may take this
    retriable: bool = True  # its tasks run again if its worker dies (for the memory monitor)
    selector: Selector = ()  # the labels a node must have (``_core/labels.py``)
    actor_id: bytes = b""


@dataclass
class _Lease:
    lease_id: int
    client: Hashable
    worker_id: bytes
    alloc: Allocation
    dedicated: bool
    blocked: bool = False
    revoked: bool = False
    retriable: bool = True


@dataclass
class _Worker:
    worker_id: bytes
    leases: set[int] = field(default_factory=set)
    dedicated: bool = False  # an actor lives here
    # Its leases that keep it from taking another (running, or holding a GPU): counted, not
    # looked up per grant, since thousands of nested tasks may be blocked in one process.
    holding: int = 0
    # The job its leases serve: a process is shared only within one job, so that one job's
    # failures (a caller that dies takes the workers running its tasks with it) never end
    # another job's tasks.
    job: bytes = b""
    runtime_env: str = ""  # what it was set up for: it serves no other env


class LeaseScheduler:
    def __init__(
        self,
        resources: NodeResources,
        max_starting: int = 2,
        placement: Placement | None = None,
        first_lease_id: int = 1,
        idle_kept: int = 1,
        idle_seconds: float = IDLE_WORKER_SECONDS,
        labels: Mapping[str, str] | None = None,
        stalled_seconds: float = STALLED_WARN_SECONDS,
    ) -> None:
        """``first_lease_id``: on a cluster each node numbers its leases from its own start,
        so that a caller holding leases of several nodes never sees the same id twice.
        ``idle_kept``: idle workers kept however long they idle (one per CPU). ``labels``:
        this node's, which a request's label selector must match for it to run here.
        ``stalled_seconds``: how long the node stays stalled before it warns
        (``stalled_check``)."""
        self.resources = resources
        self.labels = dict(labels or {})
        self.placement = placement
        self.max_starting = max(1, max_starting)
        self.idle_kept = idle_kept
        self.idle_seconds = idle_seconds
        self._idle_since: dict[bytes, float] = {}
        self._start_failures: Counter[str] = Counter()  # in a row, per runtime env
        self._queue: list[_Request] = []
        self._leases: dict[int, _Lease] = {}
        self._workers: dict[bytes, _Worker] = {}
        self._starting: Counter[str] = Counter()  # per runtime env
        self._lease_ids = itertools.count(first_lease_id)
        self._removed_groups: set[str] = set()  # (hex ids) their work is refused from now on
        self.stalled_seconds = stalled_seconds
        self._stalled_since: float | None = None
        self._stalled_warned: set[Shape] = set()  # once per shape while the stall lasts

    # -- events -------------------------------------------------------------------------------

    def request(
        self,
        client: Hashable,
        rid: int,
        shape: Shape,
        what: str = "",
        dedicated: bool = False,
        strategy: object = None,
        spilled: bool = False,
        job: bytes = b"",
        runtime_env: str = "",
        retriable: bool = True,
        actor_id: bytes = b"",
    ) -> list[Action]:
        if group_of(k for k, _ in shape) in self._removed_groups:
            return [Refuse(client, rid, _GROUP_REMOVED, ErrorKind.PLACEMENT_GROUP_REMOVED)]
        movable = self.placement is not None and not spilled
        if movable:
            assert self.placement is not None
            target = self.placement.choose(shape, strategy, self.resources, bool(self._queue))
            if isinstance(target, Unschedulable):
                return [Refuse(client, rid, target.message)]
            if target is not None:
                return [Spill(client, rid, target)]
        req = _Request(
            client,
            rid,
            shape,
            what,
            dedicated,
            movable and not pinned(strategy),
            job,
            runtime_env,
            retriable,
            split_labels(strategy)[0],
            actor_id,
        )
        actions: list[Action] = []
        # (a placement group's bundle that is not here yet is no reason to warn: it comes;
        # but a label selector this node does not match stays unmatched once it is here)
        if not self._feasible(req) and not (in_group(shape) and self._here(req)):
            actions.append(WarnInfeasible(client, rid, self._infeasible_message(req)))
        self._queue.append(req)
        return actions + self._dispatch()

    def saturated(self, shape: Shape) -> bool:
        """No room for another lease of this shape here, nor (as far as we know) elsewhere."""
        if self.resources.fits(shape):
            return False
        return self.placement is None or not self.placement.room_elsewhere(shape)

    def view_changed(self, view: Iterable[Mapping[str, Any]]) -> list[Action]:
        """A new cluster view (the control store's node table): spill queued requests that do
        not fit here to nodes that now have room for them."""
        if self.placement is None:
            return []
        self.placement.update(view)
        actions: list[Action] = []
        keep = []
        for req in self._queue:
            target = None
            if req.movable and not (self._here(req) and self.resources.fits(req.shape)):
                target = self.placement.spill_target(req.shape, req.selector)
            if target is None:
                keep.append(req)
            else:
                actions.append(Spill(req.client, req.rid, target))
        self._queue = keep
        return actions

    def peer_unreachable(self, node_id: bytes) -> list[Action]:
        """No work goes to that node until a new view says it is alive (it may be dying)."""
        if self.placement is not None:
            self.placement.peers.pop(node_id, None)
        return []

    def cancel_request(self, client: Hashable, rid: int) -> list[Action]:
        self._queue = [r for r in self._queue if not (r.client == client and r.rid == rid)]
        return self._dispatch()

    def return_lease(self, lease_id: int) -> list[Action]:
        return self._dispatch() if self._release(lease_id) else []

    def _release(self, lease_id: int) -> bool:
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            return False
        self.resources.release(lease.alloc)
        worker = self._workers.get(lease.worker_id)
        if worker is not None:
            worker.leases.discard(lease_id)
            worker.holding -= _holds(lease)
            if lease.dedicated:
                worker.dedicated = False
        return True

    def lease_failed(self, lease_id: int) -> list[Action]:
        """Its holder lost its connection to the lease's worker: that worker is stopped and
        never leased again."""
        lease = self._leases.get(lease_id)
        if lease is None:
            return []
        return [StopWorker(lease.worker_id), *self.worker_died(lease.worker_id)]

    def worker_started(self, worker_id: bytes, runtime_env: str = "") -> list[Action]:
        self._starting[runtime_env] = max(0, self._starting[runtime_env] - 1)
        self._start_failures[runtime_env] = 0
        self._workers[worker_id] = _Worker(worker_id, runtime_env=runtime_env)
        return self._dispatch()

    def prestart(self, count: int, runtime_env: str = "") -> list[Action]:
        """Start ``count`` workers (for ``runtime_env``) ahead of any request (counted as
        starting, so a request meanwhile does not launch extra ones)."""
        self._starting[runtime_env] += count
        return [StartWorker(runtime_env) for _ in range(count)]

    def worker_start_failed(self, log: str, runtime_env: str = "") -> list[Action]:
        """A worker for ``runtime_env`` died before it connected (``log``: the end of its
        log). After ``START_FAILURES_TOLERATED`` in a row, start no more for that env: grant
        what the running workers can take and refuse its other requests, with the log."""
        self._starting[runtime_env] = max(0, self._starting[runtime_env] - 1)
        self._start_failures[runtime_env] += 1
        if self._start_failures[runtime_env] < START_FAILURES_TOLERATED:
            return self._dispatch()
        give_up = f"Ember workers fail to start on this node. The last one's log says:\n{log}"
        actions = self._dispatch(grant_only=True)
        refused = [r for r in self._queue if r.runtime_env == runtime_env]
        actions += [
            Refuse(r.client, r.rid, give_up, ErrorKind.WORKER_START_FAILED) for r in refused
        ]
        self._queue = [r for r in self._queue if r.runtime_env != runtime_env]
        return actions

    def worker_died(self, worker_id: bytes) -> list[Action]:
        """The worker died: every lease on it ends (whoever holds one sees its connection to
        the worker close) and it takes no more."""
        self._drop_worker(worker_id)
        return self._dispatch()

    def _drop_worker(self, worker_id: bytes) -> None:
        worker = self._workers.pop(worker_id, None)
        if worker is not None:
            for lease_id in worker.leases:
                self.resources.release(self._leases.pop(lease_id).alloc)

    def evict(self, names: set[str]) -> list[Action]:
        """Resources with these names go (a placement group's bundle is given back): the
        workers holding leases of them are stopped, and their leases end (then
        ``resources_changed``, once the bundle is given back)."""
        return self._stop_holders(lambda shape: any(k in names for k, _ in shape))

    def group_removed(self, pg_hex: str) -> list[Action]:
        """A placement group was removed: the workers holding its resources are stopped,
        and its queued requests, and any that come later (a retried task, a restarted
        actor, new work), are refused, rather than waiting for a bundle that never comes."""
        self._removed_groups.add(pg_hex)
        refused = [r for r in self._queue if group_of(k for k, _ in r.shape) == pg_hex]
        self._queue = [r for r in self._queue if group_of(k for k, _ in r.shape) != pg_hex]
        actions = self._stop_holders(lambda shape: group_of(k for k, _ in shape) == pg_hex)
        return actions + [
            Refuse(r.client, r.rid, _GROUP_REMOVED, ErrorKind.PLACEMENT_GROUP_REMOVED)
            for r in refused
        ]

    def _stop_holders(self, holds: Callable[[Shape], bool]) -> list[Action]:
        doomed = sorted(
            {lease.worker_id for lease in self._leases.values() if holds(lease.alloc.shape)}
        )
        actions: list[Action] = []
        for worker_id in doomed:
            actions.append(StopWorker(worker_id))
            self._drop_worker(worker_id)
        return actions

    def resources_changed(self) -> list[Action]:
        """The node's resources changed (a bundle committed or given back): grant what fits
        now."""
        return self._dispatch()

    def idle_check(self, now: float, owns_anything: Callable[[bytes], bool]) -> list[Action]:
        """Every so often (``now`` by the node's clock): stop workers beyond ``idle_kept``
        that have idled for ``idle_seconds``, longest idle first, unless something of their
        own still depends on them (``owns_anything``: objects, actors, leases as a caller)."""
        self._idle_since = {w: self._idle_since.get(w, now) for w in self.idle_workers()}
        spare = len(self._idle_since) - self.idle_kept
        actions: list[Action] = []
        for worker_id, since in sorted(self._idle_since.items(), key=lambda kv: kv[1]):
            if spare <= 0 or now - since < self.idle_seconds:
                break
            if owns_anything(worker_id):
                continue
            actions.append(StopWorker(worker_id))
            self._drop_worker(worker_id)
            spare -= 1
        return actions + self._dispatch() if actions else actions

    def stalled_check(self, now: float) -> list[Action]:
        """Every so often (``now`` by the node's clock): Ray's rule for a resource deadlock.
        The node is stalled while no task runs here (a task blocked in ``get`` does not
        count) and a request that could run here lacks resources: only actors hold them, and
        actors keep them until they end. Stalled for ``stalled_seconds``: warn the caller of
        each stuck shape, once per shape until the stall ends. (A placement group's bundle
        is no case: the group reserved it.)"""
        stuck = [] if self._task_running() else [r for r in self._queue if self._stuck(r)]
        if not stuck:
            self._stalled_since = None
            self._stalled_warned.clear()
            return []
        if self._stalled_since is None:
            self._stalled_since = now
        if now - self._stalled_since < self.stalled_seconds:
            return []
        actions: list[Action] = []
        for req in stuck:
            if req.shape not in self._stalled_warned:
                self._stalled_warned.add(req.shape)
                actions.append(WarnStalled(req.client, req.rid, _stalled_message(req.shape)))
        return actions

    def _task_running(self) -> bool:
        return any(not lease.dedicated and not lease.blocked for lease in self._leases.values())

    def _stuck(self, req: _Request) -> bool:
        shape = req.shape
        return not in_group(shape) and self._feasible(req) and not self.resources.fits(shape)

    def client_gone(self, client: Hashable) -> list[Action]:
        """Its requests and leases go; the workers running its tasks are stopped (as Ray
        does), with any other caller's lease that shares their process (a blocked task
        lends its process too): those holders retry, their CPUs are not lost."""
        self._queue = [r for r in self._queue if r.client != client]
        mine = [i for i, lease in self._leases.items() if lease.client == client]
        orphaned = sorted({self._leases[i].worker_id for i in mine})
        for lease_id in mine:
            self._release(lease_id)
        actions: list[Action] = []
        for worker_id in orphaned:
            actions.append(StopWorker(worker_id))
            self._drop_worker(worker_id)
        return actions + self._dispatch()

    def blocked(self, lease_id: int) -> list[Action]:
        lease = self._leases.get(lease_id)
        if lease is None or lease.blocked:
            return []
        lease.blocked = True
        self._held(lease, -1)
        self.resources.release_cpus(lease.alloc)
        return self._dispatch()

    def unblocked(self, lease_id: int) -> list[Action]:
        lease = self._leases.get(lease_id)
        if lease is None or not lease.blocked:
            return []
        lease.blocked = False
        self._held(lease, 1)
        self.resources.reacquire_cpus(lease.alloc)
        return []

    def _held(self, lease: _Lease, change: int) -> None:
        worker = self._workers.get(lease.worker_id)
        if worker is not None and not _uses_gpu(lease.alloc.shape):
            worker.holding += change

    # -- queries ------------------------------------------------------------------------------

    def pending(self) -> list[tuple[str, bool]]:
        """What waits for resources: (description, feasible) per queued request."""
        return [(r.describe, self._feasible(r)) for r in self._queue]

    def waiting(self, cap: int) -> list[tuple[str, Shape, int, bool]]:
        """What waits for resources, by kind ("task", or "actor": an actor's request is for a
        dedicated worker) and shape: (kind, shape, how many requests, whether one caller has
        ``cap`` of them). A caller asks for at most ``cap`` leases of a shape at a time, so
        more of its work may wait behind a capped group."""
        groups: dict[tuple[str, Shape], Counter[Hashable]] = {}
        for r in self._queue:
            key = ("actor" if r.dedicated else "task", r.shape)
            groups.setdefault(key, Counter())[r.client] += 1
        return [
            (kind, shape, sum(by.values()), max(by.values()) >= cap)
            for (kind, shape), by in groups.items()
        ]

    def has_client(self, client: Hashable) -> bool:
        """Does this caller hold a lease or wait for one?"""
        return any(lease.client == client for lease in self._leases.values()) or any(
            r.client == client for r in self._queue
        )

    def busy_workers(self) -> dict[bytes, tuple[bool, int, Hashable]]:
        """The workers that hold leases: whether every task they run may run again, their
        newest lease (ids grow in the order leases are granted) and its client."""
        out: dict[bytes, tuple[bool, int, Hashable]] = {}
        for lease in self._leases.values():
            retriable, newest, client = out.get(lease.worker_id, (True, 0, None))
            if lease.lease_id > newest:
                newest, client = lease.lease_id, lease.client
            out[lease.worker_id] = (retriable and lease.retriable, newest, client)
        return out

    def idle_workers(self) -> list[bytes]:
        return [w.worker_id for w in self._workers.values() if not w.leases and not w.dedicated]

    # -- the decision -------------------------------------------------------------------------

    def _free_worker(self, req: _Request, taken: set[bytes]) -> bytes | None:
        """An idle worker set up for the request's runtime env, else one of the same job and
        env whose every task is blocked in get() (CPU-only work: GPU tasks own their process,
        since CUDA_VISIBLE_DEVICES is per process)."""
        shareable = not req.dedicated and not _uses_gpu(req.shape)
        fallback = None
        for w in self._workers.values():
            if w.dedicated or w.worker_id in taken or w.runtime_env != req.runtime_env:
                continue
            if not w.leases:
                return w.worker_id
            if shareable and fallback is None and not w.holding and w.job == req.job:
                fallback = w.worker_id
        return fallback

    def _dispatch(self, grant_only: bool = False) -> list[Action]:
        """Grant what can be granted; unless ``grant_only``, start workers for requests that
        have resources but no worker, and revoke leases for requests that lack resources."""
        granted: list[tuple[_Request, _Lease]] = []
        waiting_for_worker: list[tuple[Allocation, str]] = []
        taken: set[bytes] = set()
        remaining: list[_Request] = []
        starved: list[_Request] = []
        for req in self._queue:
            alloc = self.resources.acquire(req.shape) if self._here(req) else None
            if alloc is None:
                remaining.append(req)
                if self._feasible(req):
                    starved.append(req)
                continue
            worker_id = self._free_worker(req, taken)
            if worker_id is None:
                waiting_for_worker.append((alloc, req.runtime_env))
                remaining.append(req)
                continue
            lease = _Lease(
                next(self._lease_ids),
                req.client,
                worker_id,
                alloc,
                req.dedicated,
                retriable=req.retriable,
            )
            self._leases[lease.lease_id] = lease
            worker = self._workers[worker_id]
            worker.leases.add(lease.lease_id)
            worker.holding += 1
            worker.dedicated = req.dedicated
            worker.job = req.job
            if req.dedicated:
                taken.add(worker_id)
            granted.append((req, lease))
        for alloc, _ in waiting_for_worker:
            self.resources.release(alloc)
        # (saturated once every grant of this round holds its resources)
        actions: list[Action] = [
            Grant(
                req.client,
                req.rid,
                lease.lease_id,
                lease.worker_id,
                tuple(lease.alloc.gpu_ids),
                self.saturated(lease.alloc.shape),
                req.actor_id,
            )
            for req, lease in granted
        ]
        self._queue = remaining
        if grant_only:
            return actions
        for env, waiting in Counter(env for _, env in waiting_for_worker).items():
            for _ in range(max(0, min(waiting, self.max_starting) - self._starting[env])):
                self._starting[env] += 1
                actions.append(StartWorker(env))
        actions.extend(self._revocations(starved))
        return actions

    def _revocations(self, starved: list[_Request]) -> list[Action]:
        """Ask holders of other leases to hand them back when idle, so starved requests run."""
        if not starved:
            return []
        out: list[Action] = []
        # Revoke only until the leases being handed back (with what is free) cover what the
        # starved requests need, and only leases holding something they need.
        need: dict[str, int] = {}
        for r in starved:
            for name, units in r.shape:
                need[name] = need.get(name, 0) + units
        coming = {name: max(0, self.resources.available.get(name, 0)) for name in need}
        for lease in self._leases.values():
            if lease.revoked:
                for name, units in lease.alloc.shape:
                    if name in coming:
                        coming[name] += units

        def covered() -> bool:
            return all(coming[name] >= units for name, units in need.items())

        for lease in self._leases.values():
            if covered():
                break
            if lease.revoked or lease.blocked or lease.dedicated:
                continue
            if not any(name in need for name, _ in lease.alloc.shape):
                continue
            if all(r.client == lease.client for r in starved):
                continue  # only its own holder waits: it hands leases back as its queues drain
            lease.revoked = True
            for name, units in lease.alloc.shape:
                if name in coming:
                    coming[name] += units
            out.append(Revoke(lease.client, lease.lease_id))
        return out

    def _here(self, req: _Request) -> bool:
        """Do this node's labels match the request's selector?"""
        return matches(req.selector, self.labels)

    def _feasible(self, req: _Request) -> bool:
        """Could the request ever run here?"""
        return self._here(req) and self.resources.feasible(req.shape)

    def _infeasible_message(self, req: _Request) -> str:
        if not self._here(req):
            labels = f"label_selector={describe_selector(req.selector)}"
            where = "no node of the cluster matches it" if self.placement else "this node does not"
            if in_group(req.shape):
                return (
                    f"{req.describe or 'a task'} runs in a placement group's bundle, which is "
                    f"(or comes) here, but requires a node with {labels}, which this node does "
                    f"not match (its labels: {self.labels}). It will wait for ever: drop the "
                    "label_selector, or reserve the group on nodes that match it."
                )
            return (
                f"{req.describe or 'a task'} requires a node with {labels}, but {where} (its "
                f"labels: {self.labels}). It will wait until a node with matching labels joins; "
                "start one with `ember start --labels ...`."
            )
        lacks = f"this node lacks {self.resources.missing(req.shape)}"
        where = f"no node of the cluster has them ({lacks})" if self.placement else lacks
        return (
            f"{req.describe or 'a task'} requires {{{describe(req.shape)}}}, but {where}. It "
            "will wait until a node with these resources joins; lower its requirements or "
            "start Ember with more resources."
        )


def _stalled_message(shape: Shape) -> str:
    """Ray's words (its autoscaler's), with the shape as Ray prints it."""
    request = {name: float(amount) for name, amount in shape_dict(shape).items()}
    return (
        f"The following resource request cannot be scheduled right now: {request}. "
        "This is likely due to all cluster resources being claimed by actors. Consider "
        "creating fewer actors or adding more nodes to this cluster."
    )


def _holds(lease: _Lease) -> bool:
    """Does this lease keep its worker from being shared (see ``_Worker.holding``)?"""
    return not lease.blocked or _uses_gpu(lease.alloc.shape)


def _uses_gpu(shape: Shape) -> bool:
    return any(is_gpu(name) for name, _ in shape)
