"""What the running task is, for ``get_runtime_context()``, log prefixes and blocking.

A ContextVar rather than a thread-local: threads each see their own task, and so do the
asyncio tasks of an async actor.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


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
