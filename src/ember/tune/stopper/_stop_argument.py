"""Turns ``RunConfig(stop=...)`` / ``tune.run(stop=...)`` into one Stopper, checked when the
experiment is built, so that a bad ``stop`` fails before any trial runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ember.tune.error import TuneError
from ember.tune.stopper.function_stopper import FunctionStopper
from ember.tune.stopper.stopper import Stopper


class CriteriaStopper(Stopper):
    """Ray's dict criteria: a trial stops once ``result[key] >= value`` for any key. A key with
    "/" reaches into nested dicts of the result ("info/loss")."""

    def __init__(self, criteria: Mapping[str, Any]) -> None:
        for key, value in criteria.items():
            if not isinstance(key, str):
                raise TypeError(f"stop: criterion names must be str, got {key!r}")
            if isinstance(value, Mapping):
                raise ValueError(
                    f"stop: criterion {key!r} is a dict; name nested metrics with '/' instead, "
                    f"e.g. {{'{key}/<metric>': <value>}}"
                )
        self.criteria = dict(criteria)

    @property
    def plain_criteria(self) -> dict[str, float]:
        """The criteria a trial's actor can check by itself, ``result[key] >= number`` on a
        top-level key, so that it does not run an iteration past its stop."""
        return {
            key: value
            for key, value in self.criteria.items()
            if "/" not in key and isinstance(value, (int, float)) and not isinstance(value, bool)
        }

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        for key, threshold in self.criteria.items():
            if _lookup(result, key) >= threshold:
                return True
        return False

    def stop_all(self) -> bool:
        return False


def _lookup(result: dict[str, Any], key: str) -> Any:
    if key in result:
        return result[key]
    value: Any = result
    for part in key.split("/"):
        if not isinstance(value, Mapping) or part not in value:
            raise TuneError(
                f"stop criterion {key!r} is not in the result the trainable reported (its keys: "
                f"{sorted(map(str, result))}); report {key!r} or change `stop`"
            )
        value = value[part]
    return value


def as_stopper(stop: Any) -> Stopper | None:
    """One Stopper for ``stop``: a dict of criteria, a function (trial_id, result) -> bool, or a
    Stopper; None for None (nothing to call per result)."""
    if stop is None:
        return None
    if isinstance(stop, Stopper):
        return stop
    if isinstance(stop, Mapping):
        return CriteriaStopper(stop)
    if FunctionStopper.is_valid_function(stop):
        return FunctionStopper(stop)
    raise TypeError(
        f"stop must be None, a dict of criteria like {{'training_iteration': 10}}, a function "
        f"(trial_id, result) -> bool, or an ember.tune.stopper.Stopper; got "
        f"{stop!r} ({type(stop).__name__})"
    )


def plain_criteria(stopper: Stopper | None) -> dict[str, float]:
    """The plain ``{key: threshold}`` criteria of a stopper ``as_stopper`` made (see
    CriteriaStopper.plain_criteria); none for any other stopper."""
    return stopper.plain_criteria if isinstance(stopper, CriteriaStopper) else {}
