"""A cluster of three nodes on this machine: work spills from a busy head, custom resources
pin work to the node that declares them, and a large array crosses nodes.

The same program runs on real machines: start the nodes with `ember start` instead of
`Cluster(...)` (see "Running on a cluster" in the README) and call
`ray.init(address="auto")`.
"""

import numpy as np

import ember as ray
from ember.testing import Cluster

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
try:
    cluster.add_node(num_cpus=1)
    data_node = cluster.add_node(num_cpus=1, resources={"dataset": 1})
    ray.init(address=cluster.address)
    print(f"{len(ray.nodes())} nodes, {ray.cluster_resources()['CPU']:g} CPUs in all")

    @ray.remote
    def where(seconds):
        import time

        time.sleep(seconds)
        return ray.get_runtime_context().get_node_id()

    # Three half-second tasks on three single-CPU nodes: the head keeps one and spills the
    # others (usually to both other nodes; on a busy machine a node may finish one and take
    # the next before a third node's worker is up).
    ran_on = ray.get([where.remote(0.5) for _ in range(3)])
    print(f"3 tasks ran on {len(set(ran_on))} nodes")
    assert len(set(ran_on)) >= 2

    @ray.remote(resources={"dataset": 1})
    def load_shard():
        return np.arange(5_000_000, dtype=np.float64)  # 40 MB, made on the data node

    @ray.remote
    def mean(shard):
        return float(shard.mean()), ray.get_runtime_context().get_node_id()

    shard = load_shard.remote()
    value, node = ray.get(mean.remote(shard))  # runs where the shard is
    print(f"mean {value:g}, computed on the data node: {node == data_node.node_id}")
    assert node == data_node.node_id
    local_copy = ray.get(shard)  # pulled to the driver's node over TCP
    assert value == local_copy.mean() == 2_499_999.5
    print("the 40 MB shard crossed nodes intact")
finally:
    ray.shutdown()
    cluster.shutdown()
