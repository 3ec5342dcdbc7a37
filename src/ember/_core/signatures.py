"""Whether a call's arguments fit a remote function's or actor method's parameters.

Ray binds the arguments to the signature at ``.remote()``, so a wrong call raises ``TypeError``
in the caller, not later in a worker. ``inspect.Signature.bind`` costs microseconds per call;
instead each distinct parameter list is compiled once into an empty function with the same
parameters, and the interpreter's own argument check (a plain call, tens of nanoseconds) does
the binding. A parameter list as text (``spec_of``) is what actor handles carry, so a handle
unpickled in another process builds its checkers from it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

_ANYTHING = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
_checkers: dict[tuple[str, str], Callable[..., None]] = {}


def spec_of(fn: Any, drop_first: bool = False) -> str | None:
    """``fn``'s parameter list as text, defaults and annotations left out (only whether a
    parameter has a default matters); None when any call fits, as ``(*args, **kwargs)``, or
    when the signature cannot be read (a builtin, an extension type)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if drop_first and params and params[0].kind not in _ANYTHING:
        params = params[1:]
    if [p.kind for p in params] == list(_ANYTHING):
        return None
    plain = [
        p.replace(
            annotation=inspect.Parameter.empty,
            default=inspect.Parameter.empty if p.default is inspect.Parameter.empty else None,
        )
        for p in params
    ]
    return str(inspect.Signature(plain))


def unbuilt(*args: Any, **kwargs: Any) -> None:
    """Stands for a check not built yet: holders build theirs at the first call."""


def checker(spec: str | None, name: str) -> Callable[..., None] | None:
    """A function that raises ``TypeError`` (naming ``name``) unless called with arguments
    that fit ``spec``; None when anything fits."""
    if spec is None:
        return None
    key = (spec, name)
    check = _checkers.get(key)
    if check is None:
        scope: dict[str, Any] = {}
        exec(f"def check{spec}: pass", scope)  # spec: parameter names and None defaults only
        check = scope["check"]
        check.__qualname__ = name  # (what the interpreter's TypeError names)
        _checkers[key] = check
    return check
