"""Nested tasks: remote functions that call other remote functions.

From the seeds: ``g`` starts four ``f`` tasks and returns their refs, ``h``
starts four ``f`` tasks and returns their values. ``f`` must be defined before
the functions that call it.

Then the blog post's picture of nested parallelism: two experiments run in
parallel, each a long-running task that itself runs several simulations in
parallel. A task blocked in ``ray.get`` gives its CPU back, so this also runs
on two CPUs.

Run:  python examples/nested_tasks.py
"""

import ember as ray


@ray.remote
def f():
    return 1


@ray.remote
def g():
    # Returns four refs, without waiting for them.
    return [f.remote() for _ in range(4)]


@ray.remote
def h():
    # Waits for four tasks and returns their values.
    return ray.get([f.remote() for _ in range(4)])


@ray.remote
def simulate(experiment, index):
    # A stand-in for one simulation: a small deterministic computation.
    return sum((experiment * 100 + index + k) % 7 for k in range(1000))


@ray.remote
def run_experiment(experiment, num_simulations=4):
    results = ray.get([simulate.remote(experiment, i) for i in range(num_simulations)])
    return experiment, results


def main():
    ray.init(num_cpus=2)

    refs = ray.get(g.remote())
    print("ray.get(g.remote()) =", refs)
    assert len(refs) == 4
    assert all(isinstance(ref, ray.ObjectRef) for ref in refs)
    assert ray.get(refs) == [1, 1, 1, 1]

    values = ray.get(h.remote())
    print("ray.get(h.remote()) =", values)
    assert values == [1, 1, 1, 1]

    experiments = ray.get([run_experiment.remote(e) for e in range(2)])
    for experiment, results in experiments:
        print(f"experiment {experiment}: simulation results {results}")
    for experiment, results in experiments:
        expected = [sum((experiment * 100 + i + k) % 7 for k in range(1000)) for i in range(4)]
        assert results == expected
    assert [experiment for experiment, _ in experiments] == [0, 1]

    ray.shutdown()
    print("nested_tasks: all checks passed")


if __name__ == "__main__":
    main()
