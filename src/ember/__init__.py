"""Ember: a small, fast distributed computing framework with Ray's API.

``import ember as ray`` runs Ray programs: ``@ray.remote`` functions and classes, ``ray.get``,
``ray.put``, ``ray.wait`` and friends. Importing starts nothing; ``ember.init()`` (or the first
remote call) starts a node on this machine.
"""

from ember import exceptions
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
from ember._runtime.object_ref import ObjectRef

ObjectID = ObjectRef  # the name used by Ray before 1.0

__version__ = "0.1.0"

__all__ = [
    "ActorClass",
    "ActorHandle",
    "ObjectID",
    "ObjectRef",
    "RemoteFunction",
    "RuntimeContext",
    "available_resources",
    "cancel",
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
    "wait",
]
