"""The core calls: get, put, wait, cancel, kill, get_actor and cluster information."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, Protocol, TypeVar, overload

from ember import exceptions
from ember._api.actor import ActorClass, ActorHandle
from ember._api.options import validate_actor_options, validate_task_options
from ember._api.remote_function import RemoteFunction
from ember._api.session import runtime
from ember._runtime import serialization, task_context
from ember._runtime.object_ref import ObjectRef
from ember._runtime.object_ref_generator import ObjectRefGenerator

_P = ParamSpec("_P")
_T = TypeVar("_T")
_C = TypeVar("_C")

if TYPE_CHECKING:

    class _Remote(Protocol):
        """What ``@remote(...)`` with options returns: the decorator."""

        @overload
        def __call__(self, target: type[_C], /) -> ActorClass[_C]: ...  # type: ignore[overload-overlap]
        @overload
        def __call__(  # type: ignore[overload-overlap]
            self, target: Callable[_P, Iterator[_T] | AsyncIterator[_T]], /
        ) -> RemoteFunction[_P, ObjectRefGenerator[_T]]: ...
        @overload
        def __call__(
            self, target: Callable[_P, Awaitable[_T]], /
        ) -> RemoteFunction[_P, ObjectRef[_T]]: ...
        @overload
        def __call__(self, target: Callable[_P, _T], /) -> RemoteFunction[_P, ObjectRef[_T]]: ...

    class _RemoteReturning(Protocol):
        """``@remote(num_returns=n)``: ``.remote()`` returns a list of refs (or None for 0)."""

        @overload
        def __call__(self, target: type[_C], /) -> ActorClass[_C]: ...  # type: ignore[overload-overlap]
        @overload
        def __call__(self, target: Callable[_P, Any], /) -> RemoteFunction[_P, Any]: ...


# A class is callable too; the first overload that fits wins, so classes are listed first.
@overload
def remote(target: type[_C], /) -> ActorClass[_C]: ...  # type: ignore[overload-overlap]
@overload
def remote(  # type: ignore[overload-overlap]
    target: Callable[_P, Iterator[_T] | AsyncIterator[_T]], /
) -> RemoteFunction[_P, ObjectRefGenerator[_T]]: ...
@overload
def remote(target: Callable[_P, Awaitable[_T]], /) -> RemoteFunction[_P, ObjectRef[_T]]: ...
@overload
def remote(target: Callable[_P, _T], /) -> RemoteFunction[_P, ObjectRef[_T]]: ...
@overload
def remote(*, num_returns: Literal[1] = ..., **options: Any) -> _Remote: ...
@overload
def remote(*, num_returns: int | str, **options: Any) -> _RemoteReturning: ...
def remote(*args: Any, **options: Any) -> Any:
    """Make a function a task (``f.remote()``) or a class an actor (``C.remote()``).

    Use as ``@ember.remote`` or with options, ``@ember.remote(num_cpus=2, num_returns=2)``.
    """
    if len(args) == 1 and not options and callable(args[0]):
        return _make(args[0], {})
    if args:
        raise TypeError(
            "@remote takes either a function or class alone, or keyword options only, "
            "e.g. @ember.remote(num_cpus=2)"
        )
    return lambda target: _make(target, options)


def _make(target: Any, options: dict[str, Any]) -> Any:
    if isinstance(target, type):
        checked = validate_actor_options(options, in_options=False)
        return ActorClass(target, checked)
    if callable(target):
        return RemoteFunction(target, validate_task_options(options, in_options=False))
    raise TypeError(f"@remote needs a function or a class, got {type(target).__name__}")


@overload
def get(refs: ObjectRef[_T], *, timeout: float | None = None) -> _T: ...
@overload
def get(refs: Sequence[ObjectRef[_T]], *, timeout: float | None = None) -> list[_T]: ...
def get(refs: Any, *, timeout: float | None = None) -> Any:
    """Wait for and return the value of a ref, or the values of a list of refs, in order."""
    if isinstance(refs, ObjectRef):
        _check_timeout(timeout)
        return runtime().get([refs], timeout)[0]
    if isinstance(refs, (list, tuple)) and all(isinstance(r, ObjectRef) for r in refs):
        _check_timeout(timeout)
        return runtime().get(list(refs), timeout) if refs else []
    # (Imported only now: it pulls in the channels, which plain refs never need.)
    from ember._api.compiled_dag import CompiledDAGRef

    if isinstance(refs, CompiledDAGRef):  # its timeout may be -1: wait without a limit
        return refs.get(timeout)
    if isinstance(refs, (list, tuple)) and isinstance(refs[0], CompiledDAGRef):
        if not all(isinstance(r, CompiledDAGRef) for r in refs):
            raise ValueError("get() takes CompiledDAGRefs or ObjectRefs, not both in one list")
        return [r.get(timeout) for r in refs]
    _check_timeout(timeout)
    if isinstance(refs, (list, tuple)):
        wrong = next(r for r in refs if not isinstance(r, ObjectRef))
        raise ValueError(
            f"get() expects an ObjectRef or a list of ObjectRefs; the list holds a "
            f"{type(wrong).__name__}"
        )
    if isinstance(refs, ObjectRefGenerator):
        raise ValueError(
            "get() of an ObjectRefGenerator is not supported: iterate it and get each item "
            "(for ref in gen: ember.get(ref)), or get gen.completed() to wait for its end."
        )
    raise ValueError(
        f"get() expects an ObjectRef or a list of ObjectRefs, got {type(refs).__name__}. "
        "If it is an actor handle, call a method: ember.get(actor.method.remote())."
    )


def put(value: _T, **_: Any) -> ObjectRef[_T]:
    """Store a value in the object store and return a ref to it."""
    if isinstance(value, ObjectRef):
        raise TypeError(
            "put() of an ObjectRef is not allowed; pass the ref itself, or put a container "
            "holding it, e.g. ember.put([ref])."
        )
    return runtime().put(value)


def wait(
    refs: Sequence[ObjectRef[_T]],
    *,
    num_returns: int = 1,
    timeout: float | None = None,
    fetch_local: bool = True,
) -> tuple[list[ObjectRef[_T]], list[ObjectRef[_T]]]:
    """Wait until ``num_returns`` refs are ready or ``timeout`` seconds pass.

    Returns (ready, not_ready), each in the order of ``refs``.
    """
    if isinstance(refs, ObjectRef) or not isinstance(refs, (list, tuple)):
        raise TypeError(
            f"wait() expects a list of ObjectRefs, got {type(refs).__name__}; "
            "wrap a single ref in a list."
        )
    _check_timeout(timeout)
    if not refs:
        return [], []
    if any(isinstance(r, ObjectRefGenerator) for r in refs):
        return _wait_generators(list(refs), num_returns, timeout, fetch_local)
    # The refs and num_returns are checked by the runtime (check_wait_args), which skips the
    # per-ref checks for the list the last wait() left: a wait() loop costs in proportion to
    # what becomes ready, not to the length of the list.
    return runtime().wait(list(refs), num_returns, timeout, fetch_local)


def _wait_generators(
    refs: list[Any], num_returns: int, timeout: float | None, fetch_local: bool
) -> tuple[list[Any], list[Any]]:
    """``wait`` on a list holding generators: each is ready when its ``next`` would not
    block (it stands in the list as the ref ``next`` waits on)."""
    stand_ins = [r._waitable() if isinstance(r, ObjectRefGenerator) else r for r in refs]
    back = {id(s): r for s, r in zip(stand_ins, refs, strict=True)}
    ready, rest = runtime().wait(stand_ins, num_returns, timeout, fetch_local)
    return [back[id(s)] for s in ready], [back[id(s)] for s in rest]


def cancel(
    ref: ObjectRef[Any] | ObjectRefGenerator[Any], *, force: bool = False, recursive: bool = True
) -> None:
    """Cancel the task that makes ``ref`` (or a generator's); its ``get`` raises
    TaskCancelledError."""
    if isinstance(ref, ObjectRefGenerator):
        ref = ref.completed()
    if not isinstance(ref, ObjectRef):
        raise TypeError(f"cancel() expects an ObjectRef, got {type(ref).__name__}")
    runtime().cancel(ref, force, recursive)


def kill(actor: ActorHandle[Any], *, no_restart: bool = True) -> None:
    """End an actor's process now; pending calls fail with ActorDiedError."""
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"kill() expects an actor handle, got {type(actor).__name__}")
    rt = runtime()
    if actor._rt is not None and actor._rt is not rt:  # as Ray, which no longer knows it
        raise exceptions.ActorHandleNotFoundError(
            f"kill() was given a handle of actor {actor._meta['class_name']} "
            f"{actor._actor_id.hex()} from an earlier session (before shutdown() and "
            "init()); that actor ended with its session."
        )
    rt.kill_actor(actor._actor_id, no_restart, actor._meta["class_name"])


def get_actor(name: str, namespace: str | None = None) -> ActorHandle[Any]:
    """The handle of a named actor (in this job's namespace unless one is given)."""
    if not isinstance(name, str) or not name:
        raise ValueError("get_actor() needs a non-empty actor name")
    rt = runtime()
    try:
        actor_id, meta, holders_at = rt.actor_handle_meta(name, namespace)
    except Exception as e:  # the lookup's own message says what went wrong
        raise ValueError(str(e)) from None
    return ActorHandle(actor_id, serialization.loads(meta), holders_at, rt)


def get_gpu_ids() -> list[int]:
    """The GPU ids assigned to the current task or actor ([] in the driver)."""
    ctx = task_context.current.get()
    if ctx is not None:
        return list(ctx.gpu_ids)
    return []


def _sum(key: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for node in runtime().cluster_info()["nodes"]:
        if node["alive"]:
            for name, amount in node.get(key, {}).items():
                out[name] = out.get(name, 0) + amount
    return out


def cluster_resources() -> dict[str, float]:
    return _sum("total")


def available_resources() -> dict[str, float]:
    return _sum("available")


def nodes() -> list[dict[str, Any]]:
    """The cluster's nodes, with Ray's fields in Ray's order. Ember serves tasks, objects and
    transfers on one node-manager socket, so both ports are its TCP port (-1 on a single
    machine, where it listens on a local socket only); the metrics, dashboard and runtime-env
    agents it lacks get Ray's "none", -1."""
    return [_node_entry(node) for node in runtime().cluster_info()["nodes"]]


# Ray's NodeDeathInfo reasons: a live node has none; Ember cannot yet tell a node that was
# stopped from one that failed, so every dead node is an unexpected termination.
_DEATH_UNSPECIFIED = 0
_DEATH_UNEXPECTED_TERMINATION = 2


def _node_entry(node: dict[str, Any]) -> dict[str, Any]:
    address: str = node["address"]
    host, _, port = address.removeprefix("tcp:").rpartition(":")
    tcp_port = int(port) if host and port.isdigit() else -1
    alive: bool = node["alive"]
    return {
        "NodeID": node["node_id"].hex(),
        "Alive": alive,
        "NodeManagerAddress": node["host"],
        "NodeManagerHostname": os.uname().nodename if node["host"] == "127.0.0.1" else node["host"],
        "NodeManagerPort": tcp_port,
        "ObjectManagerPort": tcp_port,
        "ObjectStoreSocketName": address,
        "RayletSocketName": node.get("local_address", address),
        "MetricsExportPort": -1,
        "MetricsAgentPort": -1,
        "DashboardAgentListenPort": -1,
        "NodeName": node["host"],
        "RuntimeEnvAgentPort": -1,
        "DeathReason": _DEATH_UNSPECIFIED if alive else _DEATH_UNEXPECTED_TERMINATION,
        "DeathReasonMessage": "" if alive else node.get("death_reason", ""),
        "alive": alive,
        "Resources": dict(node["total"]),
        "Labels": dict(node.get("labels") or {}),
    }


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout}")


__all__ = [
    "remote",
    "get",
    "put",
    "wait",
    "cancel",
    "kill",
    "get_actor",
    "get_gpu_ids",
    "cluster_resources",
    "available_resources",
    "nodes",
    "exceptions",
]
