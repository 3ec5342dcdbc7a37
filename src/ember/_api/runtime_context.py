"""``ember.get_runtime_context()``: ids of the job, task, actor and node this code runs in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ember._api import runtime_env
from ember._api.runtime_env import RuntimeEnv
from ember._api.session import runtime
from ember._runtime import task_context

if TYPE_CHECKING:
    from ember._runtime.runtime import Runtime


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

    def get_actor_id(self) -> str | None:
        ctx = task_context.current.get()
        return ctx.actor_id.hex() if ctx is not None and ctx.actor_id else None

    def get_node_id(self) -> str:
        return self._rt.node_id.hex()

    def get_worker_id(self) -> str:
        return self._rt.client_id.hex()

    @property
    def namespace(self) -> str:
        ctx = task_context.current.get()
        return ctx.namespace if ctx is not None and ctx.namespace else self._rt.namespace

    def get_assigned_resources(self) -> dict[str, float]:
        ctx = task_context.current.get()
        if ctx is None or not ctx.resources:
            return {}
        return {k: float(v) for k, v in ctx.resources.items()}

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        ctx = task_context.current.get()
        return {"GPU": [str(i) for i in ctx.gpu_ids] if ctx is not None else []}

    @property
    def runtime_env(self) -> RuntimeEnv:
        """The runtime env this job, task or actor runs in (its references to uploaded
        packages in place of local paths)."""
        return runtime_env.current(self._rt)

    @property
    def job_id(self) -> str:
        return self.get_job_id()

    @property
    def task_id(self) -> str | None:
        return self.get_task_id()

    @property
    def actor_id(self) -> str | None:
        return self.get_actor_id()

    @property
    def node_id(self) -> str:
        return self.get_node_id()


def get_runtime_context() -> RuntimeContext:
    return RuntimeContext(runtime())
