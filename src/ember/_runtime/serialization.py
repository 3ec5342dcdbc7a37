"""Turning values into bytes and back, with pickle protocol 5 out-of-band buffers.

Large binary data (numpy arrays, bytes-like buffers) is not copied into the pickle stream:
``serialize`` returns the pickle metadata plus the list of raw buffers, which the caller
either packs into one inline message (small values) or writes straight into a store file
(large ones). cloudpickle is used so that functions and classes defined in ``__main__`` or a
notebook travel by value.

Inline form: a plain pickle when there are no buffers (it starts with the PROTO opcode), or
``b"E"`` + the object-file layout when there are.
"""

from __future__ import annotations

import io
import pickle
import threading
from collections import ChainMap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from ember._runtime.object_store import store as object_store

INLINE_MAX = 100 * 1024  # values above this go to shared memory


_collect = threading.local()

# Reducers registered in this process (``ember.util.register_serializer``): consulted before
# cloudpickle's own table, as the dispatch table of every pickler ``serialize`` makes.
_custom_reducers: dict[type, Callable[[Any], Any]] = {}


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    # One flat chain (cloudpickle's table is a ChainMap itself: nesting it cost every reduced
    # object a Python-level lookup more, a third more time on a value of many small objects).
    dispatch_table = ChainMap(
        _custom_reducers,
        *getattr(cloudpickle.Pickler.dispatch_table, "maps", [cloudpickle.Pickler.dispatch_table]),
    )


def register_reducer(cls: type, reducer: Callable[[Any], Any]) -> None:
    _custom_reducers[cls] = reducer


def unregister_reducer(cls: type) -> None:
    _custom_reducers.pop(cls, None)


@dataclass
class Serialized:
    meta: bytes
    buffers: list[memoryview]
    refs: list[list[bytes]] = field(default_factory=list)  # [object id, owner] of refs inside

    @property
    def nbytes(self) -> int:
        return len(self.meta) + sum(b.nbytes for b in self.buffers)

    def inline(self) -> bytes:
        if not self.buffers:
            return self.meta
        header, offsets, total = object_store.layout(
            len(self.meta), [b.nbytes for b in self.buffers]
        )
        out = bytearray(total + 1)
        out[0:1] = b"E"
        head = header + self.meta
        out[1 : 1 + len(head)] = head
        for buf, off in zip(self.buffers, offsets, strict=True):
            out[1 + off : 1 + off + buf.nbytes] = buf
        return bytes(out)


_PLAIN = frozenset({int, float, str, bytes, bool, type(None), complex})


def plain(value: Any, depth: int = 0) -> bool:
    """Builtin data only (no classes, functions or refs): the C pickler handles it alone,
    an order of magnitude faster than setting up a CloudPickler for a small argument tuple."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if depth > 2:
        return False
    if kind is tuple or kind is list:
        if len(value) > 32:
            return False
        for v in value:
            if type(v) not in _PLAIN and not plain(v, depth + 1):
                return False
        return True
    if kind is dict:
        if len(value) > 32:
            return False
        for k, v in value.items():
            if type(k) not in _PLAIN or (type(v) not in _PLAIN and not plain(v, depth + 1)):
                return False
        return True
    return False


def dump_plain(value: Any) -> bytes:
    """Pickle a value that ``plain()`` accepted; its inline form is the pickle itself."""
    return pickle.dumps(value, protocol=5)


def serialize(value: Any) -> Serialized:
    if plain(value):
        return Serialized(pickle.dumps(value, protocol=5), [])
    buffers: list[pickle.PickleBuffer] = []
    outer = getattr(_collect, "refs", None)
    refs: list[list[bytes]] = []
    _collect.refs = refs
    try:
        with io.BytesIO() as out:
            _Pickler(out, protocol=5, buffer_callback=buffers.append).dump(value)
            meta = out.getvalue()
    finally:
        _collect.refs = outer
    return Serialized(meta, [b.raw() for b in buffers], refs)


def note_ref(object_id: bytes, owner_id: bytes) -> None:
    """Called while pickling an ObjectRef, so the caller learns which refs a value holds."""
    refs = getattr(_collect, "refs", None)
    if refs is not None:
        refs.append([object_id, owner_id])


def dumps(value: Any) -> bytes:
    """Serialize a value that is known to be small (specs, errors) into inline form."""
    return serialize(value).inline()


def loads(data: bytes | memoryview) -> Any:
    if data[:1] == b"E":
        meta, buffers = object_store.parse(memoryview(data)[1:])
        return pickle.loads(meta, buffers=buffers)
    return pickle.loads(data)


def loads_stored(meta: memoryview, buffers: list[memoryview]) -> Any:
    return pickle.loads(meta, buffers=buffers)
