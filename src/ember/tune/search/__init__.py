"""Search algorithms (``ray.tune.search``): grid and random search by default, model-based
searchers (Optuna, HyperOpt) wrapped for the controller. The optional libraries load only when
their searcher is built."""

from __future__ import annotations

from typing import Any

from ember.tune.search.basic_variant import BasicVariantGenerator
from ember.tune.search.concurrency_limiter import ConcurrencyLimiter
from ember.tune.search.repeater import Repeater
from ember.tune.search.search_algorithm import SearchAlgorithm
from ember.tune.search.search_generator import SearchGenerator
from ember.tune.search.searcher import (
    UNDEFINED_METRIC_MODE,
    UNDEFINED_SEARCH_SPACE,
    UNRESOLVED_SEARCH_SPACE,
    Searcher,
)


def create_searcher(search_alg: str, **kwargs: Any) -> Searcher | SearchAlgorithm:
    """A search algorithm by name: ``"variant_generator"`` (or ``"random"``), ``"optuna"``,
    ``"hyperopt"``; ``kwargs`` go to its constructor."""
    name = search_alg.lower()
    if name in ("variant_generator", "random"):
        return BasicVariantGenerator(**kwargs)
    if name == "optuna":
        from ember.tune.search.optuna import OptunaSearch

        return OptunaSearch(**kwargs)
    if name == "hyperopt":
        from ember.tune.search.hyperopt import HyperOptSearch

        return HyperOptSearch(**kwargs)
    raise ValueError(
        f"unknown search algorithm {search_alg!r}; choose one of 'variant_generator', "
        "'random', 'optuna', 'hyperopt'"
    )


__all__ = [
    "UNDEFINED_METRIC_MODE",
    "UNDEFINED_SEARCH_SPACE",
    "UNRESOLVED_SEARCH_SPACE",
    "BasicVariantGenerator",
    "ConcurrencyLimiter",
    "Repeater",
    "SearchAlgorithm",
    "SearchGenerator",
    "Searcher",
    "create_searcher",
]
