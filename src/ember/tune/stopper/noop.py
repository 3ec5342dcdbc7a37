"""A stopper that never stops anything (``ray.tune.stopper.NoopStopper``)."""

from __future__ import annotations

from typing import Any

from ember.tune.stopper.stopper import Stopper


class NoopStopper(Stopper):
    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return False
