"""What the running task is, for ``get_runtime_context()``, log prefixes and blocking.

A ContextVar rather than a thread-local: threads each see their own task, and so do the
asyncio tasks of an async actor.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field


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
    capture_child_tasks: bool = False  # (see PlacementGroupSchedulingStrategy)


current: ContextVar[TaskContext | None] = ContextVar("ember_task", default=None)
