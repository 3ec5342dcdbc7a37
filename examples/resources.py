"""Resources: GPUs and custom resources.

From the seeds: ``ray.init(num_gpus=4)`` makes the scheduler believe the
machine has four GPUs, even when it has none. A task or actor that asks for
GPUs is given IDs out of [0, 1, 2, 3], which ``ray.get_gpu_ids()`` returns
inside it (and ``CUDA_VISIBLE_DEVICES`` is set to match). Custom resources are
named quantities given to ``ray.init(resources=...)`` and asked for by
``@ray.remote(resources=...)``.

No GPU is needed or used: only the bookkeeping is shown.

Run:  python examples/resources.py
"""

import os

import ember as ray


@ray.remote(num_gpus=1)
def f():
    return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")


@ray.remote(num_gpus=2)
class Foo:
    def __init__(self):
        self.gpu_ids = ray.get_gpu_ids()

    def gpu_ids_at_start(self):
        return self.gpu_ids

    def gpu_ids_now(self):
        return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")


@ray.remote(resources={"CustomResource2": 1})
def g():
    return 1


@ray.remote(resources={"CustomResource1": 1})
def h(i):
    return i * i


def main():
    ray.init(num_cpus=2, num_gpus=4, resources={"CustomResource1": 1, "CustomResource2": 4})

    resources = ray.cluster_resources()
    names = ("CPU", "GPU", "CustomResource1", "CustomResource2")
    shown = {name: resources.get(name) for name in names}
    print("cluster resources:", shown)
    assert shown == {"CPU": 2.0, "GPU": 4.0, "CustomResource1": 1.0, "CustomResource2": 4.0}

    # The driver itself holds no GPU.
    assert ray.get_gpu_ids() == []

    # An actor holding two GPUs for its lifetime.
    foo = Foo.remote()
    actor_ids = ray.get(foo.gpu_ids_at_start.remote())
    print("Foo (num_gpus=2) got GPU IDs", actor_ids)
    assert len(actor_ids) == 2 and len(set(actor_ids)) == 2
    assert set(actor_ids) <= {0, 1, 2, 3}
    ids_now, visible = ray.get(foo.gpu_ids_now.remote())
    assert ids_now == actor_ids
    assert visible == ",".join(str(i) for i in actor_ids)

    # Tasks asking for one GPU each get one of the two the actor does not hold.
    task_results = ray.get([f.remote() for _ in range(4)])
    for ids, visible in task_results:
        print("f (num_gpus=1) got GPU IDs", ids, "CUDA_VISIBLE_DEVICES =", visible)
        assert len(ids) == 1
        assert ids[0] in {0, 1, 2, 3} and ids[0] not in actor_ids
        assert visible == str(ids[0])

    # Custom resources.
    print("g (CustomResource2=1) ->", ray.get(g.remote()))
    assert ray.get([g.remote() for _ in range(8)]) == [1] * 8
    # Only one unit of CustomResource1 exists: these run one at a time.
    squares = ray.get([h.remote(i) for i in range(5)])
    print("h (CustomResource1=1) ->", squares)
    assert squares == [0, 1, 4, 9, 16]

    ray.shutdown()
    print("resources: all checks passed")


if __name__ == "__main__":
    main()
