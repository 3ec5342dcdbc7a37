"""Where a task or actor may run: pass one of these as ``scheduling_strategy=``.

``PlacementGroupSchedulingStrategy`` runs work in a placement group's bundles
(``ember.util.placement_group``). The strings ``"DEFAULT"`` (run where there is room, this
node first) and ``"SPREAD"`` (take the nodes in turn) are strategies too.
"""

from __future__ import annotations

from dataclasses import dataclass

from ember._api.placement_group import PlacementGroupSchedulingStrategy


@dataclass(frozen=True)
class NodeAffinitySchedulingStrategy:
    """Run on the node with this id (``ember.get_runtime_context().get_node_id()``). With
    ``soft=False`` the work fails with ``TaskUnschedulableError`` if that node is gone; with
    ``soft=True`` it runs elsewhere instead."""

    node_id: str
    soft: bool = False


__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]
