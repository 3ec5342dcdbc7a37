"""ObjectRef: a future for a value that lives (or will live) somewhere in Ember.

A ref knows its object's id and its owner (the process that submitted the task or called
``put``). Creating and dropping refs tells the runtime, which counts them per process so that
the value is freed when the last ref anywhere is gone. Pickling a ref (to send it to another
process) tells the runtime that the object is now shared.

``ObjectRef(binary)`` and ``ObjectRef.from_hex`` rebuild a ref from an id sent out of band, as
in Ray, with Ray's warning: such a ref is not counted and knows no owner, so it finds its value
only while the value is on this node and some counted ref still keeps it alive.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ember._protocol import ids
from ember._runtime import serialization, state, task_context
from ember._runtime.unique_ids import JobID, TaskID, check_binary, unhex

if TYPE_CHECKING:
    import asyncio

    from ember._runtime.runtime import Runtime

_T_co = TypeVar("_T_co", covariant=True)


class ObjectRef(Generic[_T_co]):
    """``ObjectRef[T]``: a ref to a value of type T (``get`` returns a T)."""

    __slots__ = ("_id", "_owner", "_rt", "__weakref__")

    def __init__(
        self, object_id: bytes, owner_id: bytes = b"", runtime: Runtime | None = None
    ) -> None:
        self._id = object_id
        self._owner = owner_id
        self._rt = runtime
        if runtime is not None:
            runtime.add_local_ref(object_id, owner_id)
        else:  # built by a user (or unpickled with no runtime): not on the hot path
            check_binary("ObjectRef", ids.OBJECT_ID_LEN, object_id)

    @classmethod
    def size(cls) -> int:
        return ids.OBJECT_ID_LEN

    @classmethod
    def from_binary(cls, binary: bytes) -> ObjectRef[Any]:
        return cls(binary)

    @classmethod
    def from_hex(cls, hex_id: str) -> ObjectRef[Any]:
        return cls(unhex("ObjectRef", hex_id))

    @classmethod
    def nil(cls) -> ObjectRef[Any]:
        return cls(_NIL)

    def is_nil(self) -> bool:
        return self._id == _NIL

    def __del__(self) -> None:
        try:
            rt = self._rt
            if rt is not None:
                rt.remove_local_ref(self._id)
        except Exception:  # interpreter teardown, or a call with wrong arguments (no _rt)
            pass

    def __reduce__(self) -> tuple[Any, tuple[bytes, bytes]]:
        serialization.note_ref(self._id, self._owner)
        if self._rt is not None:
            self._rt.ref_serialized(self._id, self._owner)
        return _rebuild, (self._id, self._owner)

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def task_id(self) -> TaskID:
        """The task that returns this object (for ``put``, the id of the put)."""
        return TaskID(ids.task_of(self._id))

    def job_id(self) -> JobID:
        """The job of this process: Ember's object ids do not carry their job, and a ref's
        object belongs to the job that made it, which is this one unless the ref was passed
        across jobs (through a named actor)."""
        ctx = task_context.current.get()
        job = ctx.job_id if ctx is not None and ctx.job_id else _runtime_of(self).job_id
        return JobID(job)

    def owner_address(self) -> bytes:
        """Who owns the object, as bytes (Ray's are a serialized address; Ember's, the owner's
        process id); empty for a ref built from an id, whose owner is unknown."""
        return self._owner

    def __hash__(self) -> int:
        return hash(self._id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def future(self) -> concurrent.futures.Future[_T_co]:
        """A concurrent.futures.Future that completes with the value (or its error)."""
        return _runtime_of(self).future_of(self)

    def __await__(self) -> Generator[Any, None, _T_co]:
        return self.as_future().__await__()

    def as_future(self) -> asyncio.Future[_T_co]:
        """An asyncio future for the value; asyncio is imported only by code that awaits."""
        import asyncio

        return asyncio.wrap_future(self.future())


_NIL = b"\xff" * ids.OBJECT_ID_LEN


def _runtime_of(ref: ObjectRef[Any]) -> Runtime:
    rt = ref._rt or state.current()
    if rt is None:
        raise RuntimeError("Ember is not running: call ember.init() first")
    return rt


def check_wait_args(refs: list[Any], num_returns: Any, known: bool) -> None:
    """Ray's checks of a non-empty ``wait()`` list and of ``num_returns``, in Ray's order.
    ``known``: ``refs`` is what the last wait returned as not ready, checked then."""
    if not known:
        for r in refs:
            if not isinstance(r, ObjectRef):
                raise TypeError(
                    f"wait() expects a list of ObjectRefs; it holds a {type(r).__name__}"
                )
        if len({r._id for r in refs}) != len(refs):
            raise ValueError("wait() requires a list of unique ObjectRefs.")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns < 1:
        raise ValueError(f"num_returns must be a positive integer, got {num_returns!r}")
    if num_returns > len(refs):
        raise ValueError(
            f"num_returns={num_returns} is more than the {len(refs)} refs given to wait()"
        )


def _rebuild(object_id: bytes, owner_id: bytes) -> ObjectRef[Any]:
    return ObjectRef(object_id, owner_id, state.current())
