"""Searchers driven by plain calls: SearchGenerator, ConcurrencyLimiter, Repeater, OptunaSearch
and HyperOptSearch (on the real libraries), create_searcher. No Ember processes."""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import Any

import pytest

from ember.tune.search import (
    BasicVariantGenerator,
    ConcurrencyLimiter,
    Repeater,
    Searcher,
    SearchGenerator,
    create_searcher,
)
from ember.tune.search import sample as s
from ember.tune.search.hyperopt import HyperOptSearch
from ember.tune.search.optuna import OptunaSearch


class Listed(Searcher):
    """Suggests the given configurations in order, then FINISHED; records what it is told."""

    def __init__(self, configs: list[dict[str, Any]], metric: str = "loss") -> None:
        super().__init__(metric=metric, mode="min")
        self.configs = list(configs)
        self.results: list[tuple[str, Any, bool]] = []
        self.intermediate: list[str] = []
        self.given_space: dict[str, Any] | None = None

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        self.given_space = config
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        return self.configs.pop(0) if self.configs else Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.intermediate.append(trial_id)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.results.append((trial_id, result, error))


def quadratic(config: dict[str, Any]) -> float:
    return (config["x"] - 1.5) ** 2 + (config["y"] + 2) ** 2


def optimize(searcher: Searcher, space: dict[str, Any], mode: str, n: int) -> float:
    """Run ``n`` trials of the quadratic through a SearchGenerator; the best loss found."""
    gen = SearchGenerator(searcher)
    gen.set_search_properties("score" if mode == "max" else "loss", mode, space)
    gen.add_configurations(space, n)
    best = float("inf")
    for i in range(n):
        suggestion = gen.next_trial(f"t{i}")
        assert suggestion is not None
        loss = quadratic(suggestion.config)
        result = {"score": -loss} if mode == "max" else {"loss": loss}
        gen.on_trial_complete(f"t{i}", result)
        best = min(best, loss)
    assert gen.next_trial("extra") is None and gen.is_finished()
    return best


QUADRATIC = {"x": s.uniform(-5, 5), "y": s.uniform(-5, 5)}


# ------------------------------------------------------------------------- SearchGenerator


def test_search_generator_merges_constants_and_resolves_the_rest() -> None:
    searcher = Listed([{"lr": 0.1, "net": {"width": 8}}, {"lr": 0.2, "net": {"width": 4}}])
    gen = SearchGenerator(searcher)
    space = {
        "lr": s.uniform(0, 1),
        "net": {"width": s.randint(1, 9), "depth": 3},
        "double": s.sample_from(lambda spec: spec.config.lr * 2),
        "name": "run",
    }
    assert gen.set_search_properties("loss", "min", space)
    assert searcher.given_space is space
    gen.add_configurations(space, num_samples=5)
    assert gen.total_samples == 5
    first = gen.next_trial("a")
    assert first is not None
    assert first.config == {
        "lr": 0.1,
        "net": {"width": 8, "depth": 3},
        "double": 0.2,
        "name": "run",
    }
    assert first.evaluated_params == {"lr": 0.1, "net/width": 8}
    assert first.experiment_tag == "1_lr=0.1000,width=8"
    assert gen.next_trial("b") is not None
    assert gen.next_trial("c") is None and gen.is_finished()  # Searcher.FINISHED ends it


def test_search_generator_forwards_results_and_bounds_the_trials() -> None:
    searcher = Listed([{"x": i} for i in range(10)])
    gen = SearchGenerator(searcher)
    gen.set_search_properties("loss", "min", {})
    gen.add_configurations({}, 2)
    assert gen.next_trial("a") is not None and gen.next_trial("b") is not None
    assert gen.is_finished() and gen.next_trial("c") is None
    gen.on_trial_result("a", {"loss": 1})
    gen.on_trial_complete("a", {"loss": 1})
    gen.on_trial_complete("b", None, error=True)
    assert searcher.intermediate == ["a"]
    assert searcher.results == [("a", {"loss": 1}, False), ("b", None, True)]


def test_search_generator_waits_when_the_searcher_has_nothing() -> None:
    class Waiting(Searcher):
        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            return None

    gen = SearchGenerator(Waiting())
    gen.add_configurations({}, 3)
    assert gen.next_trial("a") is None and not gen.is_finished()


def test_search_generator_refuses_what_it_cannot_do() -> None:
    with pytest.raises(TypeError, match="wraps a tune.search.Searcher"):
        SearchGenerator(BasicVariantGenerator())  # type: ignore[arg-type]
    gen = SearchGenerator(Listed([]))
    with pytest.raises(ValueError, match="grid_search \\(a\\) cannot be used with a searcher"):
        gen.add_configurations({"a": s.grid_search([1, 2])}, 1)

    class OwnSpace(Searcher):
        pass

    with pytest.raises(ValueError, match="its own search space"):
        SearchGenerator(OwnSpace()).set_search_properties("m", "min", {"a": s.uniform(0, 1)})

    class Broken(Searcher):
        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            return "nonsense"

    broken = SearchGenerator(Broken())
    broken.add_configurations({}, 1)
    with pytest.raises(TypeError, match="must return a dict"):
        broken.next_trial("a")


def test_search_generator_state_round_trip() -> None:
    searcher = Listed([{"x": i} for i in range(4)])
    gen = SearchGenerator(searcher)
    gen.add_configurations({}, 4)
    gen.next_trial("a")
    state = pickle.loads(pickle.dumps(gen.get_state()))

    fresh = SearchGenerator(Listed([]))
    fresh.add_configurations({}, 4)
    fresh.set_state(state)
    tags = [sg.experiment_tag for sg in iter(lambda: fresh.next_trial("t"), None)]
    assert tags == ["2_x=1", "3_x=2", "4_x=3"]


# ------------------------------------------------------------------ ConcurrencyLimiter, Repeater


def test_concurrency_limiter_caps_live_trials() -> None:
    inner = Listed([{"x": i} for i in range(5)])
    limiter = ConcurrencyLimiter(inner, max_concurrent=2)
    assert limiter.metric == "loss"
    assert limiter.suggest("a") == {"x": 0} and limiter.suggest("b") == {"x": 1}
    assert limiter.suggest("c") is None
    limiter.on_trial_result("a", {"loss": 3})
    limiter.on_trial_complete("a", {"loss": 3})
    assert inner.intermediate == ["a"] and inner.results == [("a", {"loss": 3}, False)]
    assert limiter.suggest("c") == {"x": 2}


def test_concurrency_limiter_batch_waits_for_the_whole_batch() -> None:
    inner = Listed([{"x": i} for i in range(5)])
    limiter = ConcurrencyLimiter(inner, max_concurrent=2, batch=True)
    limiter.suggest("a")
    limiter.suggest("b")
    limiter.on_trial_complete("a", {"loss": 1})
    assert limiter.suggest("c") is None and inner.results == []
    limiter.on_trial_complete("b", {"loss": 2})
    assert [r[0] for r in inner.results] == ["a", "b"]
    assert limiter.suggest("c") == {"x": 2}


def test_concurrency_limiter_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="max_concurrent must be a positive int"):
        ConcurrencyLimiter(Listed([]), max_concurrent=0)


def test_repeater_repeats_and_reports_the_average() -> None:
    inner = Listed([{"x": 1}, {"x": 2}])
    repeater = Repeater(inner, repeat=3)
    configs = [repeater.suggest(f"t{i}") for i in range(4)]
    assert configs[:3] == [{"x": 1, "__trial_index__": i} for i in range(3)]
    assert configs[3] == {"x": 2, "__trial_index__": 0}
    repeater.on_trial_complete("t0", {"loss": 1.0})
    repeater.on_trial_complete("t1", None, error=True)
    assert inner.results == []
    repeater.on_trial_complete("t2", {"loss": 3.0})
    assert inner.results == [("t0", {"loss": 2.0}, False)]


def test_repeater_without_index_and_all_failed() -> None:
    inner = Listed([{"x": 1}])
    repeater = Repeater(inner, repeat=2, set_index=False)
    assert repeater.suggest("a") == {"x": 1} and repeater.suggest("b") == {"x": 1}
    repeater.on_trial_complete("a", error=True)
    repeater.on_trial_complete("b", {"other": 1})
    assert inner.results == [("a", None, True)]
    assert repeater.suggest("c") == Searcher.FINISHED
    with pytest.raises(ValueError, match="repeat must be a positive int"):
        Repeater(inner, repeat=0)


def test_wrappers_state_round_trip() -> None:
    limiter = ConcurrencyLimiter(Repeater(Listed([{"x": 1}, {"x": 2}]), repeat=2), 3)
    limiter.suggest("a")
    state = pickle.loads(pickle.dumps(limiter.get_state()))
    fresh = ConcurrencyLimiter(Repeater(Listed([]), repeat=2), 3)
    fresh.set_state(state)
    assert fresh.live_trials == {"a"}
    assert fresh.suggest("b") == {"x": 1, "__trial_index__": 1}
    assert fresh.suggest("c") == {"x": 2, "__trial_index__": 0}


# --------------------------------------------------------------------------------- Optuna


@pytest.mark.parametrize("mode", ["min", "max"])
def test_optuna_finds_the_minimum_of_a_quadratic(mode: str) -> None:
    assert optimize(OptunaSearch(seed=0), QUADRATIC, mode, 60) < 0.5


def test_optuna_takes_its_own_distributions_and_nested_spaces() -> None:
    import optuna

    search = OptunaSearch(
        {"x": optuna.distributions.FloatDistribution(-5, 5), "y": s.uniform(-5, 5)},
        metric="loss",
        mode="min",
        seed=1,
    )
    with pytest.raises(ValueError, match="its own search space"):
        SearchGenerator(search).set_search_properties("loss", "min", QUADRATIC)

    nested = OptunaSearch(
        {"a": {"b": s.qrandint(0, 10, 2), "c": s.choice(["u", "v"])}, "d": s.loguniform(1, 10)},
        metric="loss",
        mode="min",
        seed=1,
    )
    config = nested.suggest("t")
    assert isinstance(config, dict)
    assert config["a"]["b"] in range(0, 11, 2) and config["a"]["c"] in ("u", "v")
    assert 1 <= config["d"] <= 10


def test_optuna_define_by_run() -> None:
    def space(trial: Any) -> dict[str, Any]:
        trial.suggest_float("x", -5, 5)
        trial.suggest_float("y", -5, 5)
        return {"constant": 1}

    search = OptunaSearch(space, metric="loss", mode="min", seed=0)
    best = float("inf")
    for i in range(40):
        config = search.suggest(str(i))
        assert isinstance(config, dict) and config["constant"] == 1
        loss = quadratic(config)
        search.on_trial_complete(str(i), {"loss": loss})
        best = min(best, loss)
    assert best < 1.0


def test_optuna_points_rewards_errors_and_pruning_reports() -> None:
    search = OptunaSearch(
        QUADRATIC,
        metric="loss",
        mode="min",
        points_to_evaluate=[{"x": 1.5, "y": -2.0}],
        seed=0,
    )
    assert search.suggest("first") == {"x": 1.5, "y": -2.0}
    search.on_trial_result("first", {"loss": 0.5, "training_iteration": 1})
    search.on_trial_complete("first", {"loss": 0.0})
    search.suggest("failing")
    search.on_trial_complete("failing", None, error=True)
    search.suggest("silent")
    search.on_trial_complete("silent", {})
    states = [t.state.name for t in search._study.trials]
    assert states == ["COMPLETE", "FAIL", "PRUNED"]
    assert search._study.trials[0].intermediate_values == {1: 0.5}

    warm = OptunaSearch(
        QUADRATIC,
        metric="loss",
        mode="min",
        points_to_evaluate=[{"x": 0.0, "y": 0.0}],
        evaluated_rewards=[6.25],
    )
    warm.suggest("a")
    assert warm._study.trials[0].value == 6.25


def test_optuna_errors() -> None:
    import optuna

    with pytest.warns(UserWarning, match="ignores seed"):
        OptunaSearch(sampler=optuna.samplers.RandomSampler(), seed=1)
    with pytest.raises(RuntimeError, match="no search space"):
        OptunaSearch(metric="loss", mode="min").suggest("t")
    with pytest.raises(RuntimeError, match="no metric"):
        OptunaSearch(QUADRATIC).suggest("t")
    with pytest.raises(ValueError, match="grid_search cannot be converted"):
        OptunaSearch({"a": s.grid_search([1])})
    with pytest.raises(ValueError, match="Optuna cannot sample 'n'"):
        OptunaSearch({"n": s.randn()})
    with pytest.raises(ValueError, match="one value per point"):
        OptunaSearch(QUADRATIC, points_to_evaluate=[{"x": 1, "y": 1}], evaluated_rewards=[])


def test_optuna_state_survives_pickling() -> None:
    gen = SearchGenerator(OptunaSearch(seed=0))
    gen.set_search_properties("loss", "min", QUADRATIC)
    gen.add_configurations(QUADRATIC, 6)
    for i in range(3):
        suggestion = gen.next_trial(str(i))
        assert suggestion is not None
        gen.on_trial_complete(str(i), {"loss": quadratic(suggestion.config)})
    state = pickle.loads(pickle.dumps(gen.get_state()))
    fresh = SearchGenerator(OptunaSearch())
    fresh.set_search_properties("loss", "min", QUADRATIC)
    fresh.add_configurations(QUADRATIC, 6)
    fresh.set_state(state)
    assert fresh.set_search_properties("loss", "min", QUADRATIC)  # asked again: no conflict
    assert len(fresh.searcher._study.trials) == 3  # type: ignore[attr-defined]
    rest = [fresh.next_trial(f"n{i}") for i in range(4)]
    assert rest[3] is None and fresh.is_finished()
    assert [sg.experiment_tag[0] for sg in rest[:3] if sg is not None] == ["4", "5", "6"]


# ------------------------------------------------------------------------------- HyperOpt


@pytest.mark.parametrize("mode", ["min", "max"])
def test_hyperopt_finds_the_minimum_of_a_quadratic(mode: str) -> None:
    search = HyperOptSearch(random_state_seed=0, n_initial_points=10)
    assert optimize(search, QUADRATIC, mode, 60) < 0.5


def test_hyperopt_converts_every_kind_of_domain() -> None:
    space = {
        "f": s.quniform(0, 1, 0.25),
        "lf": s.loguniform(1e-3, 1),
        "n": s.randn(0, 1),
        "i": s.randint(3, 6),
        "qi": s.qrandint(0, 10, 5),
        "li": s.lograndint(1, 100),
        "c": s.choice(["a", {"deep": s.uniform(10, 11)}]),
        "const": 7,
    }
    search = HyperOptSearch(space, metric="loss", mode="min", random_state_seed=2)
    for i in range(20):
        config = search.suggest(str(i))
        assert isinstance(config, dict)
        assert config["f"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert 1e-3 <= config["lf"] <= 1 and isinstance(config["n"], float)
        assert config["i"] in (3, 4, 5) and type(config["i"]) is int
        assert config["qi"] in (0, 5, 10) and 1 <= config["li"] <= 99
        assert config["c"] == "a" or 10 <= config["c"]["deep"] <= 11
        assert config["const"] == 7
        search.on_trial_complete(str(i), {"loss": float(i)})


def test_hyperopt_with_sample_from_in_the_param_space() -> None:
    space = {**QUADRATIC, "sum": s.sample_from(lambda spec: spec.config.x + spec.config.y)}
    gen = SearchGenerator(HyperOptSearch(random_state_seed=0))
    gen.set_search_properties("loss", "min", space)
    gen.add_configurations(space, 2)
    suggestion = gen.next_trial("a")
    assert suggestion is not None
    assert suggestion.config["sum"] == suggestion.config["x"] + suggestion.config["y"]
    assert set(suggestion.evaluated_params) == {"x", "y"}


def test_hyperopt_points_and_errors() -> None:
    space = {"x": s.uniform(-5, 5), "k": s.choice(["p", "q"])}
    search = HyperOptSearch(
        space, metric="loss", mode="min", points_to_evaluate=[{"x": 1.0, "k": "q"}]
    )
    assert search.suggest("a") == {"x": 1.0, "k": "q"}
    search.on_trial_complete("a", None, error=True)
    assert search._trials._dynamic_trials[0]["state"] == 3  # JOB_STATE_ERROR
    with pytest.raises(ValueError, match="no value for 'x'"):
        HyperOptSearch(space, "loss", "min", points_to_evaluate=[{"k": "p"}]).suggest("a")
    with pytest.raises(ValueError, match="not one of its choices"):
        HyperOptSearch(space, "loss", "min", points_to_evaluate=[{"x": 0, "k": "z"}]).suggest("a")
    with pytest.raises(RuntimeError, match="no search space"):
        HyperOptSearch(metric="loss", mode="min").suggest("t")
    with pytest.raises(ValueError, match="grid_search cannot be converted"):
        HyperOptSearch({"a": s.grid_search([1])})


def test_hyperopt_state_survives_pickling() -> None:
    search = HyperOptSearch(QUADRATIC, metric="loss", mode="min", random_state_seed=0)
    search.suggest("a")
    search.on_trial_complete("a", {"loss": 1.0})
    state = pickle.loads(pickle.dumps(search.get_state()))
    fresh = HyperOptSearch()
    fresh.set_state(state)
    assert isinstance(fresh.suggest("b"), dict) and len(fresh._trials.trials) == 2


# --------------------------------------------------------------------- names and imports


def test_create_searcher_by_name() -> None:
    assert isinstance(create_searcher("random"), BasicVariantGenerator)
    assert isinstance(create_searcher("variant_generator", max_concurrent=2), BasicVariantGenerator)
    assert isinstance(create_searcher("optuna", seed=1), OptunaSearch)
    assert isinstance(create_searcher("hyperopt"), HyperOptSearch)
    with pytest.raises(ValueError, match="unknown search algorithm 'nope'"):
        create_searcher("nope")


def test_a_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    monkeypatch.setitem(sys.modules, "hyperopt", None)
    with pytest.raises(ImportError, match="pip install 'ember\\[optuna\\]'"):
        OptunaSearch()
    with pytest.raises(ImportError, match="pip install 'ember\\[hyperopt\\]'"):
        HyperOptSearch()


def test_importing_the_search_package_stays_light() -> None:
    code = (
        "import sys, ember.tune.search, ember.tune.search.optuna, ember.tune.search.hyperopt;"
        "print([m for m in ('optuna', 'hyperopt', 'pandas') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
