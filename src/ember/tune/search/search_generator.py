"""A ``Searcher`` as the controller's ``SearchAlgorithm`` (Ray Tune's ``SearchGenerator``).

The searcher suggests the searched values; the rest of the configuration comes from the
param space: its plain values are laid under each suggestion, and anything still unresolved
(a ``sample_from`` that reads suggested values, a domain the searcher does not cover) is
resolved as the basic variant generator would. ``num_samples`` bounds the trials."""

from __future__ import annotations

from typing import Any

import cloudpickle

from ember.tune.search.sample import Domain, Rng
from ember.tune.search.search_algorithm import SearchAlgorithm, Suggestion
from ember.tune.search.searcher import Searcher
from ember.tune.search.variant_generator import (
    copy_structure,
    flatten_dict,
    format_vars,
    generate_variants,
    has_unresolved_values,
    merge_dicts,
    parse_search_space,
)


class SearchGenerator(SearchAlgorithm):
    def __init__(self, searcher: Searcher) -> None:
        if not isinstance(searcher, Searcher):
            raise TypeError(
                f"SearchGenerator wraps a tune.search.Searcher, not {type(searcher).__name__}"
            )
        self.searcher = searcher
        self._space: dict[str, Any] = {}
        self._num_samples: int | None = None
        self._counter = 0
        self._rng = Rng(None)
        # Whether the searcher took the param space as its own: asked once, so that a restored
        # generator asked again does not mistake that space for one the searcher came with.
        self._took_space = False

    @property
    def metric(self) -> str | None:
        return self.searcher.metric

    @property
    def mode(self) -> str | None:
        return self.searcher.mode

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        if self._took_space:
            return True
        taken = self._took_space = self.searcher.set_search_properties(metric, mode, config, **spec)
        _, domains = parse_search_space(config)
        if not taken and any(not domain.is_function() for _, domain in domains):
            raise ValueError(
                f"the param_space has search domains, but {type(self.searcher).__name__} was "
                "given its own search space; define the space in one place only"
            )
        return taken

    def add_configurations(self, param_space: dict[str, Any], num_samples: int = 1) -> None:
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, not {num_samples!r}")
        grids, _ = parse_search_space(param_space)
        if grids:
            paths = ", ".join("/".join(map(str, path)) for path, _ in grids)
            raise ValueError(
                f"grid_search ({paths}) cannot be used with a searcher; use tune.choice, or "
                "the default BasicVariantGenerator for a grid"
            )
        self._space = copy_structure(param_space)
        self._num_samples = num_samples

    @property
    def total_samples(self) -> int | None:
        return self._num_samples

    def next_trial(self, trial_id: str) -> Suggestion | None:
        if self.is_finished():
            return None
        suggested = self.searcher.suggest(trial_id)
        if suggested == Searcher.FINISHED:
            self.set_finished()
            return None
        if suggested is None:
            return None
        if not isinstance(suggested, dict):
            raise TypeError(
                f"{type(self.searcher).__name__}.suggest returned {suggested!r}; it must return "
                "a dict, None or Searcher.FINISHED"
            )
        config = merge_dicts(self._space, copy_structure(suggested))
        if has_unresolved_values(config):
            _, config = next(generate_variants(config, random_state=self._rng))
        self._counter += 1
        evaluated = {
            name: value
            for name, value in flatten_dict(suggested).items()
            if not isinstance(value, Domain)  # a sample_from the searcher passed through
        }
        tag = f"{self._counter}_" + format_vars(
            {tuple(name.split("/")): value for name, value in evaluated.items()}
        )
        return Suggestion(config, evaluated, tag)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def is_finished(self) -> bool:
        done = self._num_samples is not None and self._counter >= self._num_samples
        return self._finished or done

    def get_state(self) -> dict[str, Any]:
        """The searcher's state is pickled with cloudpickle: it may hold users' functions."""
        return {
            "counter": self._counter,
            "finished": self._finished,
            "took_space": self._took_space,
            "searcher": cloudpickle.dumps(self.searcher.get_state()),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._counter = state["counter"]
        self._finished = state["finished"]
        self._took_space = state["took_space"]
        self.searcher.set_state(cloudpickle.loads(state["searcher"]))
