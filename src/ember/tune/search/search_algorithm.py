"""What the controller asks of a search algorithm: the next trial's configuration.

``BasicVariantGenerator`` (grids and random sampling) implements it directly; a ``Searcher``
is wrapped in a ``SearchGenerator``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Suggestion:
    """A new trial's configuration (every value resolved), the values that were searched, and
    its tag (``"3_lr=0.0100,layers=2"``), which names its folder."""

    config: dict[str, Any]
    evaluated_params: dict[str, Any] = field(default_factory=dict)
    experiment_tag: str = ""


class SearchAlgorithm:
    """Base class; the controller calls these methods from its one thread."""

    _finished = False

    @property
    def metric(self) -> str | None:
        return None

    @property
    def mode(self) -> str | None:
        return None

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        return True

    def add_configurations(self, param_space: dict[str, Any], num_samples: int = 1) -> None:
        """The experiment's search space and how many times to sample it (grids multiply)."""
        raise NotImplementedError

    @property
    def total_samples(self) -> int | None:
        """How many trials this will make, when known in advance."""
        return None

    def next_trial(self, trial_id: str) -> Suggestion | None:
        """The configuration for a new trial with this id, or None if there is none now (the
        same id is offered again next time)."""
        raise NotImplementedError

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        pass

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        pass

    def is_finished(self) -> bool:
        return self._finished

    def set_finished(self) -> None:
        self._finished = True

    def get_state(self) -> dict[str, Any]:
        """What ``Tuner.restore`` needs to go on without repeating suggestions."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        pass
