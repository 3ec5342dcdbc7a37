"""Turning a parameter space into concrete configurations (variants).

A space is nested dicts and lists whose leaves are plain values, domains (``tune.uniform``,
``tune.sample_from``, ...) or grids (``{"grid_search": [...]}``). One *sample* of the space is
the cross product of its grids, each point with its domains freshly drawn (or drawn once per
sample with ``constant_grid_search``). Grids are sorted by path and the first one varies
fastest, as in Ray. A grid value may itself hold grids and domains; they are expanded in turn.

Generation is lazy and addressable: ``count_variants`` counts without sampling, and
``generate_variants(..., skip=n)`` starts at the n-th variant without building the ones before
it, which is how a restored experiment goes on where it stopped.

``sample_from`` functions see ``spec.config`` (attribute or item access). A function that
reads a value not resolved yet is retried after the others; if a pass resolves nothing, the
remaining ones depend on each other or on nothing that exists, and that is an error."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from ember.tune.search.sample import Domain, RandomState, Rng

Path = tuple[Any, ...]


class _NotResolvedYet(Exception):
    def __init__(self, key: Any) -> None:
        super().__init__(key)
        self.key = key


class _Spec(dict[Any, Any]):
    """The spec a ``sample_from`` function receives: keys as attributes (``spec.config.lr``);
    reading a value that is still a domain or a grid defers the function."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the configuration has no key {name!r}") from None

    def __getitem__(self, key: Any) -> Any:
        value = dict.__getitem__(self, key)
        if isinstance(value, Domain) or is_grid(value):
            raise _NotResolvedYet(key)
        return _Spec(value) if isinstance(value, dict) else value

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default


def is_grid(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "grid_search" in value


def _grid_values(value: Any) -> list[Any] | None:
    if is_grid(value):
        return list(value["grid_search"])
    if isinstance(value, Domain) and value.is_grid():
        return list(value.categories)  # type: ignore[attr-defined]
    return None


def _path_key(path: Path) -> tuple[tuple[bool, Any], ...]:
    return tuple((isinstance(part, str), part) for part in path)


def parse_search_space(spec: Any) -> tuple[list[tuple[Path, list[Any]]], list[tuple[Path, Domain]]]:
    """The grids (path, values), sorted by path, and the domains to sample (path, domain)."""
    grids: list[tuple[Path, list[Any]]] = []
    domains: list[tuple[Path, Domain]] = []

    def walk(value: Any, path: Path) -> None:
        values = _grid_values(value)
        if values is not None:
            grids.append((path, values))
        elif isinstance(value, Domain):
            domains.append((path, value))
        elif isinstance(value, dict):
            for key, child in value.items():
                walk(child, (*path, key))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                walk(child, (*path, index))

    walk(spec, ())
    grids.sort(key=lambda item: _path_key(item[0]))
    return grids, domains


def has_unresolved_values(spec: Any) -> bool:
    grids, domains = parse_search_space(spec)
    return bool(grids or domains)


def count_variants(value: Any) -> int:
    """How many variants one sample of ``value`` makes (nested grids included)."""
    values = _grid_values(value)
    if values is not None:
        return sum(count_variants(v) for v in values)
    if isinstance(value, dict):
        return math.prod(count_variants(v) for v in value.values())
    if isinstance(value, list):
        return math.prod(count_variants(v) for v in value)
    return 1


def get_value(spec: Any, path: Path) -> Any:
    for key in path:
        spec = spec[key]
    return spec


def assign_value(spec: Any, path: Path, value: Any) -> None:
    get_value(spec, path[:-1])[path[-1]] = value


def copy_structure(value: Any) -> Any:
    """A copy of the dicts and lists, sharing the leaves (which may be large user data)."""
    if isinstance(value, dict):
        return {key: copy_structure(child) for key, child in value.items()}
    if isinstance(value, list):
        return [copy_structure(child) for child in value]
    return value


def _resolve_domains(
    config: dict[str, Any], domains: list[tuple[Path, Domain]], rng: Rng, allow_fail: bool
) -> dict[Path, Any]:
    """Sample the domains into ``config``; functions that wait for others go in later passes."""
    resolved: dict[Path, Any] = {}
    pending = domains
    while pending:
        waiting: list[tuple[Path, Domain]] = []
        needs: dict[Path, Any] = {}
        for path, domain in pending:
            try:
                value = domain.sample(_Spec({"config": config}), random_state=rng)
            except _NotResolvedYet as e:
                waiting.append((path, domain))
                needs[path] = e.key
                continue
            except Exception as e:
                raise ValueError(
                    f"sample_from at {'/'.join(map(str, path))!r} failed: {type(e).__name__}: {e}"
                ) from e
            assign_value(config, path, value)
            resolved[path] = value
        if len(waiting) == len(pending):
            if allow_fail:
                break
            detail = ", ".join(
                f"{'/'.join(map(str, path))!r} reads {key!r}" for path, key in needs.items()
            )
            raise ValueError(
                f"cannot resolve sample_from values that wait on each other or on a value that is "
                f"never resolved ({detail}); check for a cycle"
            )
        pending = waiting
    return resolved


def generate_variants(
    spec: dict[str, Any],
    constant_grid_search: bool = False,
    random_state: RandomState = None,
    skip: int = 0,
) -> Iterator[tuple[dict[Path, Any], dict[str, Any]]]:
    """Yield ``(resolved_vars, config)`` for one sample of ``spec``, from the ``skip``-th on.

    ``resolved_vars`` maps each searched path (grids and domains) to its value."""
    rng = random_state if isinstance(random_state, Rng) else Rng(random_state)
    return _expand(spec, rng, constant_grid_search, skip, {}, [])


def _expand(
    spec: dict[str, Any],
    rng: Rng,
    constant: bool,
    skip: int,
    known: dict[Path, Any],
    grid_paths: list[Path],
) -> Iterator[tuple[dict[Path, Any], dict[str, Any]]]:
    grids, domains = parse_search_space(spec)
    if not grids:
        config = copy_structure(spec)
        resolved = _resolve_domains(config, domains, rng, allow_fail=False)
        found = dict(known)
        found.update((path, get_value(config, path)) for path in grid_paths)
        found.update(resolved)
        yield found, config
        return
    if constant:
        spec = copy_structure(spec)
        known = {**known, **_resolve_domains(spec, domains, rng, allow_fail=True)}
    counts = [[count_variants(v) for v in values] for _, values in grids]
    sizes = [len(values) for _, values in grids]
    index, combos = 0, math.prod(sizes)
    if all(c == 1 for row in counts for c in row):
        index, skip = skip, 0
    paths = grid_paths + [path for path, _ in grids]
    while index < combos:
        digits, rest = [], index
        for size in sizes:
            rest, digit = divmod(rest, size)
            digits.append(digit)
        index += 1
        here = math.prod(row[d] for row, d in zip(counts, digits, strict=True))
        if skip >= here:
            skip -= here
            continue
        combo = copy_structure(spec)
        for (path, values), digit in zip(grids, digits, strict=True):
            assign_value(combo, path, copy_structure(values[digit]))
        yield from _expand(combo, rng, constant, skip, known, paths)
        skip = 0


def _clean(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", str(value)).strip("_")


def format_vars(resolved_vars: dict[Path, Any]) -> str:
    """``"alpha=0.2000,beta=1"``: each searched value under its last key, made safe for a
    folder name (Ray's experiment tag)."""
    ordered = sorted(resolved_vars.items(), key=lambda item: _path_key(item[0]))
    return ",".join(f"{_clean(path[-1])}={_clean(value)}" for path, value in ordered)


def flatten_resolved_vars(resolved_vars: dict[Path, Any]) -> dict[str, Any]:
    """Searched values by ``"a/b"`` path: a trial's ``evaluated_params``."""
    return {"/".join(map(str, path)): value for path, value in resolved_vars.items()}


def flatten_dict(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with ``"a/b"`` keys."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and not is_grid(value):
            flat.update(flatten_dict(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def unflatten_dict(flat: dict[str, Any]) -> dict[str, Any]:
    """The inverse of ``flatten_dict``."""
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, last = name.split("/")
        target = nested
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return nested


def merge_dicts(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` laid over it, nested dicts merged key by key."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            if not is_grid(merged[key]):
                merged[key] = merge_dicts(merged[key], value)
                continue
        merged[key] = value
    return merged
