"""The public id classes (``ember.ActorID``, ``NodeID``, ``JobID``, ``TaskID``, ``WorkerID``,
``PlacementGroupID``), as Ray has them at ``ray._raylet``.

The runtime passes ids as raw bytes; these wrap them for users, who see them from
``ObjectRef.task_id()``, the runtime context's properties and placement groups, or build them
from ``hex()`` strings sent out of band. Each class has Ember's own length (``size()``); a nil
id is all 0xff bytes, as in Ray.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from ember._protocol import ids

_Id = TypeVar("_Id", bound="BaseID")


def check_binary(cls_name: str, size: int, binary: object) -> bytes:
    """``binary`` as an id of ``size`` bytes, or Ray's TypeError/ValueError naming the fault."""
    if not isinstance(binary, bytes):
        raise TypeError(f"Unsupported type: {type(binary)}, expected bytes for a {cls_name}")
    if len(binary) != size:
        raise ValueError(
            f"ID string needs to have length {size}, got {len(binary)} (building a {cls_name})"
        )
    return binary


def unhex(cls_name: str, hex_id: str) -> bytes:
    try:
        return bytes.fromhex(hex_id)
    except (TypeError, ValueError):
        raise ValueError(f"{cls_name}.from_hex() expects a hex string, got {hex_id!r}") from None


class BaseID:
    """An id: ``binary()``, ``hex()``, ``is_nil()``; built from ``from_binary``/``from_hex``
    or as ``nil()``. Equal ids of the same class hash alike."""

    __slots__ = ("_binary",)
    SIZE: ClassVar[int]

    def __init__(self, binary: bytes) -> None:
        self._binary = check_binary(type(self).__name__, self.SIZE, binary)

    @classmethod
    def size(cls) -> int:
        return cls.SIZE

    @classmethod
    def from_binary(cls: type[_Id], binary: bytes) -> _Id:
        return cls(binary)

    @classmethod
    def from_hex(cls: type[_Id], hex_id: str) -> _Id:
        return cls(unhex(cls.__name__, hex_id))

    @classmethod
    def nil(cls: type[_Id]) -> _Id:
        return cls(b"\xff" * cls.SIZE)

    def binary(self) -> bytes:
        return self._binary

    def hex(self) -> str:
        return self._binary.hex()

    def is_nil(self) -> bool:
        return self._binary == b"\xff" * self.SIZE

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._binary == self._binary

    def __hash__(self) -> int:
        return hash(self._binary)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.hex()})"

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return type(self), (self._binary,)


class JobID(BaseID):
    __slots__ = ()
    SIZE = 4

    @classmethod
    def from_int(cls, value: int) -> JobID:
        """The job numbered ``value`` (little-endian, as Ray numbers its jobs)."""
        return cls(value.to_bytes(cls.SIZE, "little"))

    def int(self) -> int:
        return int.from_bytes(self._binary, "little")


class TaskID(BaseID):
    __slots__ = ()
    SIZE = ids.TASK_ID_LEN


class ActorID(BaseID):
    __slots__ = ()
    SIZE = ids.ACTOR_ID_LEN


class NodeID(BaseID):
    __slots__ = ()
    SIZE = 16  # the launcher draws a node's id at random: ids.random_id(16)


class WorkerID(BaseID):
    __slots__ = ()
    SIZE = ids.UNIQUE_ID_LEN  # a process's client id: its node's tag and 8 random bytes


class PlacementGroupID(BaseID):
    __slots__ = ()
    SIZE = 18  # as Ray's


__all__ = ["ActorID", "BaseID", "JobID", "NodeID", "PlacementGroupID", "TaskID", "WorkerID"]
