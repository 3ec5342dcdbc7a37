"""``register_serializer`` / ``deregister_serializer``: custom pickling for a class, as Ray's
``ray.util.serialization``.

A registration holds in the process that makes it, for every value that process sends: task
arguments, ``put`` and (in a worker) return values. An instance is pickled as a call of the
deserializer on what the serializer made of it, and the deserializer travels by value in that
stream, so the process that reads it needs no registration of its own. A worker that should
itself send instances of the class (return them, put them) registers there too, as in Ray."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def register_serializer(
    cls: type, *, serializer: Callable[[Any], Any], deserializer: Callable[[Any], Any]
) -> None:
    """Pickle instances of ``cls`` as ``deserializer(serializer(obj))``. The deserializer
    must itself be picklable (a module-level function, or one cloudpickle takes by value)."""
    if not isinstance(cls, type):
        raise TypeError(f"register_serializer() needs a class, got {cls!r}")
    for label, fn in (("serializer", serializer), ("deserializer", deserializer)):
        if not callable(fn):
            raise TypeError(f"register_serializer(): {label} must be callable, got {fn!r}")

    def reduce(obj: Any) -> tuple[Callable[[Any], Any], tuple[Any]]:
        return deserializer, (serializer(obj),)

    from ember._runtime import serialization  # loads the runtime: only when used

    serialization.register_reducer(cls, reduce)


def deregister_serializer(cls: type) -> None:
    """Forget the serializer of ``cls`` in this process (nothing if it has none)."""
    from ember._runtime import serialization

    serialization.unregister_reducer(cls)
