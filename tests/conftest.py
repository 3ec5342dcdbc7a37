"""Shared fixtures: every test that starts Ember ends every process it started."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest


def _descendants() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


@pytest.fixture
def start_ember() -> Iterator[Callable[..., Any]]:
    """Call as ``ray = start_ember(num_cpus=2)``; shuts down and checks for leaks afterwards."""
    import ember

    before = {p.pid for p in _descendants()}

    def start(**kwargs: Any) -> Any:
        kwargs.setdefault("num_cpus", 2)
        ember.init(**kwargs)
        return ember

    try:
        yield start
    finally:
        ember.shutdown()
        leaked = [p for p in _descendants() if p.pid not in before]
        for p in leaked:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(leaked, timeout=5)
        assert not leaked, f"processes left after shutdown(): {[p.pid for p in leaked]}"


@pytest.fixture
def ray(start_ember: Callable[..., Any]) -> Any:
    """Ember started with 2 CPUs, under the name Ray programs use."""
    return start_ember(num_cpus=2)
