"""Runs the controller's trials in Ember actors: one outstanding call per running trial,
answered with a batch of its news, and all of them awaited together with ``ember.wait``.

Actors are pooled by resource shape: a trial that ends leaves its actor (and process) to the
next trial of the same shape, so a thousand short trials do not start a thousand processes."""

from __future__ import annotations

import time
from typing import Any

import ember
from ember.tune.execution.trial_actor import TrialActor
from ember.tune.trainable.session import TrialStart

Shape = tuple[tuple[str, float], ...]

# How often the cluster's resources are read again (nodes join and leave).
_REFRESH_S = 2.0


def shape_of(resources: dict[str, float]) -> Shape:
    return tuple(sorted((k, float(v)) for k, v in resources.items() if v))


class _Run:
    __slots__ = ("actor", "shape", "ref")

    def __init__(self, actor: Any, shape: Shape, ref: Any) -> None:
        self.actor = actor
        self.shape = shape
        self.ref = ref


class ActorExecutor:
    """What the controller asks of the processes that run trials (``TrialExecutor``)."""

    def __init__(self, trainable: Any, reuse_actors: bool = True) -> None:
        self._trainable = ember.put(trainable)
        self._reuse = reuse_actors
        self._actor_class = ember.remote(TrialActor)
        self._runs: dict[str, _Run] = {}
        self._by_ref: dict[Any, str] = {}
        self._idle: dict[Shape, list[Any]] = {}
        self._used: dict[str, float] = {}
        self._total: dict[str, float] = {}
        self._nodes: list[dict[str, float]] = []
        self._refreshed = 0.0

    # ------------------------------------------------------------------ resources

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._refreshed >= _REFRESH_S:
            self._total = dict(ember.cluster_resources())
            self._nodes = [dict(n["Resources"]) for n in ember.nodes() if n["Alive"]]
            self._refreshed = now

    def fits_a_node(self, resources: dict[str, float]) -> bool:
        """Whether some node of the cluster could ever hold a trial of these resources."""
        self._refresh()
        return any(
            all(node.get(k, 0.0) >= v for k, v in resources.items() if v) for node in self._nodes
        )

    def can_start(self, resources: dict[str, float]) -> bool:
        self._refresh()
        shape = shape_of(resources)
        if self._idle.get(shape):
            return True
        free = dict(self._total)
        for k, v in self._used.items():
            free[k] = free.get(k, 0.0) - v
        if all(free.get(k, 0.0) + 1e-9 >= v for k, v in shape):
            return True
        return self._free_idle_for(shape, free)

    def _free_idle_for(self, shape: Shape, free: dict[str, float]) -> bool:
        """Kill idle actors of other shapes until the new shape fits (or none are left)."""
        for other, actors in self._idle.items():
            while actors:
                self._kill(actors.pop(), other)
                for k, v in other:
                    free[k] = free.get(k, 0.0) + v
                if all(free.get(k, 0.0) + 1e-9 >= v for k, v in shape):
                    return True
        return False

    # ------------------------------------------------------------------ trials

    def start(self, trial_id: str, resources: dict[str, float], start: TrialStart) -> None:
        shape = shape_of(resources)
        idle = self._idle.get(shape)
        if idle:
            actor = idle.pop()
        else:
            actor = self._new_actor(resources)
            for k, v in shape:
                self._used[k] = self._used.get(k, 0.0) + v
        ref = actor.run.remote(self._trainable, start)
        self._runs[trial_id] = _Run(actor, shape, ref)
        self._by_ref[ref] = trial_id

    def _new_actor(self, resources: dict[str, float]) -> Any:
        custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU", "memory") and v}
        return self._actor_class.options(
            num_cpus=resources.get("CPU", 0.0),
            num_gpus=resources.get("GPU", 0.0),
            resources=custom,
            max_concurrency=2,
            max_restarts=0,
        ).remote()

    def poll(self, trial_id: str, decision: str) -> None:
        run = self._runs[trial_id]
        run.ref = run.actor.poll.remote(trial_id, decision)
        self._by_ref[run.ref] = trial_id

    def stop(self, trial_id: str, save: bool = False) -> None:
        """Ask a trial to end at its next report, whatever its outstanding call waits for."""
        run = self._runs.get(trial_id)
        if run is not None:
            run.actor.stop.remote(trial_id, save)

    def release(self, trial_id: str, reusable: bool = True) -> None:
        """A trial is over: its actor goes back to the pool when its code ended cleanly, and
        is killed otherwise (dead already, failed, or stuck past a stop)."""
        run = self._runs.pop(trial_id)
        self._by_ref.pop(run.ref, None)
        if reusable and self._reuse:
            self._idle.setdefault(run.shape, []).append(run.actor)
        else:
            self._kill(run.actor, run.shape)

    def _kill(self, actor: Any, shape: Shape) -> None:
        ember.kill(actor)  # a no-op for an actor that is dead already
        for k, v in shape:
            self._used[k] = self._used.get(k, 0.0) - v

    def wait(self, timeout: float) -> list[tuple[str, list[Any] | BaseException]]:
        """The news of every trial that has some, waiting up to ``timeout`` for the first."""
        refs = list(self._by_ref)
        if not refs:
            return []
        ready, _ = ember.wait(refs, num_returns=1, timeout=timeout)
        if not ready:
            return []
        if len(refs) > 1:
            ready, _ = ember.wait(refs, num_returns=len(refs), timeout=0)
        out: list[tuple[str, list[Any] | BaseException]] = []
        for ref in ready:
            trial_id = self._by_ref.pop(ref)
            try:
                out.append((trial_id, ember.get(ref)))
            except Exception as exc:
                out.append((trial_id, exc))
        return out

    def shutdown(self) -> None:
        """End every actor: the trials still running are killed, not waited for."""
        for trial_id in list(self._runs):
            run = self._runs.pop(trial_id)
            self._kill(run.actor, run.shape)
        for shape, actors in self._idle.items():
            for actor in actors:
                self._kill(actor, shape)
        self._idle.clear()
        self._by_ref.clear()
