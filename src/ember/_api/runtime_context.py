"""``ember.get_runtime_context()``: ids of the job, task, actor and node this code runs in.

As in Ray, what only a worker has (a task's name, the current actor) is None in the driver,
with a warning, or raises where Ray raises.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ember._api import runtime_env
from ember._api.runtime_env import RuntimeEnv
from ember._api.session import runtime
from ember._runtime import serialization, task_context
from ember._runtime.unique_ids import ActorID, JobID, NodeID, PlacementGroupID, TaskID

if TYPE_CHECKING:
    from ember._api.actor import ActorHandle
    from ember._runtime.runtime import Runtime

_log = logging.getLogger(__name__)


def _in_worker(what: str) -> task_context.TaskContext | None:
    """The running task's context; None (with Ray's warning) in the driver."""
    ctx = task_context.current.get()
    if ctx is None:
        _log.warning("%s is only available in a task or an actor, not in the driver.", what)
    return ctx


def _short(qualname: str) -> str:
    """``Counter`` for a class defined as ``test_x.<locals>.Counter``."""
    return qualname.rpartition("<locals>.")[2]


class RuntimeContext:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def get_job_id(self) -> str:
        ctx = task_context.current.get()
        job = ctx.job_id if ctx is not None and ctx.job_id else self._rt.job_id
        return job.hex()

    def get_task_id(self) -> str | None:
        ctx = task_context.current.get()
        return ctx.task_id.hex() if ctx is not None else None

    def get_task_name(self) -> str | None:
        """The task's name (its ``name`` option, else its function's), or
        ``Class.method`` for an actor call; None in the driver."""
        ctx = _in_worker("get_task_name()")
        if ctx is None:
            return None
        actor = task_context.actor
        if ctx.actor_id and actor is not None:
            if ctx.name == actor.class_name:  # (the constructor's context)
                return f"{_short(actor.class_name)}.__init__"
            return f"{_short(actor.class_name)}.{ctx.name}"
        return _short(ctx.name)

    def get_task_function_name(self) -> str | None:
        """The qualified name of the function (or method) the task runs:
        ``module.function`` or ``module.Class.method``; None in the driver."""
        ctx = _in_worker("get_task_function_name()")
        if ctx is None:
            return None
        fn = getattr(ctx.function, "__func__", ctx.function)
        if fn is None:
            return None
        module = getattr(fn, "__module__", None) or ""
        name = _short(getattr(fn, "__qualname__", "") or repr(fn))
        return f"{module}.{name}" if module else name

    def get_actor_id(self) -> str | None:
        ctx = task_context.current.get()
        return ctx.actor_id.hex() if ctx is not None and ctx.actor_id else None

    def get_actor_name(self) -> str | None:
        """The current actor's name ("" when it has none); None outside an actor."""
        if _in_worker("get_actor_name()") is None:
            return None
        actor = task_context.actor
        return actor.name if actor is not None else None

    @property
    def current_actor(self) -> ActorHandle[Any]:
        """A handle to the actor this code runs in."""
        from ember._api.actor import ActorHandle

        actor = task_context.actor
        if actor is None:
            raise RuntimeError("current_actor is only available in an actor.")
        meta = serialization.loads(actor.handle_meta)
        return ActorHandle(actor.actor_id, meta, actor.owner_id, self._rt)

    @property
    def was_current_actor_reconstructed(self) -> bool:
        """Whether this actor has been restarted (its process is not its first)."""
        actor = task_context.actor
        if actor is None:
            raise RuntimeError("was_current_actor_reconstructed is only available in an actor.")
        return actor.incarnation > 0

    def is_canceled(self) -> bool:
        """Whether the running task was cancelled (for code that checks now and then)."""
        ctx = task_context.current.get()
        if ctx is None:
            raise RuntimeError(
                "is_canceled() is only available in a task or an actor, not in the driver."
            )
        actor = task_context.actor
        if actor is not None and actor.is_async:
            raise RuntimeError("is_canceled() is not supported in an async actor.")
        return ctx.cancelled

    def get_node_id(self) -> str:
        return self._rt.node_id.hex()

    def get_node_labels(self) -> dict[str, str]:
        """The labels of the node this code runs on ({} for a node without any)."""
        return dict(self._rt.this_node()["labels"] or {})

    def get_worker_id(self) -> str:
        return self._rt.client_id.hex()

    @property
    def namespace(self) -> str:
        ctx = task_context.current.get()
        return ctx.namespace if ctx is not None and ctx.namespace else self._rt.namespace

    def get_placement_group_id(self) -> str | None:
        """The hex id of the placement group this task or actor runs in, if any."""
        from ember._api.placement_group import current_group_hex

        return current_group_hex()

    def get_assigned_resources(self) -> dict[str, float]:
        ctx = task_context.current.get()
        if ctx is None or not ctx.resources:
            return {}
        return {k: float(v) for k, v in ctx.resources.items()}

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        ctx = task_context.current.get()
        return {"GPU": [str(i) for i in ctx.gpu_ids] if ctx is not None else []}

    def get_resource_ids(self) -> dict[str, list[str]]:
        """Deprecated in Ray in favour of ``get_accelerator_ids()``, which it returns."""
        warnings.warn(
            "get_resource_ids() is deprecated; use get_accelerator_ids() instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.get_accelerator_ids()

    @property
    def runtime_env(self) -> RuntimeEnv:
        """The runtime env this job, task or actor runs in (its references to uploaded
        packages in place of local paths)."""
        return runtime_env.current(self._rt)

    # Ray's older properties give id objects where the getters give hex strings; deprecated
    # there in favour of the getters, and here too.
    @property
    def job_id(self) -> JobID:
        return JobID.from_hex(_deprecated(self.get_job_id, "job_id"))

    @property
    def task_id(self) -> TaskID | None:
        task = _deprecated(self.get_task_id, "task_id")
        return None if task is None else TaskID.from_hex(task)

    @property
    def actor_id(self) -> ActorID | None:
        actor = _deprecated(self.get_actor_id, "actor_id")
        return None if actor is None else ActorID.from_hex(actor)

    @property
    def node_id(self) -> NodeID:
        return NodeID.from_hex(_deprecated(self.get_node_id, "node_id"))

    @property
    def current_placement_group_id(self) -> PlacementGroupID:
        """The group this task or actor runs in; a nil id outside any."""
        group = _deprecated(self.get_placement_group_id, "current_placement_group_id")
        return PlacementGroupID.nil() if group is None else PlacementGroupID.from_hex(group)


_T = TypeVar("_T")


def _deprecated(getter: Callable[[], _T], name: str) -> _T:
    warnings.warn(
        f"RuntimeContext.{name} is deprecated: use {getter.__name__}() instead",
        DeprecationWarning,
        stacklevel=3,
    )
    return getter()


def get_runtime_context() -> RuntimeContext:
    return RuntimeContext(runtime())
