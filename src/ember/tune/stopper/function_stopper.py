"""A plain function as a stopper (``ray.tune.stopper.FunctionStopper``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ember.tune.stopper.stopper import Stopper


class FunctionStopper(Stopper):
    """Stops a trial when ``function(trial_id, result)`` is true; never stops the experiment."""

    def __init__(self, function: Callable[[str, dict[str, Any]], bool]) -> None:
        if not self.is_valid_function(function):
            raise TypeError(
                f"FunctionStopper takes a function (trial_id, result) -> bool, got {function!r}"
            )
        self._function = function

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return bool(self._function(trial_id, result))

    def stop_all(self) -> bool:
        return False

    @classmethod
    def is_valid_function(cls, fn: Any) -> bool:
        """Whether ``fn`` is a callable to wrap, rather than a Stopper (or a stopper-like object
        that forgot to subclass Stopper, whose ``stop_all`` would otherwise be ignored)."""
        if isinstance(fn, Stopper) or not callable(fn):
            return False
        if hasattr(fn, "stop_all"):
            raise TypeError(
                f"{fn!r} has a stop_all method but is not an ember.tune.stopper.Stopper: "
                "subclass Stopper so that stop_all is called"
            )
        return True
