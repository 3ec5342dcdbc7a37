"""Resource amounts and their bookkeeping on one node.

Amounts are kept as integers in units of 1/10000 so that adding and removing fractions
(``num_cpus=0.1`` ten times) returns exactly to where it started. GPUs are also handed out by
index, so a task with ``num_gpus=1`` learns which device is its own; fractional GPU requests
share one index until it is full.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_UNIT = 10_000
Shape = tuple[tuple[str, int], ...]  # sorted (name, units) pairs, hashable: a resource shape
# A placement group's resource: <name>_group_<pg hex>, or <name>_group_<bundle>_<pg hex>
# (``_core/placement_groups.group_resource``).
_GROUP_NAME = re.compile(r"_group_(?:\d+_)?[0-9a-f]+$")


def to_units(amount: float) -> int:
    return round(amount * _UNIT)


def from_units(units: int) -> float:
    value = units / _UNIT
    return int(value) if value == int(value) else value


def shape_of(request: Mapping[str, float]) -> Shape:
    return tuple(sorted((k, to_units(v)) for k, v in request.items() if v))


def shape_dict(shape: Shape) -> dict[str, float]:
    return {k: from_units(v) for k, v in shape}


def is_group_resource(name: str) -> bool:
    """Whether a resource is a placement group's share of its plain one (``CPU_group_...``)."""
    return _GROUP_NAME.search(name) is not None


def is_gpu(name: str) -> bool:
    """GPUs, or a placement group's share of them (``GPU_group_...``)."""
    return name == "GPU" or name.startswith("GPU_") and is_group_resource(name)


def describe(shape: Shape) -> str:
    return ", ".join(f"{k}: {from_units(v)}" for k, v in shape) or "no resources"


@dataclass
class Allocation:
    """What one lease holds: its shape and, if it asked for GPUs, which ones."""

    shape: Shape
    gpu_ids: list[int] = field(default_factory=list)
    gpu_units: dict[int, int] = field(default_factory=dict)
    cpus_released: bool = False  # the task is blocked in get() and gave its CPUs back


class NodeResources:
    """Total and available resources of a node, with GPU indices.

    Each GPU resource has a pool of free units per device index: "GPU" the node's, and each
    placement group's ``GPU_group_...`` the devices its bundles here reserved. A request
    naming several (a bundle's and its group's) takes the same devices from all of them."""

    def __init__(self, total: Mapping[str, float]) -> None:
        self.total: dict[str, int] = {k: to_units(v) for k, v in total.items() if v}
        self.available: dict[str, int] = dict(self.total)
        self._gpu_pools: dict[str, dict[int, int]] = {
            "GPU": {i: _UNIT for i in range(int(total.get("GPU", 0)))}
        }

    def feasible(self, shape: Shape) -> bool:
        """Could this shape ever run here (on an otherwise idle node)?"""
        return all(self.total.get(k, 0) >= v for k, v in shape)

    def missing(self, shape: Shape) -> str:
        return ", ".join(
            f"{k} (needs {from_units(v)}, node has {from_units(self.total.get(k, 0))})"
            for k, v in shape
            if self.total.get(k, 0) < v
        )

    def fits(self, shape: Shape) -> bool:
        if not all(self.available.get(k, 0) >= v for k, v in shape):
            return False
        return self._pick_gpus(shape) is not None

    def acquire(self, shape: Shape) -> Allocation | None:
        if not self.fits(shape):
            return None
        for k, v in shape:
            self.available[k] -= v
        alloc = Allocation(shape)
        picked = self._pick_gpus(shape)
        assert picked is not None
        if picked:
            for pool in self._pools_of(shape):
                for idx, units in picked.items():
                    pool[idx] -= units
            alloc.gpu_units = picked
            alloc.gpu_ids = sorted(picked)
        return alloc

    def release(self, alloc: Allocation) -> None:
        for k, v in alloc.shape:
            if k == "CPU" and alloc.cpus_released:
                continue
            self.available[k] += v
        for pool in self._pools_of(alloc.shape):
            for idx, units in alloc.gpu_units.items():
                pool[idx] = pool.get(idx, 0) + units
        alloc.gpu_units = {}

    def release_cpus(self, alloc: Allocation) -> None:
        """A blocked task lends its CPUs back so that the tasks it waits for can run."""
        cpus = dict(alloc.shape).get("CPU", 0)
        if cpus and not alloc.cpus_released:
            alloc.cpus_released = True
            self.available["CPU"] += cpus

    def reacquire_cpus(self, alloc: Allocation) -> None:
        """Take the CPUs back when the task resumes, even if that oversubscribes for a while."""
        if alloc.cpus_released:
            alloc.cpus_released = False
            self.available["CPU"] -= dict(alloc.shape)["CPU"]

    def add(self, shape: Shape, gpu_units: Mapping[int, int] | None = None) -> None:
        """Resources that appear on this node (a placement group's committed bundle, whose
        GPU names own the devices in ``gpu_units``)."""
        for k, v in shape:
            self.total[k] = self.total.get(k, 0) + v
            self.available[k] = self.available.get(k, 0) + v
            if is_gpu(k):
                pool = self._gpu_pools.setdefault(k, {})
                for idx, units in (gpu_units or {}).items():
                    pool[idx] = pool.get(idx, 0) + units

    def remove(self, shape: Shape, gpu_units: Mapping[int, int] | None = None) -> None:
        """Resources that ``add`` made go again (nothing may hold them)."""
        for k, v in shape:
            self.total[k] -= v
            self.available[k] -= v
            if self.total[k] <= 0:
                del self.total[k]
                del self.available[k]
                self._gpu_pools.pop(k, None)
            elif k in self._gpu_pools:
                for idx, units in (gpu_units or {}).items():
                    self._gpu_pools[k][idx] -= units

    def snapshot(self) -> tuple[dict[str, float], dict[str, float]]:
        total = {k: float(from_units(v)) for k, v in self.total.items()}
        avail = {k: float(from_units(max(0, v))) for k, v in self.available.items()}
        return total, avail

    def _pools_of(self, shape: Shape) -> list[dict[int, int]]:
        return [self._gpu_pools[k] for k, _ in shape if k in self._gpu_pools]

    def _pick_gpus(self, shape: Shape) -> dict[int, int] | None:
        """Devices for the shape's GPUs ({} if it asks for none), free in every GPU pool it
        names; None if there are none."""
        units = max((v for k, v in shape if is_gpu(k)), default=0)
        if not units:
            return {}
        pools = self._pools_of(shape)
        indexes = sorted(set.intersection(*(set(p) for p in pools))) if pools else []
        free = {i: min(p[i] for p in pools) for i in indexes}
        if units < _UNIT:
            # A fraction: the fullest GPU that still has room, so fractions pack together.
            fitting = [i for i, f in free.items() if f >= units]
            if not fitting:
                return None
            best = min(fitting, key=lambda i: (free[i], i))
            return {best: units}
        whole = units // _UNIT
        idle = [i for i, f in free.items() if f == _UNIT]
        if len(idle) < whole:
            return None
        return {i: _UNIT for i in idle[:whole]}
