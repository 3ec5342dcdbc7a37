"""Search-space domains: bounds, samplers, seeds and the errors for bad spaces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ember.tune.search import sample as s


def draw(domain: s.Domain, n: int = 2000, seed: int = 0) -> list[float]:
    values = domain.sample(size=n, random_state=seed)
    assert isinstance(values, list) and len(values) == n
    return values


def test_uniform_stays_in_bounds_and_covers_them() -> None:
    values = draw(s.uniform(2.0, 3.0))
    assert all(2.0 <= v <= 3.0 for v in values)
    assert min(values) < 2.05 and max(values) > 2.95
    assert all(type(v) is float for v in values)


def test_quniform_rounds_to_multiples_inside_the_bounds() -> None:
    values = draw(s.quniform(0.05, 1.0, 0.1))
    assert all(0.05 <= v <= 1.0 for v in values)
    assert all(abs(v / 0.1 - round(v / 0.1)) < 1e-9 for v in values)
    assert set(values) <= {round(k * 0.1, 1) for k in range(1, 11)}  # no 0.30000000000000004


def test_loguniform_is_uniform_in_the_exponent() -> None:
    values = draw(s.loguniform(1e-4, 1e-1))
    assert all(1e-4 <= v <= 1e-1 for v in values)
    exponents = [math.log10(v) for v in values]
    # A quarter of the exponent range holds about a quarter of the values.
    share = sum(-4 <= e < -3.25 for e in exponents) / len(exponents)
    assert 0.18 < share < 0.32


def test_loguniform_with_another_base_and_quantized() -> None:
    domain = s.loguniform(1, 1024, base=2)
    assert domain.get_sampler().base == 2  # type: ignore[attr-defined]
    values = draw(s.qloguniform(1, 100, 5))
    assert all(v % 5 == 0 and 1 <= v <= 100 for v in values)


def test_randint_excludes_the_upper_bound() -> None:
    values = draw(s.randint(0, 3))
    assert set(values) == {0, 1, 2}
    assert all(type(v) is int for v in values)


def test_qrandint_includes_the_upper_bound() -> None:
    assert set(draw(s.qrandint(0, 10, 5))) == {0, 5, 10}
    assert set(draw(s.qrandint(1, 3))) == {1, 2, 3}


def test_lograndint_and_qlograndint() -> None:
    values = draw(s.lograndint(1, 1000))
    assert all(1 <= v < 1000 and type(v) is int for v in values)
    assert sum(v < 10 for v in values) > len(values) / 5  # a third of the exponent range
    values = draw(s.qlograndint(10, 100, 10))
    assert set(values) <= set(range(10, 101, 10)) and 100 in values


def test_randn_and_qrandn() -> None:
    values = draw(s.randn(5.0, 2.0), n=4000)
    assert abs(float(np.mean(values)) - 5.0) < 0.2
    assert abs(float(np.std(values)) - 2.0) < 0.2
    assert all(v == round(v / 0.5) * 0.5 for v in draw(s.qrandn(0, 1, 0.5)))


def test_choice_draws_every_category() -> None:
    values = draw(s.choice(["a", "b", 3]))
    assert set(values) == {"a", "b", 3}


def test_a_single_sample_is_a_value_not_a_list() -> None:
    assert isinstance(s.uniform(0, 1).sample(), float)
    assert s.choice([7]).sample() == 7


def test_a_seed_gives_the_same_values() -> None:
    domain = s.uniform(0, 1)
    assert draw(domain, 5, seed=3) == draw(domain, 5, seed=3)
    assert draw(domain, 5, seed=3) != draw(domain, 5, seed=4)


def test_numpy_generators_and_the_global_generator_work() -> None:
    domain = s.randint(0, 1000)
    first = domain.sample(size=5, random_state=np.random.default_rng(9))
    assert first == domain.sample(size=5, random_state=np.random.default_rng(9))
    legacy = domain.sample(size=5, random_state=np.random.RandomState(9))
    assert legacy == domain.sample(size=5, random_state=np.random.RandomState(9))
    np.random.seed(9)
    global_values = domain.sample(size=5)
    np.random.seed(9)
    assert domain.sample(size=5) == global_values


def test_rng_state_can_be_saved_and_set() -> None:
    rng = s.Rng(1)
    state = rng.get_state()
    first = s.uniform(0, 1).sample(size=3, random_state=rng)
    rng.set_state(state)
    assert s.uniform(0, 1).sample(size=3, random_state=rng) == first
    assert s.Rng(None).get_state() is None
    with pytest.raises(TypeError, match="random_state"):
        s.Rng("seed")  # type: ignore[arg-type]


def test_sample_from_with_and_without_the_spec() -> None:
    assert s.sample_from(lambda: 4).sample() == 4
    assert s.sample_from(lambda spec: spec * 2).sample(config=3) == 6
    with pytest.raises(ValueError, match="one argument"):
        s.sample_from(lambda a, b: a)
    with pytest.raises(ValueError, match="callable"):
        s.sample_from(5)  # type: ignore[arg-type]


def test_grid_search_is_rays_dict() -> None:
    assert s.grid_search([1, 2]) == {"grid_search": [1, 2]}
    assert s.grid_search(x for x in "ab") == {"grid_search": ["a", "b"]}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: s.uniform(1, 1), "lower bound must be below"),
        (lambda: s.uniform(2, 1), "lower bound must be below"),
        (lambda: s.randint(5, 5), "lower bound must be below"),
        (lambda: s.loguniform(0, 1), "positive lower bound"),
        (lambda: s.loguniform(-1, 1), "positive lower bound"),
        (lambda: s.lograndint(0, 10), "positive lower bound"),
        (lambda: s.loguniform(1, 10, base=1), "log base"),
        (lambda: s.quniform(0, 1, 0), "q must be positive"),
        (lambda: s.qrandint(0, 10, -1), "q must be positive"),
        (lambda: s.qrandint(0, 10, 0.5), "must be an int"),  # type: ignore[arg-type]
        (lambda: s.choice([]), "at least one category"),
        (lambda: s.grid_search([]), "at least one value"),
        (lambda: s.randn(0, 0), "sd must be positive"),
    ],
)
def test_bad_spaces_fail_when_built(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_converters_can_read_the_domains() -> None:
    domain = s.qloguniform(1e-3, 1.0, 1e-3)
    sampler = domain.get_sampler()
    assert isinstance(sampler, s.Quantized) and sampler.q == 1e-3
    assert isinstance(sampler.get_sampler(), s.LogUniform)
    assert (domain.lower, domain.upper) == (1e-3, 1.0)
    integer = s.qrandint(0, 10, 2)
    assert (integer.lower, integer.upper) == (0, 11)
    assert s.choice(["x", "y"]).categories == ["x", "y"]
    assert s.randint(0, 3).is_valid(2) and not s.randint(0, 3).is_valid(3)
    assert s.choice([1]).is_grid() is False
    assert s.Categorical([1, 2]).grid().is_grid() is True
