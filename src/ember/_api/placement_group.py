"""Placement groups behind ``ember.util.placement_group``: the handle, the calls to the control
store, and how a task's or actor's request is moved into a group's bundles.

The control store reserves the bundles (``_runtime/control_store/placement_groups.py``); a
task or actor in a group asks for the bundle's own resources (``_core.placement_groups.demand``),
so the ordinary scheduler places it. ``ready()`` is, as in Ray, a task that asks for nothing
but a place in the group: it runs, and its ref resolves, once a bundle is committed (all of
them are, together).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ember._api.session import runtime
from ember._core import placement_groups as pgs
from ember._core.resources import Shape, shape_dict
from ember._protocol import ids
from ember._protocol import messages as m
from ember._runtime import task_context
from ember._runtime.object_ref import ObjectRef
from ember._runtime.unique_ids import PlacementGroupID

if TYPE_CHECKING:
    from ember._api.remote_function import RemoteFunction

# The bundles of the groups this process knows, by group id. A group's bundles never change:
# this process asks the control store for them once per group, not once per handle or task
# (a child captured into its parent's group gets a new handle, and is checked against them).
# A pickled handle brings them along; removing the group here forgets them.
_bundles_of: dict[bytes, list[dict[str, float]]] = {}


class PlacementGroup:
    """A handle to a placement group (it pickles, so tasks and actors can be given one)."""

    def __init__(self, id: PlacementGroupID, bundle_cache: list[dict[str, float]] | None = None):
        self.id = id
        if bundle_cache is not None:
            _bundles_of[id.binary()] = bundle_cache

    @staticmethod
    def empty() -> PlacementGroup:
        """No group (its id is nil): work scheduled into it runs as if it had no strategy."""
        return PlacementGroup(PlacementGroupID.nil(), [])

    @property
    def is_empty(self) -> bool:
        return self.id.is_nil()

    @property
    def bundle_specs(self) -> list[dict[str, float]]:
        """The bundles, as given."""
        pg_id = self.id.binary()
        specs = _bundles_of.get(pg_id)
        if specs is None:
            entry = _entry(pg_id)
            if entry is None:
                return []
            specs = _bundles_of[pg_id] = list(entry.bundles)
        return specs

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self) -> ObjectRef[PlacementGroup]:
        """An ObjectRef that resolves (to this group) once all its bundles are reserved; it
        never does for a group that cannot fit, which stays pending (as in Ray)."""
        if self.is_empty:
            from ember._api.api import put

            empty: ObjectRef[PlacementGroup] = put(self)
            return empty
        strategy = PlacementGroupSchedulingStrategy(self)
        ref: ObjectRef[PlacementGroup] = (
            _bundle_reservation_check().options(scheduling_strategy=strategy).remote(self)
        )
        return ref

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Whether the group was reserved within ``timeout_seconds``."""
        from ember._api.api import cancel, wait

        ready = self.ready()
        done, _ = wait([ready], timeout=timeout_seconds)
        if not done:
            cancel(ready)  # (a loop of waits must not leave a task queued per call)
        return bool(done)

    def __reduce__(self) -> tuple[Any, ...]:
        return (PlacementGroup, (self.id, _bundles_of.get(self.id.binary())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup(id={self.id.hex()})"


class PlacementGroupSchedulingStrategy:
    """Run in a placement group: in bundle ``placement_group_bundle_index``, or in any of its
    bundles (-1). With ``placement_group_capture_child_tasks``, the tasks and actors this one
    starts without a strategy of their own run in the group too."""

    def __init__(
        self,
        placement_group: PlacementGroup | None,
        placement_group_bundle_index: int = -1,
        placement_group_capture_child_tasks: bool | None = None,
    ) -> None:
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


def _request(make: Any) -> Any:
    rt = runtime()
    control_request = getattr(rt, "control_request", None)
    if control_request is None:
        raise RuntimeError(
            "placement groups are not supported in local mode, which runs every call in the "
            "driver's process: run without local_mode=True to use them."
        )
    return control_request(make)


def _entries(
    pg_id: bytes = b"", name: str = "", namespace: str = ""
) -> list[m.PlacementGroupEntry]:
    """The control store's entries of one group (by id, or by name in a namespace), or of
    all when neither is given."""
    found: m.PlacementGroups = _request(
        lambda rid: m.GetPlacementGroups(rid=rid, pg_id=pg_id, name=name, namespace=namespace)
    )
    return found.entries


def _entry(pg_id: bytes = b"", name: str = "", namespace: str = "") -> m.PlacementGroupEntry | None:
    found = _entries(pg_id, name, namespace)
    return found[0] if found else None


def _job_and_namespace() -> tuple[bytes, str]:
    """The job and namespace of the code running here (a task's are its caller's)."""
    rt = runtime()
    ctx = task_context.current.get()
    if ctx is None:
        return rt.job_id, rt.namespace
    return ctx.job_id or rt.job_id, ctx.namespace or rt.namespace


def _check_bundles(bundles: Any) -> None:
    """Ray's checks, with Ray's messages (user code may match on them)."""
    if not isinstance(bundles, list):
        raise ValueError(f"Placement group bundles must be a list, got {type(bundles)}.")
    if not bundles:
        raise ValueError(
            "Bundles must be a non-empty list of resource dictionaries. For example: "
            '`[{"CPU": 1.0}, {"GPU": 1.0}]`. Got empty list instead.'
        )
    for bundle in bundles:
        if (
            not isinstance(bundle, dict)
            or not all(isinstance(k, str) for k in bundle)
            or not all(isinstance(v, (int, float)) for v in bundle.values())
        ):
            raise ValueError(
                "Bundles must be a non-empty list of resource dictionaries. For example: "
                '`[{"CPU": 1.0}, {"GPU": 1.0}]`.'
            )
        if not bundle or all(v == 0 for v in bundle.values()):
            raise ValueError(
                "Bundles cannot be an empty dictionary or resources with only 0 values. "
                f"Bundles: {bundles}"
            )
        negative = [k for k, v in bundle.items() if v < 0]
        if negative:
            raise ValueError(f"Bundle resources must not be negative: {negative} in {bundle}")


def placement_group(
    bundles: list[dict[str, float]],
    strategy: str | None = "PACK",
    name: str = "",
    lifetime: str | None = None,
    _soft_target_node_id: str | None = None,
    bundle_label_selector: list[dict[str, str]] | None = None,
    topology_strategy: dict[str, str] | None = None,
) -> PlacementGroup:
    """Reserve ``bundles`` together, placed by ``strategy`` (PACK, SPREAD, STRICT_PACK,
    STRICT_SPREAD). Returns at once; ``ready()`` or ``wait()`` tell when the reservation is
    made. ``lifetime="detached"``: the group outlives this job."""
    unsupported = {
        "_soft_target_node_id": _soft_target_node_id,
        "bundle_label_selector": bundle_label_selector,
        "topology_strategy": topology_strategy,
    }
    for option, value in unsupported.items():
        if value:
            raise ValueError(f"placement_group({option}=...) is not supported by Ember yet")
    strategy = "PACK" if strategy is None else strategy
    if strategy not in pgs.STRATEGIES:
        raise ValueError(
            f"Invalid placement group strategy {strategy}. Supported strategies are: "
            f"{list(pgs.STRATEGIES)}."
        )
    _check_bundles(bundles)
    if lifetime not in (None, "detached"):
        raise ValueError(
            "Placement group `lifetime` argument must be either `None` or "
            f"'detached'. Got {lifetime}."
        )
    job_id, namespace = _job_and_namespace()
    pg_id = ids.random_id(PlacementGroupID.SIZE)
    specs = [{k: float(v) for k, v in b.items()} for b in bundles]
    _request(
        lambda rid: m.CreatePlacementGroup(
            rid=rid,
            pg_id=pg_id,
            bundles=specs,
            strategy=strategy,
            name=name,
            namespace=namespace,
            job_id=job_id,
            detached=lifetime == "detached",
        )
    )
    return PlacementGroup(PlacementGroupID(pg_id), specs)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Give the group's resources back; the tasks and actors running in it are killed."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group() takes a PlacementGroup, not {placement_group!r}")
    pg_id = placement_group.id.binary()
    _request(lambda rid: m.RemovePlacementGroup(rid=rid, pg_id=pg_id))
    _bundles_of.pop(pg_id, None)


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group of this name in this job's namespace."""
    if not placement_group_name:
        raise ValueError("Please supply a non-empty value to get_placement_group")
    entry = _entry(name=placement_group_name, namespace=_job_and_namespace()[1])
    if entry is None:
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")
    return PlacementGroup(PlacementGroupID(entry.pg_id), list(entry.bundles))


def _table_entry(entry: m.PlacementGroupEntry) -> dict[str, Any]:
    return {
        "placement_group_id": entry.pg_id.hex(),
        "name": entry.name,
        "bundles": dict(enumerate(entry.bundles)),
        "bundles_to_node_id": {
            i: node.hex() for i, node in enumerate(entry.nodes) if node is not None
        },
        "strategy": entry.strategy,
        "state": entry.state,
        "stats": {"scheduling_attempt": entry.attempts},
    }


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict[str, Any]:
    """One group's state (PENDING, CREATED, RESCHEDULING, REMOVED), bundles and nodes, or
    every group's, by hex id."""
    if placement_group is not None:
        entry = _entry(placement_group.id.binary())
        return _table_entry(entry) if entry is not None else {}
    return {e.pg_id.hex(): _table_entry(e) for e in _entries()}


def current_group_hex() -> str | None:
    """The group the running task or actor is in (None in a driver, or outside groups)."""
    ctx = task_context.current.get()
    return pgs.group_of(ctx.resources) if ctx is not None else None


def get_current_placement_group() -> PlacementGroup | None:
    """The group the running task or actor is in; None in a driver."""
    pg_hex = current_group_hex()
    return None if pg_hex is None else PlacementGroup(PlacementGroupID(bytes.fromhex(pg_hex)))


def effective_strategy(options: Mapping[str, Any]) -> Any:
    """The scheduling strategy of work started with these options: its own, or, when it has
    none and the task or actor starting it is in a group that captures child tasks, any
    bundle of that group (capturing in turn)."""
    strategy = options.get("scheduling_strategy")
    if strategy is None:
        ctx = task_context.current.get()
        if ctx is not None and ctx.capture_child_tasks:
            pg_hex = pgs.group_of(ctx.resources)
            group = PlacementGroup(PlacementGroupID(bytes.fromhex(pg_hex))) if pg_hex else None
            return PlacementGroupSchedulingStrategy(group, -1, True)
    return strategy


def captures(strategy: Any) -> bool:
    """Whether work with this strategy takes the tasks it starts into its group."""
    return bool(getattr(strategy, "placement_group_capture_child_tasks", False))


def into_group(strategy: Any, shape: Shape, what: str, placed: Shape | None = None) -> Shape:
    """The request of work scheduled with a PlacementGroupSchedulingStrategy, moved into
    the group's bundles; refused at the call if the index or the amounts do not fit.
    ``placed``: the amounts to check against the bundles, if not ``shape`` (an actor
    without ``num_cpus`` is placed as needing 1 CPU, though it holds none)."""
    group = strategy.placement_group
    index = strategy.placement_group_bundle_index
    if group is None or (isinstance(group, PlacementGroup) and group.is_empty):
        if index != -1:
            raise ValueError("If placement group is not set, the value of bundle index must be -1.")
        return shape
    if not isinstance(group, PlacementGroup):
        raise TypeError(f"placement_group must be a PlacementGroup, not {group!r}")
    bundles = group.bundle_specs
    if not isinstance(index, int) or index >= len(bundles) or index < -1:
        raise ValueError(
            f"placement group bundle index {index} is invalid. Valid placement group "
            f"indexes: 0-{len(bundles)}"
        )
    candidates = bundles if index == -1 else [bundles[index]]
    request = {k: float(v) for k, v in shape_dict(shape if placed is None else placed).items()}
    if not pgs.fits_a_bundle(request, candidates):
        raise ValueError(
            f"Cannot schedule {what} with the placement group because the resource request "
            f"{request} cannot fit into any bundles for the placement group, {bundles}."
        )
    return pgs.demand(shape, group.id.hex(), index)


def _check(placement_group: PlacementGroup) -> PlacementGroup:
    return placement_group


@functools.cache
def _bundle_reservation_check() -> RemoteFunction[[PlacementGroup], ObjectRef[PlacementGroup]]:
    from ember._api.remote_function import RemoteFunction  # (which imports this module)

    return RemoteFunction(_check, {"num_cpus": 0})
