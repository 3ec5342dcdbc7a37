"""Trial schedulers (``ray.tune.schedulers``): which trials go on, pause or stop, and which
runs next. All are plain Python with no optional dependency, so importing them is cheap."""

from __future__ import annotations

import inspect
from typing import Any

from ember.tune.schedulers.async_hyperband import ASHAScheduler, AsyncHyperBandScheduler
from ember.tune.schedulers.hyperband import HyperBandScheduler
from ember.tune.schedulers.median_stopping_rule import MedianStoppingRule
from ember.tune.schedulers.pbt import PopulationBasedTraining, PopulationBasedTrainingReplay
from ember.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

# Ray's names for create_scheduler.
_SCHEDULERS: dict[str, type[TrialScheduler]] = {
    "fifo": FIFOScheduler,
    "async_hyperband": AsyncHyperBandScheduler,
    "asynchyperband": AsyncHyperBandScheduler,
    "asha": ASHAScheduler,
    "median_stopping_rule": MedianStoppingRule,
    "medianstopping": MedianStoppingRule,
    "hyperband": HyperBandScheduler,
    "pbt": PopulationBasedTraining,
    "pbt_replay": PopulationBasedTrainingReplay,
}


def create_scheduler(scheduler: str, **kwargs: Any) -> TrialScheduler:
    """A scheduler by name (``"asha"``, ``"hyperband"``, ``"pbt"``, ...) and its options."""
    cls = _SCHEDULERS.get(scheduler)
    if cls is None:
        raise ValueError(
            f"Unknown scheduler {scheduler!r}; the schedulers are {sorted(_SCHEDULERS)}"
        )
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as e:
        options = list(inspect.signature(cls).parameters)
        raise ValueError(f"{cls.__name__}: {e}; its options are {options}") from None
    return cls(**kwargs)


__all__ = [
    "ASHAScheduler",
    "AsyncHyperBandScheduler",
    "FIFOScheduler",
    "HyperBandScheduler",
    "MedianStoppingRule",
    "PopulationBasedTraining",
    "PopulationBasedTrainingReplay",
    "TrialScheduler",
    "create_scheduler",
]
