"""What the running task is, for ``get_runtime_context()``, log prefixes and blocking.

A ContextVar rather than a thread-local: threads each see their own task, and so do the
asyncio tasks of an async actor.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ember._protocol.messages import PushTask


@dataclass
class TaskContext:
    task_id: bytes
    name: str
    job_id: bytes
    namespace: str
    lease_id: int = 0
    actor_id: bytes = b""
    gpu_ids: list[int] = field(default_factory=list)
    resources: dict[str, float] | None = None
    cancelled: bool = False
    forced: bool = False  # cancelled with force=True: its process is being ended
    capture_child_tasks: bool = False  # (see PlacementGroupSchedulingStrategy)
    function: Any = None  # what runs, once known (for its qualified name)


def of_push(
    msg: PushTask,
    gpu_ids: list[int] | None = None,
    resources: dict[str, float] | None = None,
    captures: bool = False,
) -> TaskContext:
    """The context of a pushed task or actor call; an actor's calls fall back to what the
    actor holds (its GPUs, resources and whether it captures child tasks)."""
    return TaskContext(
        msg.task_id,
        msg.name,
        msg.job_id,
        msg.namespace,
        msg.lease_id,
        msg.actor_id,
        list(msg.gpu_ids) or list(gpu_ids or ()),
        msg.resources or resources,
        capture_child_tasks=msg.capture_child_tasks or captures,
    )


current: ContextVar[TaskContext | None] = ContextVar("ember_task", default=None)


@dataclass
class HostedActor:
    """The actor this worker process hosts, for ``get_runtime_context()``."""

    actor_id: bytes
    class_name: str
    name: str  # the name it was registered under, "" for none
    handle_meta: bytes  # to make a handle to itself
    owner_id: bytes  # its creator, where such a handle is counted
    incarnation: int  # 0 until it is restarted
    is_async: bool


actor: HostedActor | None = None  # set by the worker when it becomes an actor


class ActorExit(SystemExit):
    """Raised by ``exit_actor()`` in a sync actor's method: the worker then ends the actor
    on purpose (a SystemExit, so that the user's ``except Exception`` lets it through)."""
