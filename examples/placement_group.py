"""Placement groups: reserve resources together, then run tasks and actors in them.

As in Ray's documentation: a placement group is a list of *bundles* (resource amounts)
reserved all at once, with a strategy that says how bundles may share nodes (PACK, SPREAD,
STRICT_PACK, STRICT_SPREAD). ``pg.ready()`` is an ObjectRef that resolves once every bundle
is reserved; tasks and actors scheduled into the group use the bundle's resources, not the
node's free pool; a group that cannot fit stays pending; removing a group kills what runs in
it and gives its resources back.

Run:  python examples/placement_group.py
"""

import time

import ember as ray
from ember.util.placement_group import (
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ember.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@ray.remote(num_cpus=1)
def square(x):
    return x * x


@ray.remote(num_cpus=1)
class Counter:
    def __init__(self):
        self.n = 0

    def add(self, k):
        self.n += k
        return self.n


@ray.remote(num_cpus=0)
def child():
    return ray.get_runtime_context().get_placement_group_id()


@ray.remote(num_cpus=1)
def parent():
    # Started without a strategy of its own, the child runs in the parent's group.
    return ray.get(child.remote())


def main():
    ray.init(num_cpus=2)

    # Two bundles of one CPU each, on one node.
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK", name="pair")
    ray.get(pg.ready(), timeout=30)
    table = placement_group_table(pg)
    print("state:", table["state"], "bundles:", table["bundles"])
    assert table["state"] == "CREATED"
    print("CPUs outside the group:", ray.available_resources().get("CPU", 0))

    # A task in bundle 0, an actor in bundle 1.
    in_bundle_0 = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)
    in_bundle_1 = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=1)
    squares = ray.get([square.options(scheduling_strategy=in_bundle_0).remote(i) for i in range(5)])
    counter = Counter.options(scheduling_strategy=in_bundle_1).remote()
    total = ray.get([counter.add.remote(k) for k in range(1, 5)])[-1]
    print("squares:", squares, "counter:", total)
    assert squares == [0, 1, 4, 9, 16] and total == 10

    # A request larger than its bundle is refused when submitted.
    try:
        square.options(num_cpus=2, scheduling_strategy=in_bundle_0).remote(3)
    except ValueError as e:
        print("refused:", str(e).split(" because")[0])

    # Child tasks join their parent's group when it captures them.
    captured = PlacementGroupSchedulingStrategy(
        pg, placement_group_bundle_index=0, placement_group_capture_child_tasks=True
    )
    child_group = ray.get(parent.options(scheduling_strategy=captured).remote())
    print("the child ran in group", child_group)
    assert child_group == pg.id.hex()

    # More than the machine has: the group stays pending (as in Ray), ready() never resolves.
    too_big = placement_group([{"CPU": 8}])
    print("8 CPUs reserved within 0.5 s:", too_big.wait(timeout_seconds=0.5))
    assert placement_group_table(too_big)["state"] == "PENDING"
    remove_placement_group(too_big)

    # Removing the group (asynchronously, as in Ray) kills its actor and frees both CPUs.
    remove_placement_group(pg)
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    print(
        "state:", placement_group_table(pg)["state"], "CPUs free:", ray.available_resources()["CPU"]
    )
    try:
        ray.get(counter.add.remote(1), timeout=30)
    except ray.exceptions.RayActorError:
        print("the actor in the removed group is gone")
    ray.shutdown()


if __name__ == "__main__":
    main()
