"""Search-space domains (Ray Tune's ``tune.uniform``, ``tune.choice``, ...).

A domain is a description, not a value: ``Float``, ``Integer`` and ``Categorical`` hold their
bounds or categories and a sampler (uniform, log-uniform, normal, optionally quantized) that
the variant generator draws from and that the Optuna and HyperOpt converters read; ``Function``
(``sample_from``) computes a value from the rest of the configuration. Bounds are checked when a
domain is built, so a bad space fails before an experiment starts.

Sampling draws from an ``Rng``: a seed or a numpy ``Generator`` makes it reproducible; ``None``
uses numpy's global generator, so ``np.random.seed`` works as it does with Ray."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Union

import numpy as np

RandomState = Union[int, np.random.Generator, np.random.RandomState, "Rng", None]


class Rng:
    """One interface over a numpy ``Generator``, a legacy ``RandomState`` and numpy's global
    generator (``None``), with a state that can be saved and set again."""

    def __init__(self, random_state: RandomState = None) -> None:
        source: Any = random_state
        if isinstance(source, Rng):
            source = source._source
        elif isinstance(source, (int, np.integer)) and not isinstance(source, bool):
            source = np.random.default_rng(int(source))
        elif source is not None and not isinstance(
            source, (np.random.Generator, np.random.RandomState)
        ):
            raise TypeError(
                "random_state must be an int seed, a numpy Generator or RandomState, or None, "
                f"not {type(random_state).__name__}"
            )
        self._source: np.random.Generator | np.random.RandomState | None = source

    def uniform(self, low: float, high: float, size: int) -> np.ndarray[Any, Any]:
        gen: Any = np.random if self._source is None else self._source
        return np.asarray(gen.uniform(low, high, size))

    def normal(self, mean: float, sd: float, size: int) -> np.ndarray[Any, Any]:
        gen: Any = np.random if self._source is None else self._source
        return np.asarray(gen.normal(mean, sd, size))

    def integers(self, low: int, high: int, size: int) -> np.ndarray[Any, Any]:
        """Integers in ``[low, high)``."""
        if isinstance(self._source, np.random.Generator):
            return self._source.integers(low, high, size)
        gen: Any = np.random if self._source is None else self._source
        return np.asarray(gen.randint(low, high, size))

    def get_state(self) -> Any:
        """The generator's state, or None for numpy's global one (which is the user's to keep)."""
        if isinstance(self._source, np.random.Generator):
            return self._source.bit_generator.state
        if isinstance(self._source, np.random.RandomState):
            return self._source.get_state(legacy=False)
        return None

    def set_state(self, state: Any) -> None:
        if state is None:
            return
        if isinstance(self._source, np.random.Generator):
            self._source.bit_generator.state = state
        elif isinstance(self._source, np.random.RandomState):
            self._source.set_state(state)


# ---------------------------------------------------------------------------------- samplers


class Sampler:
    """How a domain draws its values."""

    def sample(self, domain: Domain, config: Any, size: int, rng: Rng) -> list[Any]:
        raise NotImplementedError


class Uniform(Sampler):
    def sample(self, domain: Domain, config: Any, size: int, rng: Rng) -> list[Any]:
        if isinstance(domain, Categorical):
            indices = rng.integers(0, len(domain.categories), size)
            return [domain.categories[i] for i in indices]
        assert isinstance(domain, (Float, Integer))
        if isinstance(domain, Integer):
            return [int(v) for v in rng.integers(domain.lower, domain.upper, size)]
        return [float(v) for v in rng.uniform(domain.lower, domain.upper, size)]


class LogUniform(Sampler):
    def __init__(self, base: float = 10) -> None:
        if base <= 0 or base == 1:
            raise ValueError(f"the log base must be positive and not 1, not {base}")
        self.base = base

    def sample(self, domain: Domain, config: Any, size: int, rng: Rng) -> list[Any]:
        assert isinstance(domain, (Float, Integer))
        log = math.log(self.base)
        low, high = math.log(domain.lower) / log, math.log(domain.upper) / log
        values = np.power(self.base, rng.uniform(low, high, size))
        if isinstance(domain, Integer):
            # Floor keeps the exclusive upper bound exclusive.
            return [int(v) for v in np.clip(np.floor(values), domain.lower, domain.upper - 1)]
        return [float(v) for v in np.clip(values, domain.lower, domain.upper)]


class Normal(Sampler):
    def __init__(self, mean: float = 0.0, sd: float = 1.0) -> None:
        if not sd > 0:
            raise ValueError(f"the standard deviation sd must be positive, not {sd}")
        self.mean = mean
        self.sd = sd

    def sample(self, domain: Domain, config: Any, size: int, rng: Rng) -> list[Any]:
        return [float(v) for v in rng.normal(self.mean, self.sd, size)]


class Quantized(Sampler):
    """Rounds another sampler's values to multiples of ``q``, kept inside the bounds."""

    def __init__(self, sampler: Sampler, q: float) -> None:
        if not q > 0:
            raise ValueError(f"the quantization step q must be positive, not {q}")
        self.sampler = sampler
        self.q = q

    def get_sampler(self) -> Sampler:
        return self.sampler

    def sample(self, domain: Domain, config: Any, size: int, rng: Rng) -> list[Any]:
        values = np.round(np.asarray(self.sampler.sample(domain, config, size, rng)) / self.q)
        values = values * self.q
        if isinstance(domain, (Float, Integer)) and domain.lower is not None:
            high = domain.upper - 1 if isinstance(domain, Integer) else domain.upper
            values = np.where(values < domain.lower, values + self.q, values)
            values = np.where(values > high, values - self.q, values)
        if isinstance(domain, Integer):
            return [int(v) for v in values]
        # Digits enough for any multiple of q, so that 3 * 0.1 is 0.3, not 0.30000000000000004.
        decimals = max(0, math.ceil(-math.log10(self.q))) + 8
        return [float(v) for v in np.round(values, decimals)]


class Grid(Sampler):
    """Marks a categorical as a grid: expanded by the variant generator, never sampled."""

    def sample(self, domain: Domain, config: Any, size: int, rng: Rng) -> list[Any]:
        raise RuntimeError("a grid search is expanded, not sampled; use the variant generator")


# ----------------------------------------------------------------------------------- domains


class Domain:
    """A search-space dimension: what to sample and how."""

    default_sampler: Callable[[], Sampler] = Uniform
    sampler: Sampler | None = None

    def set_sampler(self, sampler: Sampler) -> None:
        if self.sampler is not None:
            raise ValueError(f"{type(self).__name__} already has a sampler; build a new domain")
        self.sampler = sampler

    def get_sampler(self) -> Sampler:
        return self.sampler or self.default_sampler()

    def sample(self, config: Any = None, size: int = 1, random_state: RandomState = None) -> Any:
        """One value (``size=1``) or a list of ``size`` values."""
        rng = random_state if isinstance(random_state, Rng) else Rng(random_state)
        values = self.get_sampler().sample(self, config, size, rng)
        return values[0] if size == 1 else values

    def is_grid(self) -> bool:
        return isinstance(self.sampler, Grid)

    def is_function(self) -> bool:
        return False

    def is_valid(self, value: Any) -> bool:
        return True

    @property
    def domain_str(self) -> str:
        return "(unknown)"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.domain_str}>"


class Float(Domain):
    """Real numbers in ``[lower, upper]`` (unbounded for a normal distribution)."""

    def __init__(self, lower: float | None, upper: float | None) -> None:
        if lower is not None and upper is not None and not lower < upper:
            raise ValueError(f"the lower bound must be below the upper bound: {lower}, {upper}")
        self.lower: Any = None if lower is None else float(lower)
        self.upper: Any = None if upper is None else float(upper)

    def _needs_bounds(self, what: str) -> None:
        if self.lower is None or self.upper is None:
            raise ValueError(f"{what} sampling needs a lower and an upper bound")

    def uniform(self) -> Float:
        self._needs_bounds("uniform")
        self.set_sampler(Uniform())
        return self

    def loguniform(self, base: float = 10) -> Float:
        self._needs_bounds("log-uniform")
        if not self.lower > 0:
            raise ValueError(f"log-uniform sampling needs a positive lower bound, not {self.lower}")
        self.set_sampler(LogUniform(base))
        return self

    def normal(self, mean: float = 0.0, sd: float = 1.0) -> Float:
        self.set_sampler(Normal(mean, sd))
        return self

    def quantized(self, q: float) -> Float:
        self.sampler = Quantized(self.get_sampler(), q)
        return self

    def is_valid(self, value: Any) -> bool:
        return (self.lower is None or value >= self.lower) and (
            self.upper is None or value <= self.upper
        )

    @property
    def domain_str(self) -> str:
        return f"({self.lower}, {self.upper})"


class Integer(Domain):
    """Integers in ``[lower, upper)``."""

    def __init__(self, lower: int, upper: int) -> None:
        if not lower < upper:
            raise ValueError(f"the lower bound must be below the upper bound: {lower}, {upper}")
        self.lower = int(lower)
        self.upper = int(upper)

    def uniform(self) -> Integer:
        self.set_sampler(Uniform())
        return self

    def loguniform(self, base: float = 10) -> Integer:
        if not self.lower > 0:
            raise ValueError(f"log-uniform sampling needs a positive lower bound, not {self.lower}")
        self.set_sampler(LogUniform(base))
        return self

    def quantized(self, q: int) -> Integer:
        if not isinstance(q, (int, np.integer)):
            raise ValueError(f"an integer's quantization step q must be an int, not {q!r}")
        self.sampler = Quantized(self.get_sampler(), int(q))
        return self

    def is_valid(self, value: Any) -> bool:
        return bool(self.lower <= value < self.upper)

    @property
    def domain_str(self) -> str:
        return f"[{self.lower}, {self.upper})"


class Categorical(Domain):
    def __init__(self, categories: Sequence[Any]) -> None:
        self.categories = list(categories)
        if not self.categories:
            raise ValueError("a choice needs at least one category; got an empty list")

    def uniform(self) -> Categorical:
        self.set_sampler(Uniform())
        return self

    def grid(self) -> Categorical:
        self.set_sampler(Grid())
        return self

    def __len__(self) -> int:
        return len(self.categories)

    def __getitem__(self, index: int) -> Any:
        return self.categories[index]

    def is_valid(self, value: Any) -> bool:
        return value in self.categories

    @property
    def domain_str(self) -> str:
        return repr(self.categories)


class FunctionSampler(Sampler):
    def sample(self, domain: Domain, config: Any, size: int, rng: Rng) -> list[Any]:
        assert isinstance(domain, Function)
        if domain.pass_config:
            return [domain.func(config) for _ in range(size)]
        return [domain.func() for _ in range(size)]


class Function(Domain):
    """A value computed by ``func(spec)`` (``spec.config`` is the configuration resolved so
    far) or by ``func()``."""

    default_sampler = FunctionSampler

    def __init__(self, func: Callable[..., Any]) -> None:
        if not callable(func):
            raise ValueError(f"sample_from needs a callable, not {func!r}")
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError):
            self.pass_config = True
        else:
            self.pass_config = _accepts(signature, None)
            if not self.pass_config and not _accepts(signature):
                raise ValueError(
                    f"sample_from's function must take the spec (one argument) or nothing: {func!r}"
                )
        self.func = func

    def is_function(self) -> bool:
        return True

    @property
    def domain_str(self) -> str:
        return f"{getattr(self.func, '__name__', 'function')}()"


def _accepts(signature: inspect.Signature, *args: Any) -> bool:
    try:
        signature.bind(*args)
    except TypeError:
        return False
    return True


# --------------------------------------------------------------------------- public builders


def uniform(lower: float, upper: float) -> Float:
    """A float uniformly in ``[lower, upper]``."""
    return Float(lower, upper).uniform()


def quniform(lower: float, upper: float, q: float) -> Float:
    """A float uniformly in ``[lower, upper]``, rounded to a multiple of ``q``."""
    return Float(lower, upper).uniform().quantized(q)


def loguniform(lower: float, upper: float, base: float = 10) -> Float:
    """A float in ``[lower, upper]`` whose logarithm is uniform."""
    return Float(lower, upper).loguniform(base)


def qloguniform(lower: float, upper: float, q: float, base: float = 10) -> Float:
    return Float(lower, upper).loguniform(base).quantized(q)


def randint(lower: int, upper: int) -> Integer:
    """An integer uniformly in ``[lower, upper)`` (upper excluded, as in ``range``)."""
    return Integer(lower, upper).uniform()


def qrandint(lower: int, upper: int, q: int = 1) -> Integer:
    """An integer uniformly in ``[lower, upper]`` (upper included), a multiple of ``q``."""
    return Integer(lower, upper + 1).uniform().quantized(q)


def lograndint(lower: int, upper: int, base: float = 10) -> Integer:
    """An integer in ``[lower, upper)`` whose logarithm is uniform."""
    return Integer(lower, upper).loguniform(base)


def qlograndint(lower: int, upper: int, q: int, base: float = 10) -> Integer:
    """An integer in ``[lower, upper]`` (upper included) whose logarithm is uniform."""
    return Integer(lower, upper + 1).loguniform(base).quantized(q)


def randn(mean: float = 0.0, sd: float = 1.0) -> Float:
    """A float from a normal distribution."""
    return Float(None, None).normal(mean, sd)


def qrandn(mean: float, sd: float, q: float) -> Float:
    return Float(None, None).normal(mean, sd).quantized(q)


def choice(categories: Sequence[Any]) -> Categorical:
    """One of ``categories``, each equally likely."""
    return Categorical(categories).uniform()


def sample_from(func: Callable[..., Any]) -> Function:
    """A value computed from the rest of the configuration: ``lambda spec: spec.config.x * 2``."""
    return Function(func)


def grid_search(values: Iterable[Any]) -> dict[str, list[Any]]:
    """Every one of ``values``, crossed with the other grids (as ``{"grid_search": values}``,
    Ray's form, which a JSON or YAML space may also spell out)."""
    values = list(values)
    if not values:
        raise ValueError("grid_search needs at least one value; got an empty list")
    return {"grid_search": values}
