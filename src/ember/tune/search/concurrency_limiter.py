"""Caps how many of a searcher's suggestions run at once (Ray Tune's ``ConcurrencyLimiter``):
a model-based searcher learns more from results than from many guesses made in parallel."""

from __future__ import annotations

from typing import Any

from ember.tune.search.searcher import Searcher, WrappedSearcher


class ConcurrencyLimiter(WrappedSearcher):
    """At most ``max_concurrent`` live trials. With ``batch``, a new batch starts only when the
    whole last one has finished, and the searcher hears of its results together."""

    def __init__(self, searcher: Searcher, max_concurrent: int, batch: bool = False) -> None:
        if not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be a positive int, not {max_concurrent!r}")
        super().__init__(searcher)
        self.max_concurrent = max_concurrent
        self.batch = batch
        self.live_trials: set[str] = set()
        self._unfinished = 0
        self._held: dict[str, tuple[dict[str, Any] | None, bool]] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if len(self.live_trials) >= self.max_concurrent:
            return None
        suggestion = self.searcher.suggest(trial_id)
        if isinstance(suggestion, dict):
            self.live_trials.add(trial_id)
            self._unfinished += 1
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self.live_trials:
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if trial_id not in self.live_trials or trial_id in self._held:
            return
        self._unfinished -= 1
        if not self.batch:
            self.live_trials.discard(trial_id)
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
            return
        self._held[trial_id] = (result, error)
        if self._unfinished == 0:
            for held_id, (held_result, held_error) in self._held.items():
                self.searcher.on_trial_complete(held_id, result=held_result, error=held_error)
            self.live_trials.clear()
            self._held.clear()

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        self.searcher.add_evaluated_point(parameters, value, error, pruned, intermediate_values)

    def get_state(self) -> dict[str, Any]:
        own = {k: v for k, v in self.__dict__.items() if k != "searcher"}
        return {"limiter": own, "searcher": self.searcher.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state["limiter"])
        self.searcher.set_state(state["searcher"])
