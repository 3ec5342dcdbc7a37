"""Helpers beside the core API, under the names Ray gives them (``ray.util``).

``ember.util.multiprocessing`` (a ``multiprocessing.Pool`` over actors), ``ember.util.joblib``
(a joblib backend) and ``ember.util.queue`` are subpackages imported by name, as in Ray."""

from ember.util import accelerators
from ember.util.actor_pool import ActorPool
from ember.util.check_serialize import inspect_serializability
from ember.util.helpers import as_completed, map_unordered
from ember.util.lookup import get_node_ip_address, list_named_actors
from ember.util.serialization import deregister_serializer, register_serializer

__all__ = [
    "ActorPool",
    "accelerators",
    "as_completed",
    "deregister_serializer",
    "get_node_ip_address",
    "inspect_serializability",
    "list_named_actors",
    "map_unordered",
    "register_serializer",
]
