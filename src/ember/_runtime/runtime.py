"""The Runtime protocol: what the API layer asks of the runtime this process is connected to.

Two classes satisfy it, structurally: the cluster client (``core_client.CoreClient``, in every
driver and worker) and local mode (``local.LocalRuntime``). ``state.current()`` returns one of
them. Only type checkers import this module; at run time nothing needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from ember._core.resources import Shape
from ember._protocol import messages as m
from ember._runtime.object_ref import ObjectRef


class Runtime(Protocol):
    client_id: bytes  # this process's id: the owner of what it puts and submits
    job_id: bytes
    node_id: bytes
    namespace: str
    # The runtime env (canonical text) of this process's work: the job's for a driver, its
    # own for a worker; what a task or actor it starts inherits.
    runtime_env: str

    def close(self) -> None: ...

    # Reference counting: ObjectRefs and actor handles report their lives here.
    def add_local_ref(self, object_id: bytes, owner_id: bytes) -> None: ...
    def remove_local_ref(self, object_id: bytes) -> None: ...
    def ref_serialized(self, object_id: bytes, owner_id: bytes) -> None: ...
    def add_actor_ref(self, actor_id: bytes, owner_id: bytes) -> None: ...
    def actor_ref_serialized(self, actor_id: bytes) -> None: ...

    # Objects.
    def put(self, value: Any) -> ObjectRef[Any]: ...
    def get(self, refs: list[ObjectRef[Any]], timeout: float | None = None) -> list[Any]: ...
    def wait(
        self, refs: list[ObjectRef[Any]], num_returns: int, timeout: float | None, fetch_local: bool
    ) -> tuple[list[ObjectRef[Any]], list[ObjectRef[Any]]]: ...
    def future_of(self, ref: ObjectRef[Any]) -> Future[Any]: ...

    # Tasks. ``data`` gives the pickled function, made only if the runtime needs it.
    def export_function(self, fn_id: bytes, data: Callable[[], bytes], obj: Any = None) -> None: ...
    def submit_task(
        self,
        fn_id: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        num_returns: int,
        name: str,
        shape: Shape,
        max_retries: int,
        retry_exceptions: Any,
        strategy: Any = None,
        capture_child_tasks: bool = False,
        runtime_env: str = "",
        enable_task_events: bool = True,
        backpressure: int = -1,
    ) -> list[ObjectRef[Any]]: ...
    def cancel(self, ref: ObjectRef[Any], force: bool, recursive: bool = True) -> None: ...

    # Generator tasks (num_returns < 0): their items, by the task's own ref
    # (``ObjectRefGenerator``): the next one (None when over), what ``next`` would return or
    # wait on (None when over), and the caller's generator is gone.
    def stream_next(self, ref: ObjectRef[Any], timeout: float | None) -> ObjectRef[Any] | None: ...
    def stream_peek(self, ref: ObjectRef[Any]) -> ObjectRef[Any] | None: ...
    def stream_drop(self, ref: ObjectRef[Any]) -> None: ...

    # Actors.
    def create_actor(
        self,
        fn_id: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        class_name: str,
        shape: Shape,
        options: dict[str, Any],
        handle_meta: bytes,
        runtime_env: str = "",
        capture_child_tasks: bool = False,
    ) -> tuple[bytes, bool]: ...
    def submit_actor_task(
        self,
        actor_id: bytes,
        class_name: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        num_returns: int,
        max_task_retries: int,
        retry_exceptions: Any,
        max_pending_calls: int = -1,
        enable_task_events: bool = True,
        backpressure: int = -1,
        concurrency_group: str = "",
    ) -> list[ObjectRef[Any]]: ...
    def kill_actor(self, actor_id: bytes, no_restart: bool, class_name: str = "") -> None: ...
    def actor_handle_meta(self, name: str, namespace: str | None) -> tuple[bytes, bytes, bytes]: ...
    # [{"name", "namespace"}] of the live named actors, in this job's namespace unless ``all``.
    def named_actors(self, all_namespaces: bool) -> list[m.NamedActorEntry]: ...

    # The cluster: {"nodes": [{"node_id", "host", "address", "total", "available", "alive"}]}.
    def cluster_info(self) -> dict[str, Any]: ...
    # This process's node as the cluster table has it ({"node_id", "host", "local_address",
    # "labels"}), known since it connected: no round trip.
    def this_node(self) -> dict[str, Any]: ...
