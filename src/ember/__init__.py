"""Ember: a small, fast distributed computing framework with Ray's API.

``import ember as ray`` runs Ray programs: ``@ray.remote`` functions and classes, ``ray.get``,
``ray.put``, ``ray.wait`` and friends. Importing starts nothing, and the public names load on
first use, so processes that need only the runtime (the node manager, workers) do not pay for
the API layer; ``ember.init()`` (or the first remote call) starts a node on this machine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ember import cloudpickle, exceptions
    from ember._api.actor import ActorClass, ActorHandle, method
    from ember._api.api import (
        available_resources,
        cancel,
        cluster_resources,
        get,
        get_actor,
        get_gpu_ids,
        kill,
        nodes,
        put,
        remote,
        wait,
    )
    from ember._api.remote_function import RemoteFunction
    from ember._api.runtime_context import RuntimeContext, get_runtime_context
    from ember._api.session import init, is_initialized, shutdown
    from ember._api.timeline import timeline
    from ember._runtime.object_ref import ObjectRef
    from ember._runtime.object_ref_generator import DynamicObjectRefGenerator, ObjectRefGenerator
    from ember._runtime.unique_ids import (
        ActorID,
        JobID,
        NodeID,
        PlacementGroupID,
        TaskID,
        WorkerID,
    )

    ObjectID = ObjectRef

__version__ = "0.1.0"

_WHERE = {
    "ActorClass": "ember._api.actor",
    "ActorHandle": "ember._api.actor",
    "method": "ember._api.actor",
    "available_resources": "ember._api.api",
    "cancel": "ember._api.api",
    "cluster_resources": "ember._api.api",
    "get": "ember._api.api",
    "get_actor": "ember._api.api",
    "get_gpu_ids": "ember._api.api",
    "kill": "ember._api.api",
    "nodes": "ember._api.api",
    "put": "ember._api.api",
    "remote": "ember._api.api",
    "wait": "ember._api.api",
    "RemoteFunction": "ember._api.remote_function",
    "RuntimeContext": "ember._api.runtime_context",
    "get_runtime_context": "ember._api.runtime_context",
    "init": "ember._api.session",
    "is_initialized": "ember._api.session",
    "shutdown": "ember._api.session",
    "timeline": "ember._api.timeline",
    "ObjectRef": "ember._runtime.object_ref",
    "ObjectRefGenerator": "ember._runtime.object_ref_generator",
    "DynamicObjectRefGenerator": "ember._runtime.object_ref_generator",
    "ActorID": "ember._runtime.unique_ids",
    "JobID": "ember._runtime.unique_ids",
    "NodeID": "ember._runtime.unique_ids",
    "PlacementGroupID": "ember._runtime.unique_ids",
    "TaskID": "ember._runtime.unique_ids",
    "WorkerID": "ember._runtime.unique_ids",
}

__all__ = [
    "ActorClass",
    "ActorHandle",
    "ActorID",
    "DynamicObjectRefGenerator",
    "JobID",
    "NodeID",
    "ObjectID",
    "ObjectRef",
    "ObjectRefGenerator",
    "PlacementGroupID",
    "RemoteFunction",
    "RuntimeContext",
    "TaskID",
    "WorkerID",
    "available_resources",
    "cancel",
    "cloudpickle",
    "cluster_resources",
    "exceptions",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "timeline",
    "wait",
]


# Submodules reachable as attributes after ``import ember`` (``ray.tune``, ``ray.util``).
_SUBMODULES = (
    "actor",
    "cloudpickle",
    "dag",
    "exceptions",
    "experimental",
    "runtime_env",
    "tune",
    "util",
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"ember.{name}")
    if name == "ObjectID":  # the name used by Ray before 1.0
        name = "ObjectRef"
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ember' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
