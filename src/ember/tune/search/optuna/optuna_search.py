"""Optuna as a ``Searcher``, through its ask-and-tell interface (Ray Tune's ``OptunaSearch``).

Each suggestion is an Optuna trial asked with fixed distributions (or, for a define-by-run
function, a trial that function fills in); its parameters are named by ``"a/b"`` paths and
handed back nested. Completed trials are told their value; a failed one is told FAIL, one
that stopped without the metric PRUNED. The study is created when the mode is known, its
direction following it."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

from ember.tune.result import TRAINING_ITERATION
from ember.tune.search.sample import (
    Categorical,
    Domain,
    Float,
    Integer,
    LogUniform,
    Quantized,
    Uniform,
)
from ember.tune.search.searcher import (
    UNDEFINED_METRIC_MODE,
    UNDEFINED_SEARCH_SPACE,
    Searcher,
)
from ember.tune.search.variant_generator import flatten_dict, parse_search_space, unflatten_dict

DEFAULT_METRIC = "_metric"


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as e:
        raise ImportError(
            "OptunaSearch needs the optuna library: pip install 'ember[optuna]'"
        ) from e
    return optuna


class OptunaSearch(Searcher):
    """``space`` is a dict of Tune domains or of Optuna distributions (nested dicts allowed),
    or a define-by-run function ``f(trial) -> dict | None`` that calls ``trial.suggest_*``
    and may return constants. Without it, the experiment's ``param_space`` is converted.
    ``points_to_evaluate`` are tried first; with ``evaluated_rewards`` they count as already
    evaluated. ``seed`` seeds the default TPE sampler."""

    def __init__(
        self,
        space: dict[str, Any] | Callable[[Any], dict[str, Any] | None] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        sampler: Any = None,
        seed: int | None = None,
        evaluated_rewards: list[float] | None = None,
    ) -> None:
        optuna = _import_optuna()
        super().__init__(metric=metric, mode=mode)
        if sampler is not None and not isinstance(sampler, optuna.samplers.BaseSampler):
            raise TypeError(f"sampler must be an optuna.samplers.BaseSampler, not {sampler!r}")
        if sampler is not None and seed is not None:
            warnings.warn(
                "OptunaSearch ignores seed when given a sampler: seed the sampler itself",
                stacklevel=2,
            )
        if evaluated_rewards is not None and len(evaluated_rewards) != len(
            points_to_evaluate or []
        ):
            raise ValueError("evaluated_rewards needs one value per point in points_to_evaluate")
        if space is not None and not callable(space) and not isinstance(space, dict):
            raise TypeError(
                "space must be a dict (Tune domains or Optuna distributions) or a "
                f"define-by-run function, not {type(space).__name__}"
            )
        self._space: dict[str, Any] | Callable[[Any], dict[str, Any] | None] | None = None
        if isinstance(space, dict) and space:
            self._space = self.convert_search_space(space) or flatten_dict(space)
        elif callable(space):
            self._space = space
        self._points = [flatten_dict(point) for point in points_to_evaluate or []]
        self._evaluated_rewards = evaluated_rewards
        self._sampler = sampler
        self._seed = seed
        self._study: Any = None
        self._ot_trials: dict[str, Any] = {}
        self._completed: set[str] = set()

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        taken = self._space is None
        if taken:
            self._space = self.convert_search_space(config)
        if metric and (taken or self._metric is None):
            self._metric = metric
        if mode and (taken or self._mode is None):
            self._mode = mode
        return taken

    def _ready_study(self) -> Any:
        if not self._space:
            raise RuntimeError(UNDEFINED_SEARCH_SPACE.format(cls="OptunaSearch", space="space"))
        if self._metric is None and self._mode:
            self._metric = DEFAULT_METRIC
        if not self._metric or not self._mode:
            raise RuntimeError(
                UNDEFINED_METRIC_MODE.format(
                    cls="OptunaSearch", metric=self._metric, mode=self._mode
                )
            )
        if self._study is None:
            optuna = _import_optuna()
            sampler = self._sampler or optuna.samplers.TPESampler(seed=self._seed)
            self._study = optuna.create_study(
                sampler=sampler,
                direction="minimize" if self._mode == "min" else "maximize",
            )
            if self._evaluated_rewards is not None:
                for point, reward in zip(self._points, self._evaluated_rewards, strict=True):
                    self.add_evaluated_point(point, reward)
            else:
                for point in self._points:
                    self._study.enqueue_trial(point)
        return self._study

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        study = self._ready_study()
        trial = self._ot_trials.get(trial_id)
        if callable(self._space):
            if trial is None:
                trial = self._ot_trials[trial_id] = study.ask()
            constants = self._space(trial)
            if constants is not None and not isinstance(constants, dict):
                raise TypeError(
                    "OptunaSearch's define-by-run function must return None or a dict of "
                    f"constants, not {type(constants).__name__}"
                )
            return unflatten_dict({**trial.params, **(constants or {})})
        if trial is None:
            trial = self._ot_trials[trial_id] = study.ask(fixed_distributions=self._space)
        return unflatten_dict(trial.params)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        trial = self._ot_trials.get(trial_id)
        value = result.get(self._metric or "")
        step = result.get(TRAINING_ITERATION)
        if trial is None or trial_id in self._completed or value is None or step is None:
            return
        trial.report(float(value), int(step))

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._completed:
            return
        self._completed.add(trial_id)
        from optuna.trial import TrialState

        value = (result or {}).get(self._metric or "")
        if value is not None and not math.isnan(float(value)):
            self._study.tell(trial, float(value), state=TrialState.COMPLETE)
        elif error:
            self._study.tell(trial, state=TrialState.FAIL)
        else:
            self._study.tell(trial, state=TrialState.PRUNED)

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        study = self._ready_study()
        if callable(self._space):
            raise TypeError(
                "OptunaSearch cannot take evaluated points with a define-by-run space; give it "
                "a dict of distributions or a param_space"
            )
        from optuna.trial import TrialState, create_trial

        state = TrialState.FAIL if error else TrialState.PRUNED if pruned else TrialState.COMPLETE
        study.add_trial(
            create_trial(
                state=state,
                value=None if state is TrialState.FAIL else value,
                params=flatten_dict(parameters),
                distributions=self._space,
                intermediate_values=dict(enumerate(intermediate_values or [])),
            )
        )

    @staticmethod
    def convert_search_space(spec: dict[str, Any]) -> dict[str, Any]:
        """Tune domains as Optuna distributions by ``"a/b"`` path. Constants and
        ``sample_from`` are left to the param space, grids are refused."""
        grids, domains = parse_search_space(spec)
        if grids:
            raise ValueError(
                "grid_search cannot be converted to an Optuna search space; use tune.choice"
            )
        return {
            "/".join(map(str, path)): _distribution(path, domain)
            for path, domain in domains
            if not domain.is_function()
        }


def _distribution(path: tuple[Any, ...], domain: Domain) -> Any:
    from optuna import distributions

    sampler = domain.get_sampler()
    q = None
    if isinstance(sampler, Quantized):
        q, sampler = sampler.q, sampler.get_sampler()
    log = isinstance(sampler, LogUniform)
    if isinstance(domain, Float) and isinstance(sampler, (Uniform, LogUniform)):
        # Optuna has no quantized log scale: log wins, as in Ray.
        step = None if log else q
        return distributions.FloatDistribution(domain.lower, domain.upper, log=log, step=step)
    if isinstance(domain, Integer) and isinstance(sampler, (Uniform, LogUniform)):
        step = 1 if log else int(q or 1)
        return distributions.IntDistribution(domain.lower, domain.upper - 1, log=log, step=step)
    if isinstance(domain, Categorical):
        return distributions.CategoricalDistribution(domain.categories)
    raise ValueError(
        f"Optuna cannot sample {'/'.join(map(str, path))!r} ({type(domain).__name__} with "
        f"{type(sampler).__name__}); use a uniform, log-uniform or categorical domain"
    )
