"""A worker's runtime env, set up before it runs anything of that env.

Workers are started per env (the node's scheduler pools them by its text). A worker for an
env with ``pip`` is forked like any other, builds (or finds) the env's cached virtual
environment, and then replaces itself (``exec``, same pid, same log) with that venv's python
running the worker module; every other env is set up in the forked process itself, once it
has connected: env vars, the working_dir and py_modules unpacked from the node's cache (the
working dir becomes the current directory and the first entry of ``sys.path``), then the
setup hook. A setup that fails leaves the worker running, answering each task or actor of
its env with ``RuntimeEnvSetupError`` (pip's output included): the failure reaches exactly
the work that needs that env, and nothing else on the node is disturbed.
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import sys
import traceback
from typing import Any

from ember import exceptions as exc
from ember._core import runtime_env as renv
from ember._runtime import runtime_env_files as files

# How a worker started from a venv's python gets the cluster's token (read and removed at
# once, so that the tasks' subprocesses do not inherit it).
TOKEN_VARIABLE = "EMBER_WORKER_TOKEN"


def exec_in_venv(text: str, argv: list[str], token: str | None, session_dir: str) -> str:
    """In a forked worker, for an env with ``pip``: become the worker module run by the
    env's venv python (this call does not return), or return why the venv failed ("" for an
    env without pip: nothing to do)."""
    env = renv.parse(text)
    if not env.get("pip"):
        return ""
    try:
        python = files.ensure_venv(env, session_dir, renv.setup_timeout(env))
    except exc.RuntimeEnvSetupError as e:
        return e.error_message or str(e)
    environ = dict(os.environ)
    environ["PYTHONPATH"] = files.worker_pythonpath(environ.get("PYTHONPATH", ""))
    if token:
        environ[TOKEN_VARIABLE] = token
    sys.stdout.flush()
    sys.stderr.flush()
    start = "from ember._runtime.worker.worker import main_in_venv; main_in_venv()"
    os.execve(python, [python, "-c", start, *argv, text], environ)
    raise AssertionError("unreachable")


class _SetupTimeout(BaseException):
    """Raised in the main thread when the setup outlasts ``setup_timeout_seconds``."""


def apply(text: str, fetch: Any, session_dir: str) -> str:
    """Set this process up for the env (``fetch``: the control store's function lookup),
    within its ``setup_timeout_seconds`` (an alarm interrupts a hook that hangs); "" when
    done, else what failed."""
    env = renv.parse(text)
    timeout = renv.setup_timeout(env)

    def expired(signum: int, frame: Any) -> None:
        raise _SetupTimeout("".join(traceback.format_stack(frame)))

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, timeout or 0)
    try:
        return _apply(env, fetch, session_dir)
    except _SetupTimeout as e:
        return (
            f"the setup did not finish within setup_timeout_seconds={timeout:g} (set in the "
            f"runtime env's 'config'); it was here:\n{e}"
        )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _apply(env: dict[str, Any], fetch: Any, session_dir: str) -> str:
    try:
        os.environ.update(env.get("env_vars", {}))
        paths = [files.unpack(uri, fetch, session_dir) for uri in env.get("py_modules", [])]
        if env.get("working_dir"):
            folder = files.unpack(env["working_dir"], fetch, session_dir)
            os.chdir(folder)
            paths.insert(0, folder)
        sys.path[:0] = paths
    except exc.RuntimeEnvSetupError as e:
        return e.error_message or str(e)
    except Exception as e:
        return f"could not unpack the runtime env's files: {e!r}"
    hook = env.get("worker_process_setup_hook")
    if hook:
        try:
            _hook(hook, fetch)()
        except Exception:
            return f"worker_process_setup_hook {hook!r} raised:\n{traceback.format_exc()}"
    return ""


def _hook(hook: str, fetch: Any) -> Any:
    if hook.startswith(renv.URI_PREFIX):  # a callable the caller exported
        return pickle.loads(fetch(hook.encode()))  # (cloudpickle's output is a pickle)
    module, _, name = hook.rpartition(".")
    if not module:
        raise ValueError(f"{hook!r} is not a 'module.function' name")
    return getattr(importlib.import_module(module), name)
