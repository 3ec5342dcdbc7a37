"""Which node a lease request should go to: the bottom-up choice of the seeds' scheduler.

A node keeps requests while it has room for them (or could never send them anywhere better);
otherwise it *spills* them to a node that has room now, as last reported in the cluster view,
and lowers that node's reported room so that a burst of requests spreads out instead of piling
onto one node before its next report. Strategies from the caller change the choice:
``"SPREAD"`` takes the nodes in turn, ``["node", id, soft]`` pins work to a node (or prefers
it, when soft), and ``["locality", id]`` sends work to the node holding the task's large
arguments whenever that node could run it. A label selector (``_core/labels.py``) wraps any
of these as ``["labels", selector, strategy]``: only nodes whose labels match it count.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ember._core.labels import Selector, matches
from ember._core.resources import NodeResources, Shape, to_units
from ember._protocol.records import record


def split_labels(strategy: Any) -> tuple[Selector, Any]:
    """A strategy from the wire as (label selector, the strategy it wraps)."""
    if isinstance(strategy, (list, tuple)) and strategy and strategy[0] == "labels":
        selector = tuple((k, bool(neg), tuple(values)) for k, neg, values in strategy[1])
        return selector, strategy[2]
    return (), strategy


def pinned(strategy: Any) -> bool:
    """Whether a request must stay on the node it was placed on (hard node affinity); any
    other request queued on a node may spill later to a node with room, after a new cluster
    view (``LeaseScheduler.view_changed``)."""
    strategy = split_labels(strategy)[1]
    return (
        isinstance(strategy, (list, tuple))
        and bool(strategy)
        and strategy[0] == "node"
        and not strategy[2]
    )


@dataclass
class PeerView:
    node_id: bytes
    total: dict[str, int]
    available: dict[str, int]
    labels: dict[str, str]

    def feasible(self, shape: Shape, selector: Selector = ()) -> bool:
        return all(self.total.get(k, 0) >= v for k, v in shape) and matches(selector, self.labels)

    def fits(self, shape: Shape, selector: Selector = ()) -> bool:
        return all(self.available.get(k, 0) >= v for k, v in shape) and matches(
            selector, self.labels
        )

    def take(self, shape: Shape) -> None:
        for k, v in shape:
            self.available[k] = self.available.get(k, 0) - v


@record
class Unschedulable:
    message: str


HERE = None  # the choice "keep it on this node"


def strategy_on_wire(value: Any, selector: Selector = ()) -> Any:
    """A scheduling strategy as the node understands it: None, "SPREAD" or
    ["node", node id, soft], wrapped with a label selector if there is one. Work in a
    placement group goes as None: its resource request, rewritten into its bundles
    (``_core/placement_groups.demand``), is what places it."""
    if selector:
        return ["labels", [list(c) for c in selector], strategy_on_wire(value)]
    if value == "SPREAD":
        return "SPREAD"
    node_id = getattr(value, "node_id", None)
    if isinstance(node_id, str):
        try:
            raw = bytes.fromhex(node_id)
        except ValueError:
            raise ValueError(
                f"NodeAffinitySchedulingStrategy(node_id={node_id!r}): a node id is the hex "
                "string that ember.get_runtime_context().get_node_id() or ember.nodes() gives."
            ) from None
        return ["node", raw, bool(getattr(value, "soft", False))]
    return None


class Placement:
    def __init__(self, local_id: bytes, labels: dict[str, str] | None = None) -> None:
        self.local_id = local_id
        self.labels = labels or {}
        self.peers: dict[bytes, PeerView] = {}
        self._turn = itertools.count()

    def update(self, view: Iterable[Mapping[str, Any]]) -> None:
        """A new cluster view (the control store's node table, amounts as floats)."""
        self.peers = {
            n["node_id"]: PeerView(
                n["node_id"],
                {k: to_units(v) for k, v in n["total"].items()},
                {k: to_units(v) for k, v in n["available"].items()},
                n.get("labels") or {},
            )
            for n in view
            if n["alive"] and n["node_id"] != self.local_id
        }

    def choose(
        self, shape: Shape, strategy: Any, local: NodeResources, busy: bool = False
    ) -> bytes | None | Unschedulable:
        """HERE (None), another node's id, or Unschedulable. ``busy``: requests already wait
        here, so this node has no room now whatever its free resources say."""
        sel, strategy = split_labels(strategy)
        here = matches(sel, self.labels)
        if isinstance(strategy, (list, tuple)) and strategy and strategy[0] == "node":
            target: bytes = strategy[1]
            soft = bool(strategy[2])
            if target == self.local_id and (here and local.feasible(shape) or not soft):
                return HERE
            peer = self.peers.get(target)
            if peer is not None and (peer.feasible(shape, sel) or not soft):
                peer.take(shape)
                return target
            if not soft:
                return Unschedulable(
                    f"node {target.hex()} named by NodeAffinitySchedulingStrategy(soft=False) "
                    "is not alive in the cluster"
                )
        elif strategy == "SPREAD":
            return self._spread(shape, local, sel)
        elif isinstance(strategy, (list, tuple)) and strategy and strategy[0] == "locality":
            # Moving large arguments costs more than waiting a little for the node that has
            # them, so go there whenever it could run the task (None: they are here).
            peer = self.peers.get(strategy[1])
            if peer is not None and peer.feasible(shape, sel):
                peer.take(shape)
                return peer.node_id
        return self._default(shape, local, busy, sel)

    def _default(
        self, shape: Shape, local: NodeResources, busy: bool, sel: Selector
    ) -> bytes | None:
        here = matches(sel, self.labels)
        if here and local.fits(shape) and not busy:
            return HERE
        spill = self.spill_target(shape, sel)
        if spill is not None or here and local.feasible(shape):
            return spill
        feasible = [p for p in self.peers.values() if p.feasible(shape, sel)]
        return feasible[0].node_id if feasible else HERE

    def room_elsewhere(self, shape: Shape) -> bool:
        return any(p.fits(shape) for p in self.peers.values())

    def spill_target(self, shape: Shape, sel: Selector = ()) -> bytes | None:
        """The node with the most room for ``shape`` right now (among those whose labels
        match ``sel``), if any has room."""
        fitting = [p for p in self.peers.values() if p.fits(shape, sel)]
        if not fitting:
            return None
        names = [k for k, _ in shape] or ["CPU"]
        best = max(fitting, key=lambda p: min(p.available.get(k, 0) for k in names))
        best.take(shape)
        return best.node_id

    def _spread(self, shape: Shape, local: NodeResources, sel: Selector) -> bytes | None:
        here = matches(sel, self.labels)
        nodes: list[tuple[bytes, bool, bool]] = [
            (self.local_id, here and local.feasible(shape), here and local.fits(shape))
        ] + [(p.node_id, p.feasible(shape, sel), p.fits(shape, sel)) for p in self.peers.values()]
        nodes.sort()
        pool = [n for n, _, fits in nodes if fits] or [n for n, feasible, _ in nodes if feasible]
        if not pool:
            return HERE
        pick = pool[next(self._turn) % len(pool)]
        if pick == self.local_id:
            return HERE
        self.peers[pick].take(shape)
        return pick
