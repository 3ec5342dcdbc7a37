"""Runs each suggestion several times and tells the searcher the average (Ray Tune's
``Repeater``), for noisy objectives where one run says little."""

from __future__ import annotations

import copy
import math
from typing import Any

from ember.tune.search.searcher import Searcher, WrappedSearcher

TRIAL_INDEX = "__trial_index__"


class _Group:
    """The trials that run one suggestion; the first one's id is the searcher's."""

    def __init__(self, primary_trial_id: str, config: dict[str, Any]) -> None:
        self.primary_trial_id = primary_trial_id
        self.config = config
        self.trial_ids: list[str] = []
        self.scores: dict[str, float] = {}


class Repeater(WrappedSearcher):
    """Each suggestion runs as ``repeat`` trials (``num_samples`` should be a multiple of it);
    with ``set_index``, ``config["__trial_index__"]`` tells a trial which repetition it is, for
    example to seed it."""

    def __init__(self, searcher: Searcher, repeat: int = 1, set_index: bool = True) -> None:
        if not isinstance(repeat, int) or repeat < 1:
            raise ValueError(f"repeat must be a positive int, not {repeat!r}")
        super().__init__(searcher)
        self.repeat = repeat
        self.set_index = set_index
        self._current: _Group | None = None
        self._groups: dict[str, _Group] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        group = self._current
        if group is None or len(group.trial_ids) >= self.repeat:
            suggestion = self.searcher.suggest(trial_id)
            if not isinstance(suggestion, dict):
                return suggestion
            group = self._current = _Group(trial_id, suggestion)
        config = copy.deepcopy(group.config)
        if self.set_index:
            config[TRIAL_INDEX] = len(group.trial_ids)
        group.trial_ids.append(trial_id)
        self._groups[trial_id] = group
        return config

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        group = self._groups.pop(trial_id, None)
        if group is None:
            return
        metric = self.searcher.metric
        score = math.nan
        if not error and result and metric in result:
            score = float(result[metric])
        group.scores[trial_id] = score
        if len(group.scores) < self.repeat:
            return
        valid = [s for s in group.scores.values() if not math.isnan(s)]
        if valid and metric is not None:
            average = {metric: sum(valid) / len(valid)}
            self.searcher.on_trial_complete(group.primary_trial_id, result=average)
        else:
            self.searcher.on_trial_complete(group.primary_trial_id, error=True)

    def get_state(self) -> dict[str, Any]:
        own = {k: v for k, v in self.__dict__.items() if k != "searcher"}
        return {"repeater": own, "searcher": self.searcher.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state["repeater"])
        self.searcher.set_state(state["searcher"])
