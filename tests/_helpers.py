"""Helpers shared by the unit and system tests: ``from tests._helpers import wait_until``.

(pytest's importlib mode names the test modules ``tests.unit.x`` and ``tests.system.x``, and
workers import those from the repository root, so this module is found by both.)
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psutil

from ember import exceptions as exc

if TYPE_CHECKING:  # (the system tests also run on Ray through a shim, without ember._core)
    from ember._core.task_leases import Fail, Task

V = TypeVar("V")
E = TypeVar("E", bound=BaseException)


def wait_until(
    probe: Callable[[], V],
    within: float,
    what: str,
    *,
    until: Callable[[V], object] | None = None,
) -> V:
    """Call ``probe`` until its value is truthy (or satisfies ``until``), and return that
    value; after ``within`` seconds fail, naming ``what`` and the last value seen.

    A short backoff (1 ms, doubling up to 50 ms) notices a quick event at once without
    spinning on a slow one. Pass ``until`` to see the value itself in the failure, not False:
    ``wait_until(free_cpus, 10, "both CPUs back", until=lambda n: n == 2)``.
    """
    deadline = time.monotonic() + within
    delay = 0.001
    while True:
        value = probe()
        if until(value) if until is not None else value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}; last: {value!r}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def raised(kind: type[E], call: Callable[[], object]) -> E | None:
    """The exception of ``kind`` that ``call()`` raised, or None if it returned: a probe for
    waits until calls fail (others propagate)."""
    try:
        call()
    except kind as e:
        return e
    return None


def get_when_answered(make_ref: Callable[[], object], within: float = 30.0) -> object:
    """``get(make_ref())``, made again while the actor is restarting (RayActorError)."""
    import ember

    def call() -> object:
        try:
            return ember.get(make_ref(), timeout=within)
        except ember.exceptions.RayActorError as e:
            return e

    def answered(value: object) -> bool:
        return not isinstance(value, ember.exceptions.RayActorError)

    return wait_until(call, within, "the actor to answer", until=answered)


def free_cpus() -> float:
    """The CPUs free in the cluster the driver is connected to."""
    import ember

    return float(ember.available_resources().get("CPU", 0))


def session_shm_dir() -> str:
    """The shared-memory folder of the object store of the node ``init()`` started here."""
    from ember._api import session

    node = session._node
    assert node is not None, "no node started by init() in this process"
    return node.shm_dir


def shm_bytes(shm_dir: str) -> int:
    """The shared memory a store folder takes: the pages allocated to its files (pooled ones
    included), and to its deleted files that a process of this test still has open or mapped
    (a mapping keeps a descriptor). Unlike the use of all of ``/dev/shm``, other tenants of
    the machine do not count."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def count(path: str) -> None:
        nonlocal total
        try:
            st = os.stat(path)
        except OSError:  # gone meanwhile
            return
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512

    for folder, _, names in os.walk(shm_dir):
        for name in names:
            count(os.path.join(folder, name))
    prefix = shm_dir.rstrip("/") + "/"
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        fds = f"/proc/{proc.pid}/fd"
        try:
            names = os.listdir(fds)
        except OSError:  # ended meanwhile
            continue
        for name in names:
            try:
                target = os.readlink(os.path.join(fds, name))
            except OSError:
                continue
            if target.startswith(prefix) and target.endswith(" (deleted)"):
                count(os.path.join(fds, name))
    return total


def of(kind: type, actions: Sequence[Any]) -> list[Any]:
    """The actions of one kind, in order (for the client machines' tests)."""
    return [a for a in actions if isinstance(a, kind)]


class _Cancelled:
    """Equal to any TaskCancelledError (an action compares its error with ==)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, exc.TaskCancelledError)


def cancelled(t: Task) -> Fail:
    """The ``Fail`` a cancelled task gets, whatever its error's message."""
    from ember._core.task_leases import Fail

    return Fail(t, _Cancelled())  # type: ignore[arg-type]


def load_benchmark(filename: str) -> Any:
    """A script of ``benchmarks/`` as a module (that folder is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / filename
    spec = importlib.util.spec_from_file_location(f"benchmark_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
