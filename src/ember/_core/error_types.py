"""Ray's ``ErrorType`` names for how a task ended, by the class of the exception it ended
with: the task events' ``error_type``, which the state API and the dashboard show."""

from __future__ import annotations

from collections.abc import Iterable

# Ray's ``ErrorType`` names for the exceptions a task can end with, by class name (the
# first class of the error's MRO found here names it).
ERROR_TYPES = {
    "TaskCancelledError": "TASK_CANCELLED",
    "WorkerCrashedError": "WORKER_DIED",
    "OutOfMemoryError": "OUT_OF_MEMORY",
    "ActorDiedError": "ACTOR_DIED",
    "ActorUnavailableError": "ACTOR_UNAVAILABLE",
    "ObjectLostError": "OBJECT_UNRECONSTRUCTABLE",
    "TaskUnschedulableError": "TASK_UNSCHEDULABLE_ERROR",
    "ActorUnschedulableError": "ACTOR_UNSCHEDULABLE_ERROR",
    "RuntimeEnvSetupError": "RUNTIME_ENV_SETUP_FAILED",
    "TaskPlacementGroupRemoved": "TASK_PLACEMENT_GROUP_REMOVED",
    "ActorPlacementGroupRemoved": "ACTOR_PLACEMENT_GROUP_REMOVED",
    "LocalRayletDiedError": "LOCAL_RAYLET_DIED",
    "RayTaskError": "TASK_EXECUTION_EXCEPTION",
}


def error_type(class_names: Iterable[str], cause_names: Iterable[str] = ()) -> str:
    """Ray's error type for an error whose class (and base classes) are ``class_names``;
    a task's exception wrapping a cancel (``cause_names``) counts as cancelled, as in Ray."""
    names = list(class_names)
    if "RayTaskError" in names and "TaskCancelledError" in cause_names:
        return "TASK_CANCELLED"
    for name in names:
        found = ERROR_TYPES.get(name)
        if found is not None:
            return found
    return "TASK_EXECUTION_EXCEPTION"
