"""Remote functions and the dynamic task graph.

Covers the first examples of the seeds:

* a regular Python function next to the same function made remote,
* four calls of each, run one after the other versus all at once,
* the ``zeros`` / ``multiply`` task graph: two tasks start in parallel and a
  third one is scheduled only when both of their results exist,
* passing an object ref to a remote function (``f.remote(x1_id)``): the task
  receives the plain value, not the ref,
* a function with two return values (``num_returns=2``, formerly
  ``num_return_vals=2``).

Run:  python examples/remote_functions.py
"""

import time

import numpy as np

import ember as ray


# A regular Python function ...
def regular_function():
    return 1


# ... and a remote function: the same body under @ray.remote.
@ray.remote
def remote_function():
    return 1


@ray.remote
def slow_remote_function():
    time.sleep(0.5)
    return 1


def slow_regular_function():
    time.sleep(0.5)
    return 1


# The dynamic task graph of the blog post.
@ray.remote
def multiply(x, y):
    return np.dot(x, y)


@ray.remote
def zeros(size):
    return np.zeros(size)


@ray.remote
def ones(size):
    return np.ones(size)


# A task whose argument can be the output of another task.
@ray.remote
def f(x):
    return x


# Two return values: the call gives back two refs (num_returns, formerly num_return_vals).
@ray.remote(num_returns=2)
def generate_fake_x_y_data(num_data, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random(num_data)
    y = x * 0.1 + 0.3
    return x, y


def main():
    ray.init(num_cpus=2)

    # 1. Calling them: a regular call returns the value, a remote call a ref at once.
    print("regular_function()                =", regular_function())
    ref = remote_function.remote()
    print("remote_function.remote()          =", ref)
    assert isinstance(ref, ray.ObjectRef)
    value = ray.get(ref)
    print("ray.get(remote_function.remote()) =", value)
    assert value == regular_function() == 1

    # 2. Serial versus parallel: four calls of a function that takes 0.5 s.
    ray.get(slow_remote_function.remote())  # let the workers start before timing
    start = time.perf_counter()
    serial = [slow_regular_function() for _ in range(4)]
    serial_seconds = time.perf_counter() - start
    start = time.perf_counter()
    parallel = ray.get([slow_remote_function.remote() for _ in range(4)])
    parallel_seconds = time.perf_counter() - start
    print(f"4 calls one after the other: {serial_seconds:.2f} s")
    print(f"4 calls as tasks on 2 CPUs:  {parallel_seconds:.2f} s")
    assert serial == parallel == [1, 1, 1, 1]

    # 3. The zeros / multiply task graph. x_id and y_id start in parallel;
    #    z_id is scheduled only after both have finished.
    x_id = zeros.remote((100, 100))
    y_id = zeros.remote((100, 100))
    z_id = multiply.remote(x_id, y_id)
    z = ray.get(z_id)
    print("multiply(zeros, zeros): shape", z.shape, "sum", z.sum())
    assert z.shape == (100, 100) and not z.any()

    # The same graph with ones, so the product is not trivial: every entry is 100.
    w = ray.get(multiply.remote(ones.remote((100, 100)), ones.remote((100, 100))))
    print("multiply(ones, ones):   shape", w.shape, "every entry", w[0, 0])
    assert w.shape == (100, 100) and (w == 100.0).all()

    # 4. Dependencies: y1_id's task runs only after x1_id's and receives its value, 1.
    x1_id = f.remote(1)
    print("ray.get(f.remote(1))     =", ray.get(x1_id))
    y1_id = f.remote(x1_id)
    print("ray.get(f.remote(x1_id)) =", ray.get(y1_id))
    assert ray.get(x1_id) == 1 and ray.get(y1_id) == 1

    # A chain of ten dependent tasks, built before any of them ran.
    ref = f.remote(0)
    for _ in range(10):
        ref = f.remote(ref)
    assert ray.get(ref) == 0

    # 5. Two return values: one ref for x, one for y.
    x_ref, y_ref = generate_fake_x_y_data.remote(100, seed=0)
    x, y = ray.get([x_ref, y_ref])
    print(f"generate_fake_x_y_data: {len(x)} points, y = 0.1 * x + 0.3 (first: {y[0]:.4f})")
    expected_x = np.random.default_rng(0).random(100)
    assert np.array_equal(x, expected_x)
    assert np.allclose(y, 0.1 * expected_x + 0.3)

    ray.shutdown()
    print("remote_functions: all checks passed")


if __name__ == "__main__":
    main()
