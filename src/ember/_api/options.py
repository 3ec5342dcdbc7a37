"""Validation tables for ``@remote(...)`` and ``.options(...)`` keyword arguments.

Options are checked when they are declared rather than when a task runs, so a typo or a bad
value fails at the call site with a message naming the option. Validators return the
validated dict without filling defaults; callers merge ``{**defaults, **decorator, **call}``.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ember._api import runtime_env
from ember._core.labels import ACCELERATOR_TYPE_PREFIX, parse_selector

__all__ = [
    "Option",
    "TASK_OPTIONS",
    "ACTOR_OPTIONS",
    "METHOD_OPTIONS",
    "validate_task_options",
    "validate_actor_options",
    "validate_method_options",
    "validate_merged_actor_options",
    "task_defaults",
    "actor_defaults",
    "method_defaults",
    "resources_from_options",
    "check_generator_returns",
]

# Resource amounts are tracked in units of 1/10000, so finer fractions would round to zero.
_RESOURCE_PRECISION = 0.0001
_SCHEDULING_STRATEGY_NAMES = ("DEFAULT", "SPREAD")
_NUM_RETURNS_MODES = ("dynamic", "streaming")
_LIFETIMES = ("detached", "non_detached")
_NONE = type(None)


@dataclass(frozen=True)
class Option:
    """One allowed keyword: which types it takes, an extra range check, and its default.

    ``validator`` returns None when the value is fine, or a description of what is expected
    (turned into a ``ValueError``). It may raise ``TypeError`` itself for ill-typed contents.
    ``bool`` is only accepted when listed in ``types``, since ``True`` is also an ``int``.
    """

    name: str
    types: tuple[type, ...]
    validator: Callable[[Any], str | None] | None = None
    default: Any = None
    expected: str = ""

    def validate(self, value: Any) -> None:
        """Raise ``TypeError``/``ValueError`` naming this option if ``value`` is not allowed."""
        expected = self.expected or " or ".join(_type_name(t) for t in self.types)
        bad_bool = isinstance(value, bool) and bool not in self.types
        if bad_bool or not isinstance(value, self.types):
            raise TypeError(
                f"Invalid value for option {self.name!r}: {value!r} "
                f"(type {type(value).__name__}). Expected {expected}."
            )
        if self.validator is None:
            return
        try:
            problem = self.validator(value)
        except TypeError as exc:
            raise TypeError(f"Invalid value for option {self.name!r}: {value!r}. {exc}") from None
        if problem is not None:
            raise ValueError(f"Invalid value for option {self.name!r}: {value!r}. {problem}")


def _type_name(t: type) -> str:
    if t is _NONE:
        return "None"
    if t is numbers.Real:
        return "a number"
    return t.__name__


# ---------------------------------------------------------------------------- validators


def _quantity_problem(amount: Any) -> str | None:
    """Check one resource amount; shared by num_cpus/num_gpus/memory and custom resources."""
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError(f"Resource amounts must be numbers, got {type(amount).__name__}.")
    amount = float(amount)
    if math.isnan(amount) or math.isinf(amount):
        return "Expected a finite number."
    if amount < 0:
        return "Expected a number >= 0."
    if amount > 1 and not amount.is_integer():
        return "Amounts above 1 must be whole numbers; only amounts below 1 may be fractional."
    if 0 < amount < _RESOURCE_PRECISION:
        return f"Fractional amounts must be at least {_RESOURCE_PRECISION}."
    return None


def _resources_problem(resources: Mapping[Any, Any]) -> str | None:
    for key, amount in resources.items():
        if not isinstance(key, str):
            raise TypeError(f"Resource names must be strings, got {key!r}.")
        if key in ("CPU", "GPU"):
            return (
                f"Do not put {key!r} in 'resources'; use the 'num_{key.lower()}s' option instead."
            )
        problem = _quantity_problem(amount)
        if problem is not None:
            return f"Resource {key!r} has amount {amount!r}: {problem}"
    return None


def _int_at_least(lowest: int, meaning: str = "") -> Callable[[Any], str | None]:
    def check(value: int) -> str | None:
        if value < lowest:
            return f"Expected an integer >= {lowest}{meaning}."
        return None

    return check


def _num_returns_problem(value: int | str | None) -> str | None:
    if isinstance(value, str):
        if value not in _NUM_RETURNS_MODES:
            return f"Expected an integer >= 0 or one of {list(_NUM_RETURNS_MODES)}."
        return None
    if value is not None and value < 0:
        return "Expected an integer >= 0."
    return None


def _backpressure_problem(value: int | None) -> str | None:
    if value is not None and (value == 0 or value < -1):
        return (
            "Expected an integer > 0 (1 pauses the generator until each item is taken, as a "
            "Python generator does), -1 to disable backpressure, or None."
        )
    return None


def _retry_exceptions_problem(value: bool | list[Any] | tuple[Any, ...]) -> str | None:
    if isinstance(value, bool):
        return None
    for item in value:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(
                f"Expected True, False, or a list of exception classes; {item!r} is not an "
                "exception class."
            )
    return None


def _scheduling_strategy_problem(value: Any) -> str | None:
    if isinstance(value, str) and value not in _SCHEDULING_STRATEGY_NAMES:
        return (
            f"Expected one of {list(_SCHEDULING_STRATEGY_NAMES)}, None, or a scheduling "
            "strategy object (e.g. NodeAffinitySchedulingStrategy)."
        )
    return None


def _str_keys(value: Mapping[Any, Any]) -> str | None:
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"Expected a dict with string keys; got key {key!r}.")
    return None


def _nonempty_str(value: str | None) -> str | None:
    if value is not None and value == "":
        return "Expected a non-empty string."
    return None


def _label_selector_problem(value: Mapping[Any, Any] | None) -> str | None:
    for key, item in (value or {}).items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError(
                f"Expected a dict of label names to strings; got entry {key!r}: {item!r}."
            )
    try:
        parse_selector(value)
    except ValueError as e:
        return str(e)
    return None


def _runtime_env_problem(value: dict[str, Any] | None) -> str | None:
    """Checked where it is given, as Ray does (its fields, their types, local paths)."""
    if value is None:
        return None
    try:
        runtime_env.check(value)
    except ValueError as e:
        return str(e)
    return None


def _lifetime_problem(value: str | None) -> str | None:
    if value is not None and value not in _LIFETIMES:
        return "Expected None, 'detached' or 'non_detached'."
    return None


def _max_pending_calls_problem(value: int) -> str | None:
    if value == 0 or value < -1:
        return "Expected -1 (no limit) or an integer >= 1."
    return None


def _concurrency_groups_problem(
    value: Mapping[Any, Any] | list[Any] | tuple[Any, ...],
) -> str | None:
    limits = value.items() if isinstance(value, Mapping) else ((name, 1) for name in value)
    for name, limit in limits:
        if not isinstance(name, str):
            raise TypeError(f"Concurrency group names must be strings, got {name!r}.")
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"Concurrency group {name!r} needs an integer limit, got {limit!r}.")
        if limit < 1:
            return f"Concurrency group {name!r} needs a limit >= 1, got {limit}."
    return None


# ------------------------------------------------------------------------------- tables

_NUMBER = (numbers.Real,)
_NUMBER_EXPECTED = "a non-negative number (fractions only below 1)"


def _resource_option(name: str, default: Any, *, optional: bool = True) -> Option:
    types = (*_NUMBER, _NONE) if optional else _NUMBER
    return Option(
        name,
        types,
        lambda v: None if v is None else _quantity_problem(v),
        default,
        _NUMBER_EXPECTED + (" or None" if optional else ""),
    )


def _table(*options: Option) -> dict[str, Option]:
    return {opt.name: opt for opt in options}


def _common_options(num_cpus_default: Any, num_gpus_default: Any) -> list[Option]:
    """Options shared by tasks and actors: resources, placement and bookkeeping."""
    return [
        _resource_option("num_cpus", num_cpus_default),
        _resource_option("num_gpus", num_gpus_default),
        Option(
            "resources",
            (dict, _NONE),
            lambda v: None if v is None else _resources_problem(v),
            None,
            "a dict mapping resource names to amounts, or None",
        ),
        _resource_option("memory", None),
        Option(
            "scheduling_strategy",
            (object,),
            _scheduling_strategy_problem,
            None,
            "None, 'DEFAULT', 'SPREAD', or a scheduling strategy object",
        ),
        Option("runtime_env", (dict, _NONE), _runtime_env_problem, None, "a dict or None"),
        Option("accelerator_type", (str, _NONE), None, None, "a string or None"),
        Option(
            "label_selector",
            (dict, _NONE),
            _label_selector_problem,
            None,
            "a dict of label names to selectors ('a', '!a', 'in(a,b)', '!in(a,b)'), or None",
        ),
        Option("enable_task_events", (bool,), None, True, "True or False"),
        Option(
            "_metadata",
            (dict, _NONE),
            lambda v: None if v is None else _str_keys(v),
            None,
            "a dict with string keys, or None",
        ),
    ]


_NUM_RETURNS = Option(
    "num_returns",
    (int, str, _NONE),
    _num_returns_problem,
    None,  # 'streaming' for a generator function, else 1
    "an integer >= 0, 'dynamic', 'streaming', or None",
)
_BACKPRESSURE = Option(
    "_generator_backpressure_num_objects",
    (int, _NONE),
    _backpressure_problem,
    None,
    "an integer > 0, -1, or None",
)
_RETRY_EXCEPTIONS_TYPES = (bool, list, tuple)
_RETRY_EXCEPTIONS_EXPECTED = "True, False, or a list/tuple of exception classes"

TASK_OPTIONS: dict[str, Option] = _table(
    *_common_options(1, 0),
    _NUM_RETURNS,
    _BACKPRESSURE,
    Option(
        "max_retries",
        (int,),
        _int_at_least(-1, " (-1 retries forever)"),
        3,
        "an integer >= -1",
    ),
    Option(
        "retry_exceptions",
        _RETRY_EXCEPTIONS_TYPES,
        _retry_exceptions_problem,
        False,
        _RETRY_EXCEPTIONS_EXPECTED,
    ),
    Option("max_calls", (int,), _int_at_least(0, " (0 means no limit)"), 0, "an integer >= 0"),
    Option("name", (str, _NONE), None, None, "a string or None"),
)

ACTOR_OPTIONS: dict[str, Option] = _table(
    *_common_options(None, None),
    Option(
        "max_restarts",
        (int,),
        _int_at_least(-1, " (-1 restarts forever)"),
        0,
        "an integer >= -1",
    ),
    Option(
        "max_task_retries",
        (int,),
        _int_at_least(-1, " (-1 retries forever)"),
        0,
        "an integer >= -1",
    ),
    Option(
        "max_concurrency",
        (int, _NONE),
        lambda v: None if v is None else _int_at_least(1)(v),
        None,
        "an integer >= 1, or None (1 for sync actors, 1000 for async actors)",
    ),
    Option("max_pending_calls", (int,), _max_pending_calls_problem, -1, "an integer"),
    Option("name", (str, _NONE), _nonempty_str, None, "a non-empty string or None"),
    Option("namespace", (str, _NONE), _nonempty_str, None, "a non-empty string or None"),
    Option("lifetime", (str, _NONE), _lifetime_problem, None, "None, 'detached' or 'non_detached'"),
    Option("get_if_exists", (bool,), None, False, "True or False"),
    Option(
        "concurrency_groups",
        (dict, list, tuple, _NONE),
        lambda v: None if v is None else _concurrency_groups_problem(v),
        None,
        "a dict mapping group names to max concurrency, or None",
    ),
)

METHOD_OPTIONS: dict[str, Option] = _table(
    _NUM_RETURNS,
    _BACKPRESSURE,
    Option(
        "max_task_retries",
        (int, _NONE),
        lambda v: None if v is None else _int_at_least(-1, " (-1 retries forever)")(v),
        None,
        "an integer >= -1 or None",
    ),
    Option(
        "retry_exceptions",
        (*_RETRY_EXCEPTIONS_TYPES, _NONE),
        lambda v: None if v is None else _retry_exceptions_problem(v),
        None,
        _RETRY_EXCEPTIONS_EXPECTED + ", or None",
    ),
    Option("concurrency_group", (str, _NONE), None, None, "a string or None"),
    Option("name", (str, _NONE), None, None, "a string or None"),
    Option("enable_task_events", (bool, _NONE), None, None, "True, False or None"),
)


# --------------------------------------------------------------------------- validation


def _check(options: Mapping[str, Any], table: Mapping[str, Option], what: str) -> dict[str, Any]:
    if not isinstance(options, Mapping):
        raise TypeError(f"Options for {what} must be a dict, got {type(options).__name__}.")
    for key, value in options.items():
        option = table.get(key)
        if option is None:
            valid = sorted(table)
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"Invalid option {key!r} for {what}.{hint} Valid options are: {', '.join(valid)}."
            )
        option.validate(value)
    return dict(options)


def validate_task_options(options: Mapping[str, Any], *, in_options: bool) -> dict[str, Any]:
    """Check options for a remote function; ``in_options`` is True for ``.options(...)``."""
    checked = _check(options, TASK_OPTIONS, "remote functions")
    if in_options and "max_calls" in checked:
        raise ValueError(
            "'max_calls' cannot be changed in .options(); set it in @remote(max_calls=...)."
        )
    return checked


def validate_actor_options(options: Mapping[str, Any], *, in_options: bool) -> dict[str, Any]:
    """Check options for an actor class; ``in_options`` is True for ``.options(...)``."""
    checked = _check(options, ACTOR_OPTIONS, "actors")
    if in_options and "concurrency_groups" in checked:
        raise ValueError(
            "'concurrency_groups' cannot be changed in .options(); set it in "
            "@remote(concurrency_groups=...)."
        )
    return checked


def validate_merged_actor_options(opts: Mapping[str, Any]) -> None:
    """Check rules that span several actor options, once decorator and call options are merged.

    Kept apart from ``validate_actor_options`` because e.g. ``name`` may come from the decorator
    while ``get_if_exists`` comes from ``.options()``.
    """
    if opts.get("get_if_exists") and not opts.get("name"):
        raise ValueError(
            "'get_if_exists=True' needs a 'name' to look the actor up by; pass name=... too."
        )


def validate_method_options(options: Mapping[str, Any], *, in_options: bool) -> dict[str, Any]:
    """Check options for an actor method (``@method(...)`` or ``.options(...)`` on it)."""
    del in_options  # every method option may be given either way; kept for a uniform API
    return _check(options, METHOD_OPTIONS, "actor methods")


def check_generator_returns(num_returns: Any, is_generator: bool, name: str) -> None:
    """``num_returns="streaming"`` or ``"dynamic"`` only for a function that yields."""
    if num_returns in _NUM_RETURNS_MODES and not is_generator:
        raise ValueError(
            f"num_returns={num_returns!r} can only be used with generator functions "
            f"(functions that use 'yield'); {name!r} is not a generator function."
        )


def task_defaults() -> dict[str, Any]:
    """A fresh dict of every task option's default."""
    return {name: opt.default for name, opt in TASK_OPTIONS.items()}


def actor_defaults() -> dict[str, Any]:
    """A fresh dict of every actor option's default (None means "decided by the runtime")."""
    return {name: opt.default for name, opt in ACTOR_OPTIONS.items()}


def method_defaults() -> dict[str, Any]:
    """A fresh dict of every method option's default (None means "inherit from the actor")."""
    return {name: opt.default for name, opt in METHOD_OPTIONS.items()}


_ACCELERATOR_TYPE_AMOUNT = 0.001  # (of the node's "accelerator_type:T", which is 1)


def resources_from_options(opts: Mapping[str, Any], *, default_num_cpus: float) -> dict[str, float]:
    """Build the scheduler's request ``{"CPU": n, "GPU": n, "memory": bytes, **custom}``,
    leaving out zeros.

    ``default_num_cpus`` applies when ``num_cpus`` is unset (tasks use 1; actors differ
    between placement and lifetime, so the caller decides). ``memory`` is a resource in
    bytes (rounded down, as Ray does); ``accelerator_type`` asks for a sliver of the
    ``accelerator_type:<T>`` resource that nodes with that accelerator have.
    """
    num_cpus = opts.get("num_cpus")
    request: dict[str, float] = {
        "CPU": float(default_num_cpus if num_cpus is None else num_cpus),
        "GPU": float(opts.get("num_gpus") or 0),
    }
    for key, amount in (opts.get("resources") or {}).items():
        request[key] = float(amount)
    if opts.get("memory"):
        request["memory"] = float(int(opts["memory"]))
    if opts.get("accelerator_type"):
        request[ACCELERATOR_TYPE_PREFIX + opts["accelerator_type"]] = _ACCELERATOR_TYPE_AMOUNT
    return {key: amount for key, amount in request.items() if amount != 0}
