"""Progress bars: bars drawn inside tasks and an actor show on the driver, and one bar
follows many tasks to the end.

* ``from ember.experimental.tqdm_ray import tqdm`` (Ray's ``ray.experimental.tqdm_ray``) in
  place of ``from tqdm import tqdm``: each bar a task or an actor draws shows on the driver
  as one ``tqdm`` bar of its own, below the others, and what the tasks print is written
  above the bars rather than through them.
* ``ray.util.progress(refs)`` shows one bar on the driver that advances as the refs finish,
  and returns the refs. It is Ember's (like Dask's ``progress()``); Ray has no such helper.

Run:  python examples/progress_bars.py
"""

import time

import ember as ray
from ember.experimental.tqdm_ray import tqdm


@ray.remote
def train(name, steps):
    loss = 1.0
    for step in tqdm(range(steps), desc=name):
        time.sleep(0.02)
        loss *= 0.9
        if step == steps // 2:
            print(f"{name}: halfway, loss {loss:.3f}")
    return loss


@ray.remote
class Evaluator:
    def evaluate(self, count):
        bar = tqdm(total=count, desc="evaluating")
        correct = 0
        for i in range(count):
            time.sleep(0.01)
            correct += i % 4 != 0
            bar.update(1)
        bar.close()
        return correct / count


@ray.remote
def square(x):
    time.sleep(0.002)
    return x * x


def main():
    ray.init(num_cpus=2)

    # Two tasks and an actor, each with its own bar on the driver.
    evaluator = Evaluator.remote()
    losses = [train.remote("model a", 40), train.remote("model b", 60)]
    accuracy = evaluator.evaluate.remote(80)
    losses, accuracy = ray.get(losses), ray.get(accuracy)
    print(f"losses {losses[0]:.4f} and {losses[1]:.4f}, accuracy {accuracy:.2f}")
    assert abs(losses[0] - 0.9**40) < 1e-9 and abs(losses[1] - 0.9**60) < 1e-9
    assert accuracy == 0.75

    # One bar over 200 tasks, advancing as they finish.
    refs = ray.util.progress([square.remote(i) for i in range(200)], desc="squares")
    total = sum(ray.get(refs))
    print("sum of 200 squares:", total)
    assert total == sum(i * i for i in range(200))

    ray.shutdown()
    print("progress_bars: all checks passed")


if __name__ == "__main__":
    main()
