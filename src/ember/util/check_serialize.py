"""``inspect_serializability``: which member of an object cannot be pickled, as Ray's
``ray.util.inspect_serializability``.

The object is pickled as a whole first (with cloudpickle, as tasks and ``put`` do). If that
fails, its members are tried one by one, down to ``depth`` levels: a function's referenced
globals and closure variables, an instance's attributes, a class's own attributes, a
container's items. A member that fails while none of its own members does is a culprit;
each one is printed and returned as a ``FailureTuple``."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import IO, Any


class FailureTuple:
    """One object that cannot be pickled: ``obj``, the ``path`` of names that reach it from
    the inspected object, and the ``parent`` that holds it."""

    def __init__(self, obj: Any, path: tuple[str, ...], parent: Any) -> None:
        self.obj = obj
        self.path = path
        self.parent = parent

    @property
    def name(self) -> str | None:
        return self.path[-1] if self.path else None

    def __repr__(self) -> str:
        where = " -> ".join(self.path) or "?"
        return f"FailTuple({self.name} [path={where}, obj={self.obj!r}, parent={self.parent!r}])"


class _Report:
    def __init__(self, file: IO[str] | None) -> None:
        self.file = file
        self.level = 0

    def line(self, text: str) -> None:
        print("    " * self.level + text, file=self.file)


def inspect_serializability(
    base_obj: Any, name: str | None = None, depth: int = 3, print_file: IO[str] | None = None
) -> tuple[bool, set[FailureTuple]]:
    """``(True, set())`` if ``base_obj`` pickles; else ``(False, failures)``, after printing
    (to ``print_file``, default stdout) which members fail."""
    report = _Report(print_file)
    title = f"Checking Serializability of {base_obj!r}"
    rule = "=" * min(len(title), 80)
    report.line(rule)
    report.line(title)
    report.line(rule)
    import cloudpickle  # pickles as tasks and put() do; loaded only when used

    failures: set[FailureTuple] = set()
    path = (name,) if name is not None else ()
    ok = _inspect(base_obj, path, depth, None, failures, report, cloudpickle.dumps)
    if not ok:
        report.line(rule)
        report.line("Variable:\n")
        for failure in failures:
            report.line(f"\t{failure}")
        report.line(
            "\nwas found to be non-serializable. There may be other non-serializable "
            "variables that were not found. Consider not capturing these variables (create "
            "them inside the function or class instead), or register a serializer for "
            "their class with ember.util.register_serializer."
        )
    report.line(rule)
    return ok, failures


def _inspect(
    obj: Any,
    path: tuple[str, ...],
    depth: int,
    parent: Any,
    failures: set[FailureTuple],
    report: _Report,
    dumps: Callable[[Any], bytes],
) -> bool:
    try:
        dumps(obj)
        return True
    except Exception as e:  # anything pickling raises marks the object as a failure
        report.line(f"!!! FAIL serialization: {e}")
    culprit_below = False
    if depth > 0:
        report.level += 1
        for member_name, member in _members(obj):
            report.line(f"Serializing {member_name!r} {_short(member)}...")
            member_path = (*path, member_name)
            if not _inspect(member, member_path, depth - 1, obj, failures, report, dumps):
                culprit_below = True
        report.level -= 1
    if not culprit_below:
        failures.add(FailureTuple(obj, path, parent))
    return False


def _members(obj: Any) -> Iterator[tuple[str, Any]]:
    """What pickling ``obj`` pickles in turn (a best guess, by the kind of object)."""
    if isinstance(obj, types.MethodType):
        yield "__self__", obj.__self__
        yield "__func__", obj.__func__
    elif isinstance(obj, types.FunctionType):
        import inspect  # (a few ms to import: only once something failed to pickle)

        closure = inspect.getclosurevars(obj)
        yield from closure.nonlocals.items()
        yield from (
            (k, v) for k, v in closure.globals.items() if not isinstance(v, types.ModuleType)
        )
    elif isinstance(obj, dict):
        yield from ((f"[{k!r}]", v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        yield from ((f"[{i}]", v) for i, v in enumerate(obj))
    elif isinstance(obj, type):
        for key, value in vars(obj).items():
            if not (key.startswith("__") and key.endswith("__")):
                yield key, getattr(value, "__func__", value)  # unwrap static/class methods
    else:
        yield from getattr(obj, "__dict__", {}).items()
        for slot in _slots(type(obj)):
            if slot not in ("__dict__", "__weakref__") and hasattr(obj, slot):
                yield slot, getattr(obj, slot)


def _slots(cls: type) -> Iterator[str]:
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        yield from [slots] if isinstance(slots, str) else slots


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
