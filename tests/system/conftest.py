"""Helpers for the system tests of Ember's public (Ray-compatible) API.

The system tests also run unchanged against real Ray through a shim package named ``ember``
that aliases ``ray``; tests marked ``ember_only`` (for example ``local_mode``, which Ray 2.60
removed) are skipped there. The shim is one file, ``SHIM/ember/__init__.py`` holding
``import sys, ray; sys.modules["ember"] = ray``; then, with an interpreter that has Ray,
``PYTHONPATH=SHIM:. python -m pytest -p no:cacheprovider tests/system/test_x.py``.

The helper actor classes are defined inside the fixtures on purpose: classes local to a function
are pickled by value, so they do not depend on the workers being able to import this file.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests._helpers import wait_until

# Functions and classes defined at module level in a test file are pickled by reference (by
# module name), so worker processes must be able to import the test modules. With pytest's
# importlib import mode (pyproject.toml) they are named ``tests.system.test_x`` and are found
# from the repository root, the driver's working directory, which Ray also puts on its
# workers' sys.path. With the default "prepend" mode they are named ``test_x`` and pytest puts
# this directory only on the driver's sys.path; workers inherit the driver's environment (not
# its sys.path), so export it through PYTHONPATH too.
_HERE = os.path.dirname(os.path.abspath(__file__))
_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
if _HERE not in _paths:
    os.environ["PYTHONPATH"] = os.pathsep.join([*_paths, _HERE])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ember_only: Ember-specific behaviour; skipped when `ember` is really Ray"
    )


def _running_on_ray() -> bool:
    try:
        import ember
    except Exception:  # an unfinished Ember must not hide the other tests
        return False
    return getattr(ember, "__name__", "ember") == "ray"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _running_on_ray():
        return
    skip = pytest.mark.skip(reason="Ember-only behaviour (running against real Ray)")
    for item in items:
        if "ember_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def short_grace() -> tuple[dict[str, Any], float]:
    """``(init kwargs, seconds)`` for a test that checks something outlives the grace period
    after which a node frees a shared object nobody refers to: on Ember a 0.05 s grace and
    five times that to wait; on Ray, which has no such setting, its own and 1.5 s."""
    if _running_on_ray():
        return {}, 1.5
    return {"_system_config": {"ref_grace_s": 0.05}}, 0.25


@pytest.fixture
def gate(tmp_path: Path) -> Any:
    """A latch backed by a file: ``gate.wait()`` (in a task) returns once ``gate.open()`` ran.

    Unlike waiting on a Signal actor, waiting on the gate does not call ``get``: a task blocked
    in ``get`` gives its CPU back (as in Ray), while a task in ``gate.wait()`` keeps holding
    its resources, which is what tests about resource limits need. ``wait_arrivals(n)`` lets
    the test wait until ``n`` tasks are inside ``gate.wait()``.
    """

    class Gate:
        def __init__(self, path: str) -> None:
            self.path = path

        def open(self) -> None:
            Path(self.path).touch()

        def is_open(self) -> bool:
            return os.path.exists(self.path)

        def wait(self, timeout: float = 30.0) -> bool:
            """Record an arrival, then poll (without get) until the gate is opened."""
            Path(f"{self.path}.arrived.{os.getpid()}.{time.time_ns()}").touch()
            return wait_until(self.is_open, timeout, f"gate {self.path} to be opened")

        def arrivals(self) -> int:
            folder, name = os.path.split(self.path)
            return sum(1 for f in os.listdir(folder) if f.startswith(name + ".arrived."))

        def wait_arrivals(self, n: int, timeout: float = 30.0) -> None:
            """In the test: block until ``n`` callers are inside ``wait()``."""
            wait_until(self.arrivals, timeout, f"{n} arrivals at the gate", until=lambda k: k >= n)

    return Gate(str(tmp_path / "gate"))


@pytest.fixture
def signal_cls() -> Any:
    """An actor class ``Signal``: ``send()`` sets it once, ``wait()`` blocks until it is set.

    Use: ``sig = signal_cls.remote()``; a task calls ``ray.get(sig.wait.remote())``; the test
    releases it with ``ray.get(sig.send.remote())``. ``wait`` gives up after ``timeout`` seconds
    (raising inside the actor) so a bug cannot hang a test. ``num_waiting()`` counts the
    callers currently inside ``wait()``.
    """
    import ember

    @ember.remote(num_cpus=0)
    class Signal:
        def __init__(self) -> None:
            self._event = asyncio.Event()
            self._waiting = 0

        async def send(self) -> None:
            self._event.set()

        async def wait(self, timeout: float = 30.0) -> bool:
            self._waiting += 1
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            finally:
                self._waiting -= 1
            return True

        async def is_set(self) -> bool:
            return self._event.is_set()

        async def num_waiting(self) -> int:
            return self._waiting

    return Signal


@pytest.fixture
def blocked_task(signal_cls: Any) -> Any:
    """A task that waits until released: ``ref = blocked_task.remote()`` (as many as wanted),
    then ``blocked_task.release()`` lets every one of them return True. It waits in ``get``
    on a ``Signal``, so its CPU is lent back meanwhile (as in Ray); ``waiting()`` counts the
    tasks inside that wait. (For a task that keeps its CPU, see ``gate``.)"""
    import ember

    @ember.remote
    def blocked(signal: Any) -> bool:
        return bool(ember.get(signal.wait.remote(), timeout=30))

    class BlockedTask:
        def __init__(self) -> None:
            self._signal: Any = None

        def _latch(self) -> Any:  # (made at first use: Ember runs by then)
            if self._signal is None:
                self._signal = signal_cls.remote()
            return self._signal

        def remote(self) -> Any:
            return blocked.remote(self._latch())

        def release(self) -> None:
            ember.get(self._latch().send.remote(), timeout=30)

        def waiting(self) -> int:
            return int(ember.get(self._latch().num_waiting.remote(), timeout=30))

    return BlockedTask()


@pytest.fixture
def barrier_cls() -> Any:
    """An actor class ``Barrier``: ``arrive(n)`` returns once ``n`` callers have arrived.

    It also counts callers currently inside ``enter()``/``leave()`` sections, and
    ``max_inside()`` reports the largest number seen at once.
    """
    import ember

    @ember.remote(num_cpus=0)
    class Barrier:
        def __init__(self) -> None:
            self._arrived = 0
            self._event = asyncio.Event()
            self._inside = 0
            self._max_inside = 0

        async def arrive(self, n: int, timeout: float = 30.0) -> int:
            self._arrived += 1
            if self._arrived >= n:
                self._event.set()
            await asyncio.wait_for(self._event.wait(), timeout)
            return self._arrived

        async def arrived(self) -> int:
            return self._arrived

        async def enter(self) -> int:
            self._inside += 1
            self._max_inside = max(self._max_inside, self._inside)
            return self._inside

        async def leave(self) -> None:
            self._inside -= 1

        async def max_inside(self) -> int:
            return self._max_inside

    return Barrier


@pytest.fixture
def make_cluster() -> Any:
    """``cluster = make_cluster(head_args, node_args..., **Cluster_kwargs)``: a cluster of real
    nodes on this machine (``ember.testing.Cluster``) with the driver connected. Everything
    ends afterwards: no process is left, nor any node's shared-memory or session folder
    (killed nodes' included)."""
    import psutil

    from ember.testing import Cluster

    made: list[Any] = []
    shm_dirs: list[str] = []
    before = {p.pid for p in psutil.Process().children(recursive=True)}

    def make(head: dict[str, Any] | None = None, *nodes: dict[str, Any], **kw: Any) -> Any:
        cluster = Cluster(initialize_head=True, head_node_args=head or {"num_cpus": 1}, **kw)
        made.append(cluster)
        for args in nodes:
            cluster.add_node(**args)
        # (and the session folders: a killed node's are the helper's to remove)
        shm_dirs.extend(
            d for n in cluster.nodes for d in (n.record["shm_dir"], n.record["session_dir"])
        )
        cluster.connect()
        return cluster

    yield make
    for cluster in made:
        cluster.shutdown()
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    for p in left:
        p.kill()
    assert not left, f"processes left after the cluster's shutdown: {[p.pid for p in left]}"
    assert not [d for d in shm_dirs if os.path.exists(d)], "shared-memory or session folders left"


@pytest.fixture
def puts(ray: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every value ``ray.put`` is given during the test, in order (each is still put)."""
    seen: list[Any] = []
    real_put = ray.put

    def spy(value: Any, **kwargs: Any) -> Any:
        seen.append(value)
        return real_put(value, **kwargs)

    monkeypatch.setattr(ray, "put", spy)
    return seen
