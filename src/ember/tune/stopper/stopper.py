"""The stopper interface (``ray.tune.stopper.Stopper``) and the stopper that combines others."""

from __future__ import annotations

from typing import Any


class Stopper:
    """Decides, after each result, whether a trial stops, and whether the whole experiment does.

    The controller calls ``stopper(trial_id, result)`` for every result and ``stop_all()`` once
    per loop turn."""

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")

    def stop_all(self) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must implement stop_all")


class CombinedStopper(Stopper):
    """Stops a trial (or the experiment) when any of its stoppers says so.

    Every stopper sees every result, even once another has said stop, so that stoppers which
    count results (``MaximumIterationStopper``) or keep a history stay right."""

    def __init__(self, *stoppers: Stopper) -> None:
        for stopper in stoppers:
            if not isinstance(stopper, Stopper):
                raise TypeError(
                    f"CombinedStopper takes Stopper objects, got {stopper!r} "
                    f"({type(stopper).__name__}); wrap a function in FunctionStopper"
                )
        self.stoppers = stoppers

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        decisions = [stopper(trial_id, result) for stopper in self.stoppers]
        return any(decisions)

    def stop_all(self) -> bool:
        decisions = [stopper.stop_all() for stopper in self.stoppers]
        return any(decisions)
