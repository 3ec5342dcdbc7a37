"""HyperOpt's TPE as a ``Searcher`` (Ray Tune's ``HyperOptSearch``).

HyperOpt is built around ``fmin`` driving the objective itself; here its ``Trials`` object is
driven by hand instead: each suggestion asks ``tpe.suggest`` for one new trial document and
inserts it, each completion marks that document done with its loss (the metric, negated for
``mode="max"``: HyperOpt only minimizes) or as an error. Parameters are labelled by their
``"a/b"`` path in the configuration."""

from __future__ import annotations

import copy
import functools
import math
from typing import Any

import numpy as np

from ember.tune.search.sample import (
    Categorical,
    Domain,
    Float,
    Integer,
    LogUniform,
    Normal,
    Quantized,
    Uniform,
)
from ember.tune.search.searcher import (
    UNDEFINED_METRIC_MODE,
    UNDEFINED_SEARCH_SPACE,
    Searcher,
)
from ember.tune.search.variant_generator import (
    assign_value,
    copy_structure,
    flatten_dict,
    parse_search_space,
)

DEFAULT_METRIC = "_metric"


def _import_hyperopt() -> Any:
    try:
        import hyperopt
    except ImportError as e:
        raise ImportError(
            "HyperOptSearch needs the hyperopt library: pip install 'ember[hyperopt]'"
        ) from e
    return hyperopt


class HyperOptSearch(Searcher):
    """``space`` is a dict of Tune domains or a HyperOpt space (``hp.*`` expressions); without
    it, the experiment's ``param_space`` is converted. ``points_to_evaluate`` (complete
    configurations) are tried first. The first ``n_initial_points`` suggestions are random,
    then TPE with ``gamma`` takes over; ``random_state_seed`` makes them reproducible."""

    def __init__(
        self,
        space: dict[str, Any] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        n_initial_points: int = 20,
        random_state_seed: int | None = None,
        gamma: float = 0.25,
    ) -> None:
        hyperopt = _import_hyperopt()
        super().__init__(metric=metric, mode=mode)
        if space is not None and not isinstance(space, dict):
            raise TypeError(f"space must be a dict, not {type(space).__name__}")
        if not 0 < gamma < 1:
            raise ValueError(f"gamma must be between 0 and 1, not {gamma}")
        self._space: dict[str, Any] | None = None
        self._categories: dict[str, list[Any]] = {}
        if space:
            self._take_space(space)
        self._points = list(points_to_evaluate or [])
        self._algo = functools.partial(
            hyperopt.tpe.suggest, n_startup_jobs=n_initial_points, gamma=gamma
        )
        self._rng = np.random.default_rng(random_state_seed)
        self._trials = hyperopt.Trials()
        self._live: dict[str, int] = {}
        self._domain: Any = None

    def _take_space(self, space: dict[str, Any]) -> None:
        grids, domains = parse_search_space(space)
        if grids:
            raise ValueError(
                "grid_search cannot be converted to a HyperOpt search space; use tune.choice"
            )
        if domains:
            space, self._categories = _convert(space)
        self._space = space

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        taken = self._space is None
        if taken:
            self._take_space(config)
        if metric and (taken or self._metric is None):
            self._metric = metric
        if mode and (taken or self._mode is None):
            self._mode = mode
        return taken

    def _ready_domain(self) -> Any:
        if not self._space:
            raise RuntimeError(UNDEFINED_SEARCH_SPACE.format(cls="HyperOptSearch", space="space"))
        if self._metric is None and self._mode:
            self._metric = DEFAULT_METRIC
        if not self._metric or not self._mode:
            raise RuntimeError(
                UNDEFINED_METRIC_MODE.format(
                    cls="HyperOptSearch", metric=self._metric, mode=self._mode
                )
            )
        if self._domain is None:
            self._domain = _import_hyperopt().Domain(_identity, self._space)
        return self._domain

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        hyperopt = _import_hyperopt()
        domain = self._ready_domain()
        (tid,) = self._trials.new_trial_ids(1)
        if self._points:
            vals = self._point_vals(self._points.pop(0), domain)
            misc = {
                "tid": tid,
                "cmd": domain.cmd,
                "workdir": domain.workdir,
                "idxs": {label: [tid] for label in vals},
                "vals": {label: [value] for label, value in vals.items()},
            }
            doc = self._trials.new_trial_docs(
                [tid], [None], [{"status": hyperopt.STATUS_NEW}], [misc]
            )[0]
        else:
            self._trials.refresh()
            seed = int(self._rng.integers(2**31 - 1))
            doc = self._algo([tid], domain, self._trials, seed)[0]
        self._trials.insert_trial_docs([doc])
        self._trials.refresh()
        self._live[trial_id] = tid
        chosen = {label: values[0] for label, values in doc["misc"]["vals"].items() if values}
        config: dict[str, Any] = _plain(copy.deepcopy(hyperopt.space_eval(self._space, chosen)))
        return config

    def _point_vals(self, point: dict[str, Any], domain: Any) -> dict[str, Any]:
        """A configuration as HyperOpt's values: by label, a choice as its index."""
        flat = flatten_dict(point)
        vals: dict[str, Any] = {}
        for label in domain.params:
            if label not in flat:
                raise ValueError(
                    f"a point in points_to_evaluate has no value for {label!r}; HyperOptSearch "
                    "needs complete points"
                )
            value = flat[label]
            if label in self._categories:
                if value not in self._categories[label]:
                    raise ValueError(
                        f"points_to_evaluate sets {label!r} to {value!r}, which is not one of "
                        f"its choices {self._categories[label]!r}"
                    )
                value = self._categories[label].index(value)
            vals[label] = value
        return vals

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        tid = self._live.pop(trial_id, None)
        if tid is None:
            return
        hyperopt = _import_hyperopt()
        doc = next(d for d in self._trials.trials if d["tid"] == tid)
        doc["refresh_time"] = hyperopt.utils.coarse_utcnow()
        value = (result or {}).get(self._metric or "")
        if error or value is None or math.isnan(float(value)):
            doc["state"] = hyperopt.JOB_STATE_ERROR
            doc["misc"]["error"] = ("TuneError", "the trial failed or did not report the metric")
        else:
            loss = float(value) if self._mode == "min" else -float(value)
            doc["state"] = hyperopt.JOB_STATE_DONE
            doc["result"] = {"loss": loss, "status": hyperopt.STATUS_OK}
        self._trials.refresh()

    def get_state(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_domain"] = None  # rebuilt on use
        return state


def _identity(config: Any) -> Any:
    return config


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, so configurations stay plain (and JSON-friendly)."""
    if isinstance(value, dict):
        return {key: _plain(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_plain(child) for child in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _convert(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Tune domains as ``hp.*`` expressions labelled by path, and each choice's categories."""
    space = copy_structure(spec)
    categories: dict[str, list[Any]] = {}
    _, domains = parse_search_space(space)
    for path, domain in domains:
        assign_value(space, path, _expression("/".join(map(str, path)), domain, categories))
    return space, categories


def _expression(label: str, domain: Domain, categories: dict[str, list[Any]]) -> Any:
    from hyperopt import hp
    from hyperopt.pyll import scope

    if domain.is_function():
        return domain  # resolved from the rest of the configuration afterwards
    if isinstance(domain, Categorical):
        categories[label] = domain.categories
        options = []
        for index, category in enumerate(domain.categories):
            if isinstance(category, (dict, list)) and parse_search_space(category)[1]:
                converted = copy_structure(category)
                for path, inner in parse_search_space(converted)[1]:
                    inner_label = "/".join([label, str(index), *map(str, path)])
                    assign_value(converted, path, _expression(inner_label, inner, categories))
                options.append(converted)
            else:
                options.append(category)
        return hp.choice(label, options)
    sampler = domain.get_sampler()
    q = None
    if isinstance(sampler, Quantized):
        q, sampler = sampler.q, sampler.get_sampler()
    if isinstance(domain, Float):
        if isinstance(sampler, LogUniform):
            low, high = math.log(domain.lower), math.log(domain.upper)
            return hp.qloguniform(label, low, high, q) if q else hp.loguniform(label, low, high)
        if isinstance(sampler, Uniform):
            low, high = domain.lower, domain.upper
            return hp.quniform(label, low, high, q) if q else hp.uniform(label, low, high)
        if isinstance(sampler, Normal):
            mean, sd = sampler.mean, sampler.sd
            return hp.qnormal(label, mean, sd, q) if q else hp.normal(label, mean, sd)
    if isinstance(domain, Integer):
        if isinstance(sampler, LogUniform):
            low, high = math.log(domain.lower), math.log(domain.upper - 1)
            return scope.int(hp.qloguniform(label, low, high, q or 1))
        if isinstance(sampler, Uniform):
            if q:
                return scope.int(hp.quniform(label, domain.lower, domain.upper - 1, q))
            return hp.randint(label, domain.lower, domain.upper)
    raise ValueError(
        f"HyperOpt cannot sample {label!r} ({type(domain).__name__} with {type(sampler).__name__})"
    )
