"""Tests for ember._api.options: option tables, validation messages, defaults, resources."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ember._api.options import (
    ACTOR_OPTIONS,
    METHOD_OPTIONS,
    TASK_OPTIONS,
    Option,
    actor_defaults,
    method_defaults,
    resources_from_options,
    task_defaults,
    validate_actor_options,
    validate_merged_actor_options,
    validate_method_options,
    validate_task_options,
)

# ----------------------------------------------------------------------------- tables


def test_tables_contain_expected_names() -> None:
    assert set(TASK_OPTIONS) == {
        "num_cpus",
        "num_gpus",
        "resources",
        "memory",
        "num_returns",
        "_generator_backpressure_num_objects",
        "max_retries",
        "retry_exceptions",
        "max_calls",
        "name",
        "scheduling_strategy",
        "runtime_env",
        "accelerator_type",
        "label_selector",
        "_metadata",
        "enable_task_events",
    }
    assert set(ACTOR_OPTIONS) == {
        "num_cpus",
        "num_gpus",
        "resources",
        "memory",
        "max_restarts",
        "max_task_retries",
        "max_concurrency",
        "max_pending_calls",
        "name",
        "namespace",
        "lifetime",
        "get_if_exists",
        "scheduling_strategy",
        "runtime_env",
        "concurrency_groups",
        "accelerator_type",
        "label_selector",
        "enable_task_events",
        "_metadata",
    }
    assert set(METHOD_OPTIONS) == {
        "num_returns",
        "_generator_backpressure_num_objects",
        "max_task_retries",
        "retry_exceptions",
        "concurrency_group",
        "name",
        "enable_task_events",
    }
    for table in (TASK_OPTIONS, ACTOR_OPTIONS, METHOD_OPTIONS):
        for key, opt in table.items():
            assert isinstance(opt, Option) and opt.name == key


def test_option_is_frozen() -> None:
    with pytest.raises(AttributeError):
        TASK_OPTIONS["num_cpus"].default = 5  # type: ignore[misc]


def test_task_defaults() -> None:
    d = task_defaults()
    assert d["num_cpus"] == 1
    assert d["num_gpus"] == 0
    assert d["max_retries"] == 3
    assert d["retry_exceptions"] is False
    assert d["num_returns"] is None  # 'streaming' for a generator function, else 1
    assert d["enable_task_events"] is True
    assert d["resources"] is None
    assert set(d) == set(TASK_OPTIONS)


def test_actor_defaults() -> None:
    d = actor_defaults()
    assert d["num_cpus"] is None
    assert d["max_restarts"] == 0
    assert d["max_task_retries"] == 0
    assert d["max_concurrency"] is None
    assert d["max_pending_calls"] == -1
    assert d["lifetime"] is None
    assert d["get_if_exists"] is False
    assert set(d) == set(ACTOR_OPTIONS)


def test_method_defaults_inherit_from_actor() -> None:
    d = method_defaults()
    assert d["num_returns"] is None
    assert d["max_task_retries"] is None
    assert set(d) == set(METHOD_OPTIONS)


def test_defaults_are_fresh_copies() -> None:
    d = task_defaults()
    d["num_cpus"] = 99
    assert task_defaults()["num_cpus"] == 1


def test_merging_precedence_is_callers_job() -> None:
    decorator = validate_task_options({"num_cpus": 2, "max_retries": 0}, in_options=False)
    call = validate_task_options({"num_cpus": 0.5}, in_options=True)
    merged = {**task_defaults(), **decorator, **call}
    assert merged["num_cpus"] == 0.5
    assert merged["max_retries"] == 0
    assert merged["num_gpus"] == 0


# ------------------------------------------------------------------------ valid input


def test_validate_returns_copy_without_defaults() -> None:
    given = {"num_cpus": 2, "name": "job"}
    out = validate_task_options(given, in_options=False)
    assert out == given
    assert out is not given


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"num_cpus": 0},
        {"num_cpus": 0.25, "num_gpus": 0.5},
        {"num_cpus": 4, "num_gpus": 2.0},
        {"num_cpus": np.float64(0.5), "num_gpus": np.int64(1)},
        {"resources": {"custom": 3, "tiny": 0.001}},
        {"memory": 2 * 1024**3},
        {"num_returns": 0},
        {"num_returns": 3},
        {"num_returns": "dynamic"},
        {"num_returns": "streaming"},
        {"max_retries": -1},
        {"max_retries": 0},
        {"retry_exceptions": True},
        {"retry_exceptions": [ValueError, KeyError]},
        {"retry_exceptions": (OSError,)},
        {"max_calls": 1},
        {"scheduling_strategy": "SPREAD"},
        {"scheduling_strategy": "DEFAULT"},
        {"scheduling_strategy": object()},
        {"runtime_env": {"env_vars": {"A": "1"}}},
        {"accelerator_type": "A100"},
        {"label_selector": {"zone": "us-west"}},
        {"_metadata": {"ns": {"k": 1}}},
        {"enable_task_events": False},
        {"name": None},
    ],
)
def test_valid_task_options(opts: dict[str, Any]) -> None:
    assert validate_task_options(opts, in_options=False) == opts


@pytest.mark.parametrize(
    "opts",
    [
        {"num_cpus": 1, "max_restarts": -1, "max_task_retries": 2},
        {"max_concurrency": 1},
        {"max_concurrency": 1000},
        {"max_pending_calls": -1},
        {"max_pending_calls": 10},
        {"name": "svc", "namespace": "prod", "lifetime": "detached", "get_if_exists": True},
        {"lifetime": "non_detached"},
        {"lifetime": None},
        {"concurrency_groups": {"io": 2, "compute": 4}},
        {"resources": {"accelerator": 1}},
    ],
)
def test_valid_actor_options(opts: dict[str, Any]) -> None:
    assert validate_actor_options(opts, in_options=False) == opts


@pytest.mark.parametrize(
    "opts",
    [
        {"num_returns": 2},
        {"num_returns": "streaming"},
        {"max_task_retries": -1},
        {"retry_exceptions": [RuntimeError]},
        {"concurrency_group": "io"},
        {"name": "step"},
        {"enable_task_events": False},
    ],
)
def test_valid_method_options(opts: dict[str, Any]) -> None:
    for in_options in (False, True):
        assert validate_method_options(opts, in_options=in_options) == opts


# -------------------------------------------------------------------- unknown options


def test_unknown_task_option_suggests_closest_and_lists_valid() -> None:
    with pytest.raises(ValueError) as info:
        validate_task_options({"num_cpu": 1}, in_options=False)
    msg = str(info.value)
    assert "'num_cpu'" in msg
    assert "Did you mean 'num_cpus'?" in msg
    listed = msg.split("Valid options are: ")[1].rstrip(".").split(", ")
    assert listed == sorted(TASK_OPTIONS)


def test_unknown_actor_option_suggestion() -> None:
    with pytest.raises(ValueError, match="Did you mean 'max_restarts'"):
        validate_actor_options({"max_restart": 1}, in_options=True)


def test_unknown_method_option_suggestion() -> None:
    with pytest.raises(ValueError, match="Did you mean 'num_returns'"):
        validate_method_options({"num_return": 1}, in_options=False)


def test_unknown_option_without_close_match() -> None:
    with pytest.raises(ValueError) as info:
        validate_task_options({"zzzzzz": 1}, in_options=False)
    assert "Did you mean" not in str(info.value)
    assert "Valid options are" in str(info.value)


def test_actor_only_option_rejected_for_tasks() -> None:
    with pytest.raises(ValueError, match="max_restarts"):
        validate_task_options({"max_restarts": 1}, in_options=False)


def test_task_only_option_rejected_for_methods() -> None:
    with pytest.raises(ValueError, match="Invalid option 'num_cpus'"):
        validate_method_options({"num_cpus": 1}, in_options=False)


def test_non_mapping_rejected() -> None:
    with pytest.raises(TypeError):
        validate_task_options([("num_cpus", 1)], in_options=False)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("opts", "error", "fragment"),
    [
        ({"num_cpus": -1}, ValueError, ">= 0"),
        ({"num_cpus": 1.5}, ValueError, "whole numbers"),
        ({"num_gpus": 2.5}, ValueError, "whole numbers"),
        ({"num_cpus": 0.00001}, ValueError, "at least"),
        ({"num_cpus": float("nan")}, ValueError, "finite"),
        ({"num_cpus": float("inf")}, ValueError, "finite"),
        ({"num_cpus": True}, TypeError, "bool"),
        ({"num_cpus": "1"}, TypeError, "str"),
        ({"num_gpus": None}, None, ""),
        ({"memory": -5}, ValueError, ">= 0"),
        ({"resources": {"CPU": 1}}, ValueError, "num_cpus"),
        ({"resources": {"GPU": 1}}, ValueError, "num_gpus"),
        ({"resources": {"custom": -1}}, ValueError, "custom"),
        ({"resources": {"custom": 1.5}}, ValueError, "whole numbers"),
        ({"resources": {"custom": "1"}}, TypeError, "numbers"),
        ({"resources": {"custom": False}}, TypeError, "numbers"),
        ({"resources": {1: 1}}, TypeError, "strings"),
        ({"resources": [("custom", 1)]}, TypeError, "resources"),
        ({"num_returns": -1}, ValueError, ">= 0"),
        ({"num_returns": "many"}, ValueError, "streaming"),
        ({"num_returns": 1.0}, TypeError, "num_returns"),
        ({"num_returns": True}, TypeError, "bool"),
        ({"max_retries": -2}, ValueError, ">= -1"),
        ({"max_retries": 1.0}, TypeError, "max_retries"),
        ({"max_retries": True}, TypeError, "bool"),
        ({"retry_exceptions": [int]}, TypeError, "exception class"),
        ({"retry_exceptions": [ValueError("x")]}, TypeError, "exception class"),
        ({"retry_exceptions": "yes"}, TypeError, "retry_exceptions"),
        ({"max_calls": -1}, ValueError, ">= 0"),
        ({"name": 5}, TypeError, "name"),
        ({"scheduling_strategy": "RANDOM"}, ValueError, "SPREAD"),
        ({"runtime_env": "env"}, TypeError, "runtime_env"),
        ({"accelerator_type": 1}, TypeError, "accelerator_type"),
        ({"label_selector": {"zone": 1}}, TypeError, "label_selector"),
        ({"_metadata": {1: 2}}, TypeError, "string keys"),
        ({"enable_task_events": 1}, TypeError, "enable_task_events"),
    ],
)
def test_bad_task_values(
    opts: dict[str, Any], error: type[Exception] | None, fragment: str
) -> None:
    if error is None:
        validate_task_options(opts, in_options=False)
        return
    with pytest.raises(error) as info:
        validate_task_options(opts, in_options=False)
    msg = str(info.value)
    (key,) = opts
    assert f"option {key!r}" in msg
    assert repr(opts[key]) in msg
    assert fragment in msg


@pytest.mark.parametrize(
    ("opts", "error", "fragment"),
    [
        ({"max_restarts": -2}, ValueError, ">= -1"),
        ({"max_task_retries": -5}, ValueError, ">= -1"),
        ({"max_concurrency": 0}, ValueError, ">= 1"),
        ({"max_concurrency": 1.5}, TypeError, "max_concurrency"),
        ({"max_pending_calls": 0}, ValueError, "-1"),
        ({"max_pending_calls": -2}, ValueError, "-1"),
        ({"name": ""}, ValueError, "non-empty"),
        ({"name": 3}, TypeError, "name"),
        ({"namespace": ""}, ValueError, "non-empty"),
        ({"lifetime": "forever"}, ValueError, "detached"),
        ({"get_if_exists": "yes"}, TypeError, "get_if_exists"),
        ({"concurrency_groups": {"io": 0}}, ValueError, ">= 1"),
        ({"concurrency_groups": {"io": "2"}}, TypeError, "integer"),
        ({"concurrency_groups": {1: 2}}, TypeError, "strings"),
        ({"num_cpus": -0.5}, ValueError, ">= 0"),
    ],
)
def test_bad_actor_values(opts: dict[str, Any], error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as info:
        validate_actor_options(opts, in_options=False)
    msg = str(info.value)
    (key,) = opts
    assert f"option {key!r}" in msg
    assert fragment in msg


@pytest.mark.parametrize(
    ("opts", "error"),
    [
        ({"num_returns": -1}, ValueError),
        ({"max_task_retries": -2}, ValueError),
        ({"retry_exceptions": [str]}, TypeError),
        ({"concurrency_group": 1}, TypeError),
    ],
)
def test_bad_method_values(opts: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        validate_method_options(opts, in_options=False)


# ------------------------------------------------------------------ context rules


def test_max_calls_only_in_decorator() -> None:
    assert validate_task_options({"max_calls": 2}, in_options=False) == {"max_calls": 2}
    with pytest.raises(ValueError, match="max_calls"):
        validate_task_options({"max_calls": 2}, in_options=True)


def test_concurrency_groups_only_in_decorator() -> None:
    opts = {"concurrency_groups": {"io": 1}}
    assert validate_actor_options(opts, in_options=False) == opts
    with pytest.raises(ValueError, match="concurrency_groups"):
        validate_actor_options(opts, in_options=True)


def test_get_if_exists_needs_name_after_merge() -> None:
    # Validated separately, the call options alone are fine: the name may come from elsewhere.
    assert validate_actor_options({"get_if_exists": True}, in_options=True)
    validate_merged_actor_options({"get_if_exists": True, "name": "svc"})
    validate_merged_actor_options({"get_if_exists": False})
    with pytest.raises(ValueError, match="name"):
        validate_merged_actor_options({"get_if_exists": True, "name": None})


# ------------------------------------------------------------------------- resources


def test_resources_default_cpu_and_zero_omitted() -> None:
    assert resources_from_options(task_defaults(), default_num_cpus=1) == {"CPU": 1.0}
    assert resources_from_options({}, default_num_cpus=1) == {"CPU": 1.0}
    assert resources_from_options(actor_defaults(), default_num_cpus=0) == {}


def test_resources_explicit_values() -> None:
    opts = {"num_cpus": 0.5, "num_gpus": 2, "resources": {"custom": 3, "none": 0}}
    out = resources_from_options(opts, default_num_cpus=1)
    assert out == {"CPU": 0.5, "GPU": 2.0, "custom": 3.0}
    assert all(isinstance(v, float) for v in out.values())


def test_resources_explicit_zero_cpu_overrides_default() -> None:
    assert resources_from_options({"num_cpus": 0}, default_num_cpus=1) == {}


def test_resources_memory_in_whole_bytes_and_accelerator_type_as_ray_asks() -> None:
    opts = {"memory": 1024.7, "accelerator_type": "A100"}
    assert resources_from_options(opts, default_num_cpus=1) == {
        "CPU": 1.0,
        "memory": 1024.0,
        "accelerator_type:A100": 0.001,
    }


@pytest.mark.parametrize(
    "selector", [{"zone": "a"}, {"zone": "!a"}, {"zone": "in(a,b)"}, {"zone": "!in(a, b)"}]
)
def test_label_selector_takes_ray_s_forms(selector: dict[str, str]) -> None:
    assert validate_task_options({"label_selector": selector}, in_options=False)


@pytest.mark.parametrize("expr", ["in()", "!!a", "-a", "in(a,", "a b"])
def test_label_selector_refuses_what_ray_refuses(expr: str) -> None:
    with pytest.raises(ValueError, match="label_selector"):
        validate_task_options({"label_selector": {"zone": expr}}, in_options=False)
