"""Runtime environments as plain values: checking what a user gives, merging a task's with
its parent's, and the canonical text that names one.

A runtime env travels as that text (sorted JSON, "" for none): in a lease request, so the
node starts and pools workers per env (a worker set up for one env never runs a task of
another), and in an actor's spec. Local paths (``working_dir``, ``py_modules``) and a
callable setup hook are replaced by ``gcs://`` references to what the caller uploaded before
the text is made, so two callers with the same content name the same env.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

FIELDS = (
    "env_vars",
    "working_dir",
    "py_modules",
    "excludes",
    "pip",
    "worker_process_setup_hook",
    "config",
)
# Ray's fields that Ember does not implement: refused by name rather than ignored.
UNSUPPORTED = ("conda", "uv", "container", "image_uri", "py_executable", "java_jars", "nsight")
CONFIG_FIELDS = ("setup_timeout_seconds", "eager_install")
PIP_FIELDS = ("packages", "pip_check", "pip_version")
DEFAULT_SETUP_TIMEOUT_SECONDS = 600
# What an uploaded package or exported hook is called in a runtime env.
URI_PREFIX = "gcs://"


def validate(env: Mapping[str, Any]) -> dict[str, Any]:
    """A checked, normalized copy of ``env`` (fields set to None are dropped; ``pip`` becomes
    a dict with ``packages``). Raises TypeError or ValueError naming the field at fault.
    ``pip`` must already be a list or dict (a requirements file is read by the caller)."""
    if not isinstance(env, Mapping):
        raise TypeError(f"runtime_env must be a dict, got {type(env).__name__}.")
    unsupported = sorted(k for k in env if k in UNSUPPORTED or k.lstrip("_") in UNSUPPORTED)
    if unsupported:
        raise ValueError(
            f"runtime_env field(s) {unsupported} are not supported by Ember; it supports "
            f"{list(FIELDS)}."
        )
    unknown = sorted(str(k) for k in env if k not in FIELDS)
    if unknown:
        raise ValueError(
            f"runtime_env has unknown field(s) {unknown}; the fields are {list(FIELDS)}."
        )
    out: dict[str, Any] = {}
    for key in FIELDS:
        value = env.get(key)
        if value is None:
            continue
        if key == "env_vars":
            value = _env_vars(value)
        elif key == "working_dir":
            if not isinstance(value, str):
                raise TypeError(f"`working_dir` must be a string, got {type(value).__name__}.")
        elif key in ("py_modules", "excludes"):
            value = _strings(key, value)
        elif key == "pip":
            value = _pip(value)
        elif key == "worker_process_setup_hook":
            if not (isinstance(value, str) or callable(value)):
                raise TypeError(
                    "`worker_process_setup_hook` must be a callable or a 'module.function' "
                    f"string, got {type(value).__name__}."
                )
        elif key == "config":
            value = _config(value)
        out[key] = value
    return out


def _env_vars(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"`env_vars` must be a dict of str to str, got {type(value).__name__}.")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(
                f"`env_vars` must be a dict of str to str, got {k!r}: {v!r} "
                f"({type(k).__name__}: {type(v).__name__})."
            )
    return dict(value)


def _strings(key: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise TypeError(f"`{key}` must be a list of strings, got {type(value).__name__}.")
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"each entry of `{key}` must be a string, got {item!r}.")
    return list(value)


def _pip(value: Any) -> dict[str, Any]:
    if isinstance(value, list | tuple):
        value = {"packages": value}
    if not isinstance(value, Mapping):
        raise TypeError(
            "`pip` must be a list of requirements, a requirements.txt path or a dict with "
            f"'packages', got {type(value).__name__}."
        )
    unknown = sorted(str(k) for k in value if k not in PIP_FIELDS)
    if unknown:
        raise ValueError(
            f"`pip` has unknown field(s) {unknown}; its fields are {list(PIP_FIELDS)}."
        )
    if "packages" not in value:
        raise ValueError("`pip` as a dict must have 'packages'.")
    out: dict[str, Any] = {"packages": _strings("pip", value["packages"])}
    pip_check = value.get("pip_check", False)
    if not isinstance(pip_check, bool):
        raise TypeError(f"`pip_check` must be a bool, got {type(pip_check).__name__}.")
    out["pip_check"] = pip_check
    if value.get("pip_version") is not None:
        if not isinstance(value["pip_version"], str):
            raise TypeError("`pip_version` must be a string such as '==23.3.1'.")
        out["pip_version"] = value["pip_version"]
    return out


def _config(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"runtime_env['config'] must be a dict, got {type(value).__name__}.")
    unknown = sorted(str(k) for k in value if k not in CONFIG_FIELDS)
    if unknown:
        raise ValueError(
            f"runtime_env['config'] has unknown field(s) {unknown}; its fields are "
            f"{list(CONFIG_FIELDS)}."
        )
    timeout = value.get("setup_timeout_seconds", DEFAULT_SETUP_TIMEOUT_SECONDS)
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        raise TypeError(f"setup_timeout_seconds must be an int, got {type(timeout).__name__}.")
    if timeout <= 0 and timeout != -1:
        raise ValueError(
            f"setup_timeout_seconds must be greater than zero or -1 (no limit), got {timeout}."
        )
    eager = value.get("eager_install", True)
    if not isinstance(eager, bool):
        raise TypeError(f"eager_install must be a bool, got {type(eager).__name__}.")
    return {"setup_timeout_seconds": timeout, "eager_install": eager}


def merge(parent: Mapping[str, Any] | None, child: Mapping[str, Any] | None) -> dict[str, Any]:
    """The env of a task or actor whose own is ``child``, started from a job, task or actor
    whose env is ``parent`` (as Ray documents: each field of the child replaces the parent's,
    except ``env_vars``, which are merged variable by variable, the child's winning)."""
    out = dict(parent or {})
    env_vars = {**out.get("env_vars", {}), **(child or {}).get("env_vars", {})}
    out.update(child or {})
    if env_vars:
        out["env_vars"] = env_vars
    return out


def canonical(env: Mapping[str, Any]) -> str:
    """The text that names ``env`` (its values must be JSON: paths and hooks replaced by
    references); "" for no env, the common case, which workers forked plainly serve."""
    if not env:
        return ""
    return json.dumps(env, sort_keys=True, separators=(",", ":"))


def parse(text: str) -> dict[str, Any]:
    return dict(json.loads(text)) if text else {}


def digest(text: str) -> str:
    """A short content hash, for cache folders and package names."""
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def pip_key(env: Mapping[str, Any]) -> str:
    """Which cached virtual environment serves ``env`` ("" when it has no pip field): one
    per distinct requirement list, whatever else the envs hold."""
    pip = env.get("pip")
    return digest(json.dumps(pip, sort_keys=True)) if pip else ""


def setup_timeout(env: Mapping[str, Any]) -> float | None:
    """Seconds the setup of ``env`` may take (None: no limit)."""
    timeout = env.get("config", {}).get("setup_timeout_seconds", DEFAULT_SETUP_TIMEOUT_SECONDS)
    return None if timeout == -1 else float(timeout)
