"""The runtime this process is connected to, if any: the one mutable global of Ember.

``ember.init()`` sets it and ``ember.shutdown()`` clears it; ObjectRefs and actor handles that
are unpickled in this process attach themselves to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ember._runtime.runtime import Runtime

_runtime: Runtime | None = None


def current() -> Runtime | None:
    return _runtime


def set_current(runtime: Runtime | None) -> None:
    global _runtime
    _runtime = runtime
