"""The runtime this process is connected to, if any: the one mutable global of Ember.

``ember.init()`` sets it and ``ember.shutdown()`` clears it; ObjectRefs and actor handles that
are unpickled in this process attach themselves to it.
"""

from __future__ import annotations

from typing import Any

_runtime: Any = None


def current() -> Any:
    return _runtime


def set_current(runtime: Any) -> None:
    global _runtime
    _runtime = runtime
