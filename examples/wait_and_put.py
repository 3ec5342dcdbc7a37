"""``ray.wait`` for the first results, ``ray.put`` to share one array.

From the seeds:

* ``ray.wait([f.remote(i) for i in range(100)], num_returns=10)`` returns as
  soon as 10 of the 100 tasks are done: ``(ready, remaining)`` with 10 and 90
  refs. (The 2017 docs spelled it ``num_results``; today it is
  ``num_returns``, and ``timeout`` is in seconds, not milliseconds.)
* ``x_id = ray.put(x)`` copies a numpy array into the object store once; ten
  tasks given ``x_id`` all read that one copy, where ``f.remote(x)`` ten times
  would copy the array ten times.

Run:  python examples/wait_and_put.py
"""

import time

import numpy as np

import ember as ray


@ray.remote
def f(i):
    return i


@ray.remote
def slow(seconds):
    time.sleep(seconds)
    return seconds


@ray.remote
def total(x):
    # x arrives as a numpy array, not as a ref.
    return float(x.sum()), x.shape


def main():
    ray.init(num_cpus=2)

    # ray.wait: the first 10 of 100 tasks.
    object_refs = [f.remote(i) for i in range(100)]
    ready, remaining = ray.wait(object_refs, num_returns=10)
    print(f"ray.wait(num_returns=10): {len(ready)} ready, {len(remaining)} remaining")
    assert len(ready) == 10 and len(remaining) == 90
    assert set(ready) | set(remaining) == set(object_refs)
    assert not set(ready) & set(remaining)
    ready_values = ray.get(ready)
    print("values of the ready refs:", sorted(ready_values))
    assert all(0 <= value < 100 for value in ready_values)
    assert sorted(ray.get(object_refs)) == list(range(100))

    # Waiting for all of them returns every ref as ready.
    ready, remaining = ray.wait(object_refs, num_returns=len(object_refs))
    assert len(ready) == 100 and remaining == []

    # timeout is in seconds: a task sleeping 1.5 s is not ready after 0.2 s.
    slow_ref = slow.remote(1.5)
    start = time.perf_counter()
    ready, remaining = ray.wait([slow_ref], num_returns=1, timeout=0.2)
    waited = time.perf_counter() - start
    print(f"ray.wait(timeout=0.2) on a 1.5 s task: ready={ready}, returned after {waited:.2f} s")
    assert ready == [] and remaining == [slow_ref]
    assert waited < 1.5
    ready, remaining = ray.wait([slow_ref], num_returns=1, timeout=30)
    assert ready == [slow_ref] and remaining == []
    assert ray.get(slow_ref) == 1.5

    # ray.put: one copy of the array, shared by ten tasks.
    x = np.arange(1000, dtype=np.float64)
    x_id = ray.put(x)
    print("ray.put(x) ->", x_id)
    assert isinstance(x_id, ray.ObjectRef)
    np.testing.assert_array_equal(ray.get(x_id), x)
    results = ray.get([total.remote(x_id) for _ in range(10)])
    print(f"10 tasks read the shared array: sum={results[0][0]}, shape={results[0][1]}")
    assert results == [(float(x.sum()), (1000,))] * 10

    # Passing the array itself works too; it is then copied for each call.
    assert ray.get(total.remote(x)) == (499500.0, (1000,))

    ray.shutdown()
    print("wait_and_put: all checks passed")


if __name__ == "__main__":
    main()
