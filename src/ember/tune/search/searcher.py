"""The base class of search algorithms that suggest one configuration at a time (Ray Tune's
``Searcher``): Optuna, HyperOpt and users' own. The controller reaches a ``Searcher`` through
``SearchGenerator`` (``search_generator.py``), which makes its suggestions into trials."""

from __future__ import annotations

import pickle
from typing import Any

# Errors the searchers raise, worded as in Ray Tune, filled in with ``str.format``.
UNDEFINED_SEARCH_SPACE = (
    "{cls} has no search space: pass `{space}` to {cls}, or a `param_space` to tune.Tuner()"
)
UNDEFINED_METRIC_MODE = (
    "{cls} has no metric ({metric}) or mode ({mode}): pass them to {cls} or to tune.TuneConfig()"
)
UNRESOLVED_SEARCH_SPACE = (
    "{cls} was given Tune search domains in `{par}`; they are converted to its own format"
)


class Searcher:
    """Subclass and implement ``suggest`` and ``on_trial_complete``.

    ``suggest(trial_id)`` returns a configuration (a dict), ``None`` when it has nothing to
    suggest now (for example while it waits for results), or ``Searcher.FINISHED``."""

    FINISHED = "FINISHED"
    CKPT_FILE_TMPL = "searcher-state-{}.pkl"

    def __init__(self, metric: str | None = None, mode: str | None = None) -> None:
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
        self._metric = metric
        self._mode = mode

    @property
    def metric(self) -> str | None:
        return self._metric

    @property
    def mode(self) -> str | None:
        return self._mode

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        """Take the experiment's metric, mode and search space; False if this searcher was
        given its own already (then the experiment's are ignored, as in Ray)."""
        return False

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        raise NotImplementedError(f"{type(self).__name__} must implement suggest(trial_id)")

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        pass

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        pass

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot take evaluated points")

    def get_state(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))


class WrappedSearcher(Searcher):
    """A searcher that adds a behaviour around another one (``ConcurrencyLimiter``,
    ``Repeater``): the metric, mode and search space are the wrapped searcher's."""

    def __init__(self, searcher: Searcher) -> None:
        if not isinstance(searcher, Searcher):
            raise TypeError(
                f"{type(self).__name__} wraps a Searcher, not {type(searcher).__name__}"
            )
        super().__init__()
        self.searcher = searcher

    @property
    def metric(self) -> str | None:
        return self.searcher.metric

    @property
    def mode(self) -> str | None:
        return self.searcher.mode

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)
