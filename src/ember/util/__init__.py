"""Helpers beside the core API, under the names Ray gives them (``ray.util``).

``ember.util.multiprocessing`` (a ``multiprocessing.Pool`` over actors), ``ember.util.joblib``
(a joblib backend) and ``ember.util.queue`` are subpackages imported by name, as in Ray."""

from ember.util import accelerators, scheduling_strategies
from ember.util.actor_pool import ActorPool
from ember.util.check_serialize import inspect_serializability
from ember.util.helpers import as_completed, map_unordered
from ember.util.lookup import get_node_ip_address, list_named_actors
from ember.util.placement_group import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ember.util.progress_bar import progress
from ember.util.serialization import deregister_serializer, register_serializer

__all__ = [
    "ActorPool",
    "accelerators",
    "as_completed",
    "deregister_serializer",
    "get_current_placement_group",
    "get_node_ip_address",
    "get_placement_group",
    "inspect_serializability",
    "list_named_actors",
    "map_unordered",
    "placement_group",
    "placement_group_table",
    "progress",
    "register_serializer",
    "remove_placement_group",
    "scheduling_strategies",
]
