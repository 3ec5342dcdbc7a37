"""Placement groups: where a group's bundles go, and their all-or-nothing reservation.

Theory of operation, as in Ray: a placement group is a list of *bundles* (resource amounts)
and a strategy. The control store chooses a node for every bundle from the nodes' free
resources (``choose_nodes``), then reserves them in two phases (``GroupTable``): it asks each
chosen node to *prepare* its bundles (set the resources aside), and only when every node
said yes does it *commit* them; if any node says no, the nodes that said yes cancel theirs,
and the group waits for the next change of the cluster's resources to try again.

A committed bundle becomes resources of its node under names of its own (``bundle_resources``:
``CPU_group_1_<pg>`` for bundle 1, ``CPU_group_<pg>`` for any bundle of the group, and a
marker ``bundle_group_...`` that even a task asking for nothing needs). A task or actor
scheduled into a group asks for those names instead of ``CPU`` (``demand``), so the ordinary
lease scheduler and spillback place it on the bundle's node and count it against the bundle,
not against the node's free pool. A group's bundles on a node that dies are chosen again
(the group is RESCHEDULING meanwhile); removing a group returns its bundles, and the nodes
stop whatever runs in them. ``NodeBundles`` is a node's side of the reservation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ember._core.resources import Allocation, NodeResources, Shape, is_group_resource, to_units
from ember._protocol.records import record

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
BUNDLE = "bundle"  # the marker every bundle holds (Ray's name), so that any task fits in it
_MARK = to_units(1000)  # how much of the marker a bundle holds
_MARK_ASKED = to_units(0.001)  # how much of it a task or actor in the bundle asks for

# -- names -------------------------------------------------------------------------------------


def group_resource(name: str, pg_hex: str, index: int = -1) -> str:
    """The name a resource of bundle ``index`` (-1: any bundle) of a group goes by."""
    return f"{name}_group_{pg_hex}" if index < 0 else f"{name}_group_{index}_{pg_hex}"


def in_group(shape: Shape) -> bool:
    """Whether a request is for a placement group's resources."""
    return any(is_group_resource(name) for name, _ in shape)


def group_of(names: Iterable[str] | None) -> str | None:
    """The hex id of the group whose resources (by name) a lease holds (None: no group)."""
    for name in names or ():
        if name.startswith(BUNDLE + "_group_"):
            return name.rsplit("_", 1)[1]
    return None


def bundle_resources(shape: Shape, pg_hex: str, index: int) -> Shape:
    """What a committed bundle adds to its node: its amounts under the bundle's names and
    under the group's (several bundles of a group on one node add up), and the marker."""
    out: dict[str, int] = {}
    for name, units in (*shape, (BUNDLE, _MARK)):
        for key in (group_resource(name, pg_hex, index), group_resource(name, pg_hex)):
            out[key] = out.get(key, 0) + units
    return tuple(sorted(out.items()))


def demand(shape: Shape, pg_hex: str, index: int) -> Shape:
    """A task's or actor's request rewritten into its group: bundle ``index`` (its names and
    the group's, so that the node's total for the group is never exceeded), or any bundle
    (-1: the group's names only)."""
    out: dict[str, int] = {}
    for name, units in (*shape, (BUNDLE, _MARK_ASKED)):
        out[group_resource(name, pg_hex)] = units
        if index >= 0:
            out[group_resource(name, pg_hex, index)] = units
    return tuple(sorted(out.items()))


def fits_a_bundle(request: Mapping[str, float], bundles: Sequence[Mapping[str, float]]) -> bool:
    """Whether a request fits in at least one bundle (checked when the work is submitted)."""
    return any(
        all(bundle.get(k, 0) >= v for k, v in request.items() if v and k != BUNDLE)
        for bundle in bundles
    )


# -- choosing nodes ----------------------------------------------------------------------------


def _fits(shape: Shape, room: Mapping[str, int]) -> bool:
    return all(room.get(k, 0) >= v for k, v in shape)


def _take(shape: Shape, room: dict[str, int]) -> None:
    for k, v in shape:
        room[k] = room.get(k, 0) - v


def _headroom(room: Mapping[str, int], shape: Shape) -> int:
    names = [k for k, _ in shape] or ["CPU"]
    return min(room.get(k, 0) for k in names)


def choose_nodes(
    bundles: Mapping[int, Shape],
    strategy: str,
    available: Mapping[bytes, Mapping[str, int]],
    placed: Mapping[int, bytes] | None = None,
) -> dict[int, bytes] | None:
    """A node for each of ``bundles`` (index -> shape) given the nodes' free resources, or
    None if they do not all fit now. ``placed``: the group's other bundles, already on
    their nodes (a group being rescheduled after a node died), which the strict strategies
    must respect."""
    placed = dict(placed or {})
    room = {node: dict(res) for node, res in sorted(available.items())}
    order = sorted(bundles, key=lambda i: (-sum(v for _, v in bundles[i]), i))
    total: dict[str, int] = {}
    for i in bundles:
        for k, v in bundles[i]:
            total[k] = total.get(k, 0) + v
    whole = tuple(total.items())
    if strategy == "STRICT_PACK":
        homes = set(placed.values())
        candidates = [n for n in room if not homes or n in homes]
        fitting = [n for n in candidates if _fits(whole, room[n])]
        if not fitting:
            return None
        best = max(fitting, key=lambda n: _headroom(room[n], whole))
        return dict.fromkeys(bundles, best)
    if strategy == "PACK":
        # One node if any can hold them all (the node of placed bundles first), else greedy.
        homes = set(placed.values())
        fitting = [n for n in room if _fits(whole, room[n])]
        preferred = [n for n in fitting if n in homes] or fitting
        if preferred:
            best = max(preferred, key=lambda n: _headroom(room[n], whole))
            return dict.fromkeys(bundles, best)
    chosen: dict[int, bytes] = {}
    used: dict[bytes, int] = {}
    for node in placed.values():
        used[node] = used.get(node, 0) + 1
    for i in order:
        shape = bundles[i]
        fitting = [n for n in room if _fits(shape, room[n])]
        if strategy == "STRICT_SPREAD":
            fitting = [n for n in fitting if n not in used]
        if not fitting:
            return None
        if strategy == "PACK":  # the nodes this group already uses first
            pick = max(fitting, key=lambda n: (used.get(n, 0) > 0, _headroom(room[n], shape)))
        else:  # SPREAD, STRICT_SPREAD: the least used node, then the one with most room
            pick = max(fitting, key=lambda n: (-used.get(n, 0), _headroom(room[n], shape)))
        _take(shape, room[pick])
        used[pick] = used.get(pick, 0) + 1
        chosen[i] = pick
    return chosen


# -- the control store's side: the two-phase reservation ---------------------------------------


@record
class Prepare:
    """Ask ``node`` to set these bundles aside (answered yes or no: ``GroupTable.prepared``)."""

    node: bytes
    pg_id: bytes
    bundles: tuple[tuple[int, Shape], ...]


@record
class Commit:
    """Make the prepared bundles the group's resources on ``node``."""

    node: bytes
    pg_id: bytes
    indexes: tuple[int, ...]


@record
class Release:
    """Give back these bundles on ``node`` (prepared or committed; all of the group's there
    if ``indexes`` is empty), stopping what runs in them. ``removed``: the group is gone,
    and the node refuses its work from now on."""

    node: bytes
    pg_id: bytes
    indexes: tuple[int, ...]
    removed: bool = False


GroupAction = Prepare | Commit | Release

PENDING, CREATED, RESCHEDULING, REMOVED = "PENDING", "CREATED", "RESCHEDULING", "REMOVED"


@dataclass
class Group:
    pg_id: bytes
    bundles: list[Shape]
    strategy: str
    name: str = ""
    namespace: str = ""
    job_id: bytes = b""
    detached: bool = False
    state: str = PENDING
    placed: dict[int, bytes] = field(default_factory=dict)  # committed bundles
    # The attempt in flight: node -> (its bundles, its answer: None until it comes).
    attempt: dict[bytes, tuple[tuple[int, ...], bool | None]] = field(default_factory=dict)
    attempts: int = 0

    def unplaced(self) -> dict[int, Shape]:
        return {i: s for i, s in enumerate(self.bundles) if i not in self.placed}


class GroupTable:
    """Every placement group and its reservation, as events in and actions out."""

    def __init__(self) -> None:
        self.groups: dict[bytes, Group] = {}

    def create(self, group: Group) -> None:
        self.groups[group.pg_id] = group

    def waiting(self) -> bool:
        """Some group waits for room (``schedule`` has work to do)."""
        return any(g.state in (PENDING, RESCHEDULING) and not g.attempt for g in self.live())

    def live(self) -> list[Group]:
        return [g for g in self.groups.values() if g.state != REMOVED]

    def schedule(self, available: Mapping[bytes, Mapping[str, int]]) -> list[GroupAction]:
        """Try the waiting groups, oldest first, against the nodes' free resources (lowered
        as bundles are given out here, so that two groups never count the same room)."""
        room = {n: dict(r) for n, r in available.items()}
        for other in self.live():  # (nodes report what they prepared a moment later)
            for node, (asked, answer) in other.attempt.items():
                if node in room and answer is not False:
                    for i in asked:
                        _take(other.bundles[i], room[node])
        actions: list[GroupAction] = []
        for group in self.live():
            if group.state == CREATED or group.attempt:
                continue
            chosen = choose_nodes(group.unplaced(), group.strategy, room, group.placed)
            if chosen is None:
                continue
            group.attempts += 1
            by_node: dict[bytes, list[int]] = {}
            for index, node in sorted(chosen.items()):
                by_node.setdefault(node, []).append(index)
                _take(group.bundles[index], room[node])
            for node, indexes in by_node.items():
                group.attempt[node] = (tuple(indexes), None)
                actions.append(
                    Prepare(node, group.pg_id, tuple((i, group.bundles[i]) for i in indexes))
                )
        return actions

    def prepared(self, pg_id: bytes, node: bytes, ok: bool) -> list[GroupAction]:
        """A node's answer to ``Prepare``. Once all have answered: commit everywhere, or
        cancel everywhere if one said no (the group then waits for the next try)."""
        group = self.groups.get(pg_id)
        if group is None or node not in group.attempt:
            return [Release(node, pg_id, ())] if ok else []
        indexes, _ = group.attempt[node]
        if group.state == REMOVED:
            del group.attempt[node]
            return [Release(node, pg_id, indexes)] if ok else []
        group.attempt[node] = (indexes, ok)
        if any(answer is None for _, answer in group.attempt.values()):
            return []
        attempt, group.attempt = group.attempt, {}
        if all(answer for _, answer in attempt.values()):
            for n, (idx, _) in attempt.items():
                group.placed.update(dict.fromkeys(idx, n))
            group.state = CREATED
            return [Commit(n, pg_id, idx) for n, (idx, _) in attempt.items()]
        return [Release(n, pg_id, idx) for n, (idx, answer) in attempt.items() if answer]

    def remove(self, pg_id: bytes, nodes: Iterable[bytes] = ()) -> list[GroupAction]:
        """The group goes; its nodes give back what they hold of it, and every node of
        ``nodes`` (the live ones) hears of it, so that work waiting for or retried into the
        group fails instead of waiting for ever. Answers to an attempt in flight are
        released as they come."""
        group = self.groups.get(pg_id)
        if group is None or group.state == REMOVED:
            return []
        group.state = REMOVED
        by_node: dict[bytes, list[int]] = {n: [] for n in nodes}
        for index, node in sorted(group.placed.items()):
            by_node.setdefault(node, []).append(index)
        group.placed = {}
        return [Release(n, pg_id, tuple(idx), True) for n, idx in by_node.items()]

    def node_died(self, node: bytes) -> list[GroupAction]:
        """Bundles on that node are chosen again; an attempt that counted on it fails."""
        actions: list[GroupAction] = []
        for group in self.live():
            lost = [i for i, n in group.placed.items() if n == node]
            for i in lost:
                del group.placed[i]
            if lost and group.state == CREATED:
                group.state = RESCHEDULING
            if node in group.attempt:
                actions += self.prepared(group.pg_id, node, False)
        return actions

    def job_ended(self, job_id: bytes, nodes: Iterable[bytes] = ()) -> list[GroupAction]:
        """A job's groups end with it, unless detached."""
        actions: list[GroupAction] = []
        for group in self.live():
            if group.job_id == job_id and not group.detached:
                actions += self.remove(group.pg_id, nodes)
        return actions

    def named(self, name: str, namespace: str) -> Group | None:
        found = [g for g in self.live() if g.name == name and g.namespace == namespace]
        return found[-1] if found else None


# -- a node's side -----------------------------------------------------------------------------


class NodeBundles:
    """The bundles a node holds: prepared ones keep their resources out of the free pool;
    committed ones also add the group's resources (``bundle_resources``)."""

    def __init__(self, resources: NodeResources) -> None:
        self.resources = resources
        self.held: dict[tuple[bytes, int], tuple[Allocation, Shape | None]] = {}

    def prepare(self, pg_id: bytes, bundles: Sequence[tuple[int, Shape]]) -> bool:
        """Set all of ``bundles`` aside, or none of them (one held already stays)."""
        taken: list[tuple[int, Allocation]] = []
        for index, shape in bundles:
            if (pg_id, index) in self.held:
                continue
            alloc = self.resources.acquire(shape)
            if alloc is None:
                for _, a in taken:
                    self.resources.release(a)
                return False
            taken.append((index, alloc))
        for index, alloc in taken:
            self.held[(pg_id, index)] = (alloc, None)
        return True

    def commit(self, pg_id: bytes, indexes: Sequence[int]) -> None:
        for index in indexes:
            held = self.held.get((pg_id, index))
            if held is None or held[1] is not None:
                continue
            alloc, _ = held
            added = bundle_resources(alloc.shape, pg_id.hex(), index)
            self.resources.add(added, alloc.gpu_units)
            self.held[(pg_id, index)] = (alloc, added)

    def group_names(self, pg_id: bytes, indexes: Sequence[int]) -> set[str]:
        """The resource names of these committed bundles (what runs in them uses them)."""
        names: set[str] = set()
        for index in indexes or self.indexes(pg_id):
            held = self.held.get((pg_id, index))
            if held is not None and held[1] is not None:
                names.update(k for k, _ in held[1])
        return names

    def indexes(self, pg_id: bytes) -> list[int]:
        return [i for (g, i) in self.held if g == pg_id]

    def release(self, pg_id: bytes, indexes: Sequence[int]) -> None:
        """Give the bundles back (every one of the group's here, if ``indexes`` is empty).
        Whatever used their resources must have let go first."""
        for index in list(indexes or self.indexes(pg_id)):
            held = self.held.pop((pg_id, index), None)
            if held is None:
                continue
            alloc, added = held
            if added is not None:
                self.resources.remove(added, alloc.gpu_units)
            self.resources.release(alloc)
