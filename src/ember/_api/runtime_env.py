"""Runtime envs at the call site: ``RuntimeEnv``, checking a user's env, and turning it into
the canonical text a task or actor carries.

A job's env (``init(runtime_env=...)``) is resolved once; a task's or actor's is merged with
its parent's (the job's in a driver, the worker's own env in a task) and resolved on its
first use in this process: local folders and files are packed and uploaded to the control
store under their content hash, a callable setup hook is pickled and uploaded the same way,
and the text names what was uploaded. The result is kept per env (the last few hundred), so
a later call costs a dictionary lookup; files changed after the first call with an env are
not sent again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ember._core import runtime_env as renv
from ember._runtime.runtime import Runtime

# (node, parent env, the user's env as JSON) -> its canonical text, and the values the JSON
# names by id (a setup hook): kept alive with the entry, so that no other object can take
# their id while it is there. The most recently used are kept.
_resolved: OrderedDict[tuple[bytes, str, str], tuple[str, list[object]]] = OrderedDict()
_RESOLVED_KEPT = 256


class RuntimeEnvConfig(dict):  # type: ignore[type-arg]
    """The settings of a runtime env's setup: ``setup_timeout_seconds`` (-1: no limit) and
    ``eager_install``."""

    def __init__(
        self,
        setup_timeout_seconds: int = renv.DEFAULT_SETUP_TIMEOUT_SECONDS,
        eager_install: bool = True,
    ) -> None:
        super().__init__(
            renv.validate(
                {
                    "config": {
                        "setup_timeout_seconds": setup_timeout_seconds,
                        "eager_install": eager_install,
                    }
                }
            )["config"]
        )


class RuntimeEnv(dict):  # type: ignore[type-arg]
    """A runtime environment for a job, task or actor: a dict whose fields are checked when
    it is made (an unknown field is an error naming it). Usable wherever a dict is."""

    def __init__(
        self,
        *,
        py_modules: list[str] | None = None,
        working_dir: str | None = None,
        pip: list[str] | str | dict[str, Any] | None = None,
        env_vars: dict[str, str] | None = None,
        worker_process_setup_hook: Callable[[], None] | str | None = None,
        config: dict[str, Any] | RuntimeEnvConfig | None = None,
        _validate: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        given = {
            "py_modules": py_modules,
            "working_dir": working_dir,
            "pip": pip,
            "env_vars": env_vars,
            "worker_process_setup_hook": worker_process_setup_hook,
            "config": config,
            **kwargs,
        }
        given = {k: v for k, v in given.items() if v is not None}
        self.update(check(given) if _validate else given)

    def to_dict(self) -> dict[str, Any]:
        return dict(self)

    def serialize(self) -> str:
        return json.dumps(self, sort_keys=True)

    @classmethod
    def deserialize(cls, serialized_runtime_env: str) -> RuntimeEnv:
        return cls(_validate=False, **json.loads(serialized_runtime_env))

    def env_vars(self) -> dict[str, str]:
        return dict(self.get("env_vars", {}))

    def working_dir(self) -> str:
        return str(self.get("working_dir", ""))

    def py_modules(self) -> list[str]:
        return list(self.get("py_modules", []))


def check(env: Any) -> dict[str, Any]:
    """``env`` checked (TypeError or ValueError naming what is wrong), with a requirements
    file read and local paths made absolute; nothing is uploaded yet."""
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise TypeError(f"runtime_env must be a dict or a RuntimeEnv, got {type(env).__name__}.")
    env = dict(env)
    pip = env.get("pip")
    if isinstance(pip, str):
        env["pip"] = _requirements(pip)
    elif isinstance(pip, dict) and isinstance(pip.get("packages"), str):
        env["pip"] = {**pip, "packages": _requirements(pip["packages"])}
    checked = renv.validate(env)
    if "working_dir" in checked:
        checked["working_dir"] = _local(checked["working_dir"])
    if "py_modules" in checked:
        checked["py_modules"] = [_local(p) for p in checked["py_modules"]]
    return checked


def _requirements(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a valid file: `pip` as a string is a requirements.txt.")
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]


def _local(path: str) -> str:
    if path.startswith(renv.URI_PREFIX):
        return path
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(full):
        raise ValueError(f"{path} is not a valid path.")
    return full


def resolve(rt: Runtime, checked: dict[str, Any]) -> dict[str, Any]:
    """Upload what ``checked`` names locally and return the env with references instead."""
    out = dict(checked)
    excludes = out.pop("excludes", [])
    if "working_dir" in out:
        out["working_dir"] = _upload(rt, out["working_dir"], excludes, keep_name=False)
    if "py_modules" in out:
        out["py_modules"] = [_upload(rt, p, excludes, keep_name=True) for p in out["py_modules"]]
    hook = out.get("worker_process_setup_hook")
    if callable(hook):
        import cloudpickle

        data = cloudpickle.dumps(hook)
        uri = f"{renv.URI_PREFIX}_ember_hook_{hashlib.blake2b(data, digest_size=16).hexdigest()}"
        rt.export_function(uri.encode(), lambda: data)
        out["worker_process_setup_hook"] = uri
    return out


def _upload(rt: Runtime, path: str, excludes: list[str], keep_name: bool) -> str:
    if path.startswith(renv.URI_PREFIX):
        return path
    from ember._runtime import runtime_env_files as files  # (zipfile: only when used)

    uri, data = files.pack(path, excludes, keep_name)
    rt.export_function(uri.encode(), lambda: data)
    return uri


def job_env(rt: Runtime, checked: dict[str, Any]) -> str:
    """The canonical text of a job's env (``init(runtime_env=...)``, already ``check``ed)."""
    return renv.canonical(resolve(rt, checked))


def for_call(rt: Runtime, env: Any) -> str:
    """The env of a task or actor whose ``runtime_env`` option is ``env``, merged with this
    process's (its parent's); ``env`` is ``check``ed on its first use here."""
    return _for_parent(rt, rt.runtime_env, env)


class CallEnv:
    """A task's ``runtime_env`` option, kept in its call plan with its text for the last
    runtime and parent env it was resolved for, so that a call with it costs no JSON."""

    __slots__ = ("_env", "_last")

    def __init__(self, env: dict[str, Any]) -> None:
        self._env = env
        self._last: tuple[bytes, str, str] | None = None

    def text(self, rt: Runtime) -> str:
        node, parent = rt.node_id, rt.runtime_env
        last = self._last  # (read once: another thread may replace it meanwhile)
        if last is not None and last[0] == node and last[1] == parent:
            return last[2]
        text = _for_parent(rt, parent, self._env)
        self._last = (node, parent, text)
        return text


def _for_parent(rt: Runtime, parent: str, env: Any) -> str:
    if not env:
        return parent
    named: list[object] = []

    def identity(obj: object) -> str:
        named.append(obj)
        return f"<{type(obj).__qualname__} {id(obj)}>"

    key = (rt.node_id, parent, json.dumps(env, sort_keys=True, default=identity))
    hit = _resolved.get(key)
    if hit is not None:
        with contextlib.suppress(KeyError):  # (another thread's call evicted it meanwhile)
            _resolved.move_to_end(key)
        return hit[0]
    text = renv.canonical(renv.merge(renv.parse(parent), resolve(rt, check(env))))
    _resolved[key] = (text, named)
    if len(_resolved) > _RESOLVED_KEPT:
        _resolved.popitem(last=False)
    return text


def current(rt: Runtime) -> RuntimeEnv:
    """The env this process's work runs in, for ``get_runtime_context().runtime_env``."""
    return RuntimeEnv(_validate=False, **renv.parse(rt.runtime_env))
