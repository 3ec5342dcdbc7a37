"""A parameter server as an actor, updated by four worker tasks.

From the blog post: the ``ParameterServer`` actor holds one numpy array per
key; ``get`` returns the arrays for some keys and ``update`` adds to them. Four
worker tasks repeatedly fetch the latest parameters, compute updates and push
them. The post's workers loop forever; these stop after a fixed number of
iterations so the final parameters can be checked.

Each worker pushes a "gradient" of ``worker_index + 1`` for every entry, so
whatever the interleaving, the final parameters are the initial ones plus
``iterations * (1 + 2 + 3 + 4)``.

Run:  python examples/parameter_server.py
"""

import numpy as np

import ember as ray

KEYS = ["key1", "key2", "key3"]
NUM_WORKERS = 4
ITERATIONS = 25


@ray.remote
class ParameterServer:
    def __init__(self, keys, values):
        # These values will be mutated, so we must create a local copy.
        values = [value.copy() for value in values]
        self.parameters = dict(zip(keys, values, strict=True))

    def get(self, keys):
        return [self.parameters[key] for key in keys]

    def update(self, keys, values):
        # This update function adds to the existing values, but the update
        # function can be defined arbitrarily.
        for key, value in zip(keys, values, strict=True):
            self.parameters[key] += value


@ray.remote
def worker_task(parameter_server, worker_index, iterations):
    keys = KEYS
    previous_total = -np.inf
    for _ in range(iterations):
        # Get the latest parameters.
        values = ray.get(parameter_server.get.remote(keys))
        # Updates only ever add, so what a worker sees can only grow.
        total = sum(float(value.sum()) for value in values)
        assert total >= previous_total
        previous_total = total
        # Compute some parameter updates.
        updates = [np.full(value.shape, float(worker_index + 1)) for value in values]
        # Update the parameters.
        last_update = parameter_server.update.remote(keys, updates)
    # Wait for this worker's last update: the ones before it ran before it.
    ray.get(last_update)
    return worker_index


def main():
    ray.init(num_cpus=2)

    initial_keys = KEYS
    initial_values = [np.zeros(3), np.arange(4, dtype=float), np.ones((2, 2))]
    parameter_server = ParameterServer.remote(initial_keys, initial_values)

    # Start 4 workers.
    workers = [
        worker_task.remote(parameter_server, index, ITERATIONS) for index in range(NUM_WORKERS)
    ]
    assert sorted(ray.get(workers)) == list(range(NUM_WORKERS))

    final = ray.get(parameter_server.get.remote(initial_keys))
    increment = ITERATIONS * sum(index + 1 for index in range(NUM_WORKERS))
    for key, initial, value in zip(initial_keys, initial_values, final, strict=True):
        print(f"{key}: {initial.tolist()} -> {value.tolist()}")
        np.testing.assert_array_equal(value, initial + increment)
    # The server worked on copies: the driver's arrays are unchanged.
    assert not initial_values[0].any()

    ray.shutdown()
    print(f"parameter_server: {NUM_WORKERS} workers x {ITERATIONS} updates, all checks passed")


if __name__ == "__main__":
    main()
