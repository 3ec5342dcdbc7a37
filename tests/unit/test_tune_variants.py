"""Resolving param spaces into variants, and BasicVariantGenerator on top of it."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from ember.tune.search import BasicVariantGenerator
from ember.tune.search import sample as s
from ember.tune.search.search_algorithm import Suggestion
from ember.tune.search.variant_generator import count_variants, generate_variants


def variants(space: dict[str, Any], seed: int = 0, **kwargs: Any) -> list[dict[str, Any]]:
    return [config for _, config in generate_variants(space, random_state=seed, **kwargs)]


def drain(gen: BasicVariantGenerator, prefix: str = "t") -> list[Suggestion]:
    out = []
    while (suggestion := gen.next_trial(f"{prefix}{len(out)}")) is not None:
        out.append(suggestion)
    return out


def test_grids_make_a_cross_product_first_key_fastest() -> None:
    space = {"y": s.grid_search(["a", "b", "c"]), "x": s.grid_search([10, 20]), "k": 1}
    assert [(c["x"], c["y"]) for c in variants(space)] == [
        (10, "a"),
        (20, "a"),
        (10, "b"),
        (20, "b"),
        (10, "c"),
        (20, "c"),
    ]
    assert all(c["k"] == 1 for c in variants(space))
    assert count_variants(space) == 6


def test_nested_dicts_and_lists_are_searched() -> None:
    space = {
        "model": {"layers": s.grid_search([1, 2]), "width": s.randint(1, 4)},
        "stages": [s.choice(["relu"]), {"drop": s.uniform(0, 0.5)}, 7],
    }
    configs = variants(space)
    assert [c["model"]["layers"] for c in configs] == [1, 2]
    for config in configs:
        assert config["model"]["width"] in (1, 2, 3)
        assert config["stages"][0] == "relu" and 0 <= config["stages"][1]["drop"] <= 0.5
        assert config["stages"][2] == 7
    assert isinstance(space["model"]["width"], s.Integer)  # the space itself is untouched


def test_a_grid_value_may_hold_grids_and_domains() -> None:
    space = {"opt": s.grid_search([{"name": "sgd", "lr": s.grid_search([0.1, 0.01])}, "adam"])}
    assert count_variants(space) == 3
    assert [c["opt"] for c in variants(space)] == [
        {"name": "sgd", "lr": 0.1},
        {"name": "sgd", "lr": 0.01},
        "adam",
    ]


def test_sample_from_is_resolved_after_what_it_reads() -> None:
    space = {
        "c": s.sample_from(lambda spec: spec.config.b + 1),
        "b": s.sample_from(lambda spec: spec["config"]["a"] * 2),
        "a": s.grid_search([1, 2]),
        "nested": {
            "d": s.sample_from(lambda spec: spec.config.nested.e * 10),
            "e": s.randint(1, 3),
        },
        "free": s.sample_from(lambda: 42),
    }
    for config in variants(space):
        assert config["b"] == config["a"] * 2 and config["c"] == config["b"] + 1
        assert config["nested"]["d"] == config["nested"]["e"] * 10
        assert config["free"] == 42


def test_a_dependency_cycle_is_a_clear_error() -> None:
    space = {
        "a": s.sample_from(lambda spec: spec.config.b),
        "b": s.sample_from(lambda spec: spec.config.a),
    }
    with pytest.raises(ValueError, match="cycle") as info:
        variants(space)
    assert "'a' reads 'b'" in str(info.value)


def test_reading_a_missing_key_names_it() -> None:
    with pytest.raises(ValueError, match="'x' failed.*no key 'missing'"):
        variants({"x": s.sample_from(lambda spec: spec.config.missing)})


def test_constant_grid_search_shares_random_values_within_a_sample() -> None:
    space = {"g": s.grid_search([1, 2, 3]), "r": s.uniform(0, 1)}
    assert len({c["r"] for c in variants(space, constant_grid_search=True)}) == 1
    assert len({c["r"] for c in variants(space)}) == 3
    # A function that reads a grid value is still resolved per grid point.
    space["f"] = s.sample_from(lambda spec: spec.config.g * 2)
    assert [c["f"] for c in variants(space, constant_grid_search=True)] == [2, 4, 6]


def test_skip_starts_at_the_nth_variant() -> None:
    space = {
        "a": s.grid_search([1, 2, 3]),
        "b": s.grid_search([{"c": s.grid_search([0, 1])}, 5]),
    }
    everything = variants(space)
    assert len(everything) == count_variants(space) == 9
    for n in range(10):
        rest = [c for _, c in generate_variants(space, random_state=0, skip=n)]
        assert rest == everything[n:]


def test_basic_variant_generator_tags_and_evaluated_params() -> None:
    gen = BasicVariantGenerator(random_state=0)
    gen.add_configurations(
        {"alpha": s.grid_search([0.2, 0.5]), "net": {"beta": s.choice([1])}, "fixed": "x"}, 2
    )
    assert gen.total_samples == 4
    suggestions = drain(gen)
    assert [sg.experiment_tag for sg in suggestions] == [
        "0_alpha=0.2000,beta=1",
        "1_alpha=0.5000,beta=1",
        "2_alpha=0.2000,beta=1",
        "3_alpha=0.5000,beta=1",
    ]
    assert suggestions[0].evaluated_params == {"alpha": 0.2, "net/beta": 1}
    assert suggestions[0].config == {"alpha": 0.2, "net": {"beta": 1}, "fixed": "x"}
    assert gen.is_finished()


def test_a_space_without_search_gives_plain_tags() -> None:
    gen = BasicVariantGenerator()
    gen.add_configurations({"lr": 0.1}, 2)
    assert [(sg.experiment_tag, sg.evaluated_params) for sg in drain(gen)] == [("0", {}), ("1", {})]


def test_num_samples_resamples_random_values() -> None:
    gen = BasicVariantGenerator(random_state=1)
    gen.add_configurations({"x": s.uniform(0, 1)}, 5)
    assert len({sg.config["x"] for sg in drain(gen)}) == 5


def test_a_seed_reproduces_the_experiment() -> None:
    def run(seed: Any) -> list[dict[str, Any]]:
        gen = BasicVariantGenerator(random_state=seed)
        gen.add_configurations({"x": s.uniform(0, 1), "g": s.grid_search([1, 2])}, 3)
        return [sg.config for sg in drain(gen)]

    assert run(7) == run(7)
    assert run(np.random.default_rng(7)) == run(np.random.default_rng(7))
    assert run(7) != run(8)


def test_points_to_evaluate_replace_samples_as_in_ray() -> None:
    # Ray's docstring example: four samples give six trials.
    gen = BasicVariantGenerator(
        points_to_evaluate=[{"a": 2, "b": 2}, {"a": 1}, {"b": 2}], random_state=0
    )
    gen.add_configurations({"a": s.grid_search([1, 2]), "b": s.randint(0, 3)}, 4)
    assert gen.total_samples == 6
    configs = [sg.config for sg in drain(gen)]
    assert len(configs) == 6
    assert configs[0] == {"a": 2, "b": 2}
    assert configs[1]["a"] == 1
    assert configs[2:4] == [{"a": 1, "b": 2}, {"a": 2, "b": 2}]
    assert [c["a"] for c in configs[4:]] == [1, 2]


def test_a_point_with_an_unknown_key_is_refused() -> None:
    gen = BasicVariantGenerator(points_to_evaluate=[{"nope": 1}])
    with pytest.raises(ValueError, match="'nope'.*not in the param_space"):
        gen.add_configurations({"a": s.uniform(0, 1)}, 1)


def test_nested_points_fix_only_their_keys() -> None:
    gen = BasicVariantGenerator(points_to_evaluate=[{"m": {"lr": 0.5}}], random_state=0)
    gen.add_configurations({"m": {"lr": s.uniform(0, 0.1), "wd": s.uniform(1, 2)}}, 1)
    (only,) = drain(gen)
    assert only.config["m"]["lr"] == 0.5 and 1 <= only.config["m"]["wd"] <= 2


def test_max_concurrent_waits_for_completions() -> None:
    gen = BasicVariantGenerator(max_concurrent=2)
    gen.add_configurations({"x": s.grid_search([1, 2, 3])}, 1)
    assert gen.next_trial("a") is not None and gen.next_trial("b") is not None
    assert gen.next_trial("c") is None and not gen.is_finished()
    gen.on_trial_complete("a", {"loss": 1.0})
    third = gen.next_trial("c")
    assert third is not None and third.config == {"x": 3}
    assert gen.is_finished()


def test_a_large_grid_is_generated_lazily() -> None:
    gen = BasicVariantGenerator()
    grid = list(range(100))
    gen.add_configurations({"a": s.grid_search(grid), "b": s.grid_search(grid)}, 5)
    assert gen.total_samples == 50_000
    first = gen.next_trial("t0")
    assert first is not None and first.config == {"a": 0, "b": 0}
    assert not gen.is_finished()


def test_restoring_goes_on_without_repeating() -> None:
    space = {"g": s.grid_search([1, 2, 3]), "x": s.uniform(0, 1)}
    whole = BasicVariantGenerator(random_state=3)
    whole.add_configurations(space, 3)
    expected = [(sg.config, sg.experiment_tag) for sg in drain(whole)]

    first = BasicVariantGenerator(random_state=3)
    first.add_configurations(space, 3)
    before = [first.next_trial(f"t{i}") for i in range(4)]
    state = first.get_state()
    assert len(repr(state)) < 2000  # the state is small

    # The state may arrive before or after the space is added again.
    for order in ("state_first", "space_first"):
        again = BasicVariantGenerator(random_state=99)
        if order == "state_first":
            again.set_state(state)
            again.add_configurations(space, 3)
        else:
            again.add_configurations(space, 3)
            again.set_state(state)
        for trial_id in state["live"]:
            again.on_trial_complete(trial_id)
        rest = [(sg.config, sg.experiment_tag) for sg in drain(again, "r")]
        got = [(sg.config, sg.experiment_tag) for sg in before if sg is not None] + rest
        assert got == expected


def test_the_generator_pickles_midway() -> None:
    space = {"g": s.grid_search([1, 2]), "x": s.uniform(0, 1)}
    whole = BasicVariantGenerator(random_state=5)
    whole.add_configurations(space, 2)
    expected = [sg.config for sg in drain(whole)]
    gen = BasicVariantGenerator(random_state=5)
    gen.add_configurations(space, 2)
    first = gen.next_trial("a")
    assert first is not None
    copy = pickle.loads(pickle.dumps(gen))
    assert [first.config] + [sg.config for sg in drain(copy, "b")] == expected


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_concurrent"):
        BasicVariantGenerator(max_concurrent=-1)
    with pytest.raises(ValueError, match="list of dicts"):
        BasicVariantGenerator(points_to_evaluate=[1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="grid_search with no values"):
        BasicVariantGenerator().add_configurations({"a": {"b": {"grid_search": []}}}, 1)
    with pytest.raises(ValueError, match="num_samples"):
        BasicVariantGenerator().add_configurations({}, 0)
