"""The default search algorithm: every grid point, ``num_samples`` times, random values drawn
afresh (Ray Tune's ``BasicVariantGenerator``).

Variants are made one at a time as the controller asks, so a large grid costs nothing up
front. The state for ``Tuner.restore`` is small: how many variants were handed out and the
random generator's state; a restored generator skips straight to the next variant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ember.tune.search.sample import RandomState, Rng
from ember.tune.search.search_algorithm import SearchAlgorithm, Suggestion
from ember.tune.search.variant_generator import (
    Path,
    assign_value,
    copy_structure,
    count_variants,
    flatten_resolved_vars,
    format_vars,
    generate_variants,
    get_value,
    is_grid,
)


class BasicVariantGenerator(SearchAlgorithm):
    """Grid and random search.

    ``points_to_evaluate`` are (partial) configurations tried first: each takes the place of
    one of the ``num_samples`` samples, its values fixed and the rest of the space (grids
    included) expanded and sampled as usual. ``max_concurrent`` (0: no limit) caps the trials
    running at once. With ``constant_grid_search`` the random values are drawn once per sample
    and shared by its grid points. ``random_state`` (a seed or a numpy generator) makes the
    sampling reproducible."""

    def __init__(
        self,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        max_concurrent: int = 0,
        constant_grid_search: bool = False,
        random_state: RandomState = None,
    ) -> None:
        if not isinstance(max_concurrent, int) or max_concurrent < 0:
            raise ValueError(
                f"max_concurrent must be an int >= 0 (0: no limit), not {max_concurrent!r}"
            )
        if points_to_evaluate is not None and not all(
            isinstance(point, dict) for point in points_to_evaluate
        ):
            raise ValueError("points_to_evaluate must be a list of dicts (partial configurations)")
        self._points = list(points_to_evaluate or [])
        self.max_concurrent = max_concurrent
        self._constant_grid_search = constant_grid_search
        self._rng = Rng(random_state)
        # (spec, how many variants one sample of it makes, how many samples of it)
        self._samples: list[tuple[dict[str, Any], int, int]] = []
        self._total = 0
        self._handed_out = 0
        self._variants: Iterator[tuple[dict[Path, Any], dict[str, Any]]] | None = None
        self._live: set[str] = set()

    @property
    def total_samples(self) -> int:
        return self._total

    def add_configurations(self, param_space: dict[str, Any], num_samples: int = 1) -> None:
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, not {num_samples!r}")
        space = copy_structure(param_space)
        if count_variants(space) == 0:
            raise ValueError("the param_space has a grid_search with no values: it makes no trials")
        for point in self._points:
            preset = _preset(space, point)
            self._samples.append((preset, count_variants(preset), 1))
        repeats = num_samples - len(self._points)
        if repeats > 0:
            self._samples.append((space, count_variants(space), repeats))
        self._total = sum(count * repeats for _, count, repeats in self._samples)
        self._variants = None

    def _generate(self, skip: int) -> Iterator[tuple[dict[Path, Any], dict[str, Any]]]:
        for spec, count, repeats in self._samples:
            if skip >= count * repeats:
                skip -= count * repeats
                continue
            first, skip = divmod(skip, count)
            for _ in range(first, repeats):
                yield from generate_variants(spec, self._constant_grid_search, self._rng, skip)
                skip = 0
            skip = 0

    def next_trial(self, trial_id: str) -> Suggestion | None:
        if self._finished:
            return None
        if self.max_concurrent and len(self._live) >= self.max_concurrent:
            return None
        if self._variants is None:
            self._variants = self._generate(self._handed_out)
        try:
            resolved_vars, config = next(self._variants)
        except StopIteration:
            self.set_finished()
            return None
        tag = str(self._handed_out)
        if resolved_vars:
            tag += "_" + format_vars(resolved_vars)
        self._handed_out += 1
        self._live.add(trial_id)
        return Suggestion(config, flatten_resolved_vars(resolved_vars), tag)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self._live.discard(trial_id)

    def is_finished(self) -> bool:
        return self._finished or (bool(self._samples) and self._handed_out >= self._total)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (a Tuner may be saved whole): the running generator is rebuilt on use."""
        return {**self.__dict__, "_variants": None}

    def get_state(self) -> dict[str, Any]:
        """How far it got and the generator's state. With ``constant_grid_search``, a sample
        cut in two by a restore draws its shared random values again for the rest."""
        return {
            "handed_out": self._handed_out,
            "rng": self._rng.get_state(),
            "live": sorted(self._live),
            "finished": self._finished,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._handed_out = state["handed_out"]
        self._rng.set_state(state["rng"])
        self._live = set(state["live"])
        self._finished = state["finished"]
        self._variants = None


def _preset(param_space: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """The space with a point's values fixed; a key the space lacks is an error."""
    spec: dict[str, Any] = copy_structure(param_space)

    def fix(values: dict[str, Any], path: Path) -> None:
        for key, value in values.items():
            here = (*path, key)
            try:
                current = get_value(spec, here)
            except (KeyError, IndexError, TypeError):
                raise ValueError(
                    f"points_to_evaluate sets {'/'.join(map(str, here))!r}, which is not in the "
                    "param_space; add it there (as a value or a search domain)"
                ) from None
            if isinstance(value, dict) and isinstance(current, dict) and not is_grid(current):
                fix(value, here)
            else:
                assign_value(spec, here, value)

    fix(point, ())
    return spec
