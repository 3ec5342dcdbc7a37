"""Placement groups: bundles of resources reserved together, at Ray's names
(``ray.util.placement_group``). ``placement_group([{"CPU": 1}] * 2, strategy="SPREAD")``
reserves; tasks and actors run in it with ``PlacementGroupSchedulingStrategy``."""

from ember._api.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ember._runtime.unique_ids import PlacementGroupID

__all__ = [
    "PlacementGroup",
    "PlacementGroupID",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]
