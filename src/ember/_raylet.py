"""Names at ``ray._raylet``, Ray's private module that its own documentation imports from
(``from ray._raylet import ObjectRefGenerator``): re-exports only."""

from ember._runtime.object_ref import ObjectRef
from ember._runtime.object_ref_generator import DynamicObjectRefGenerator, ObjectRefGenerator
from ember._runtime.unique_ids import ActorID, JobID, NodeID, PlacementGroupID, TaskID, WorkerID

StreamingObjectRefGenerator = ObjectRefGenerator  # the name before Ray 2.8

__all__ = [
    "ActorID",
    "DynamicObjectRefGenerator",
    "JobID",
    "NodeID",
    "ObjectRef",
    "ObjectRefGenerator",
    "PlacementGroupID",
    "StreamingObjectRefGenerator",
    "TaskID",
    "WorkerID",
]
