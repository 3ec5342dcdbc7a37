"""Actors: remote objects with state.

From the seeds:

* ``Example``: an actor holding a value, with ``set`` and ``get``. Its methods
  run one at a time, in the order one caller submitted them.
* ``Simulator``: an actor wrapping an environment; four ``step(0)`` calls return
  four futures at once. The 2018 blog post used ``gym`` and ``"Pong-v0"``; this
  uses ``gymnasium`` and ``"CartPole-v1"``, which needs no extra packages. When
  gymnasium is not installed, a tiny built-in environment with the same
  ``reset`` / ``step`` interface takes its place.
* ``Actor``: one actor handle passed to three tasks, which all call its method.

Run:  python examples/actors.py
"""

import numpy as np

import ember as ray


@ray.remote
class Example:
    def __init__(self, x):
        self.x = x

    def set(self, x):
        self.x = x

    def get(self):
        return self.x


class TinyLineEnv:
    """A stand-in for a gymnasium environment: a point on a line.

    Action 0 moves it one step left, action 1 one step right. Every step is
    worth a reward of 1; an episode ends when the point is 10 steps away.
    """

    def __init__(self):
        self.position = 0

    def reset(self, seed=None):
        self.position = 0
        return np.array([self.position], dtype=np.float32), {}

    def step(self, action):
        self.position += 1 if action == 1 else -1
        observation = np.array([self.position], dtype=np.float32)
        terminated = abs(self.position) >= 10
        return observation, 1.0, terminated, False, {}


def gymnasium_available():
    try:
        import gymnasium  # noqa: F401
    except ImportError:
        return False
    return True


def make_env():
    """CartPole-v1 from gymnasium if it is installed, else TinyLineEnv."""
    if gymnasium_available():
        import gymnasium

        return "CartPole-v1", gymnasium.make("CartPole-v1")
    return "TinyLineEnv", TinyLineEnv()


@ray.remote
class Simulator:
    def __init__(self):
        self.name, self.env = make_env()
        self.env.reset(seed=0)

    def env_name(self):
        return self.name

    def step(self, action):
        return self.env.step(action)


@ray.remote
class Actor:
    def __init__(self):
        self.calls = 0

    def method(self):
        self.calls += 1
        return self.calls

    def num_calls(self):
        return self.calls


@ray.remote
def f(actor):
    # Call a method of the actor whose handle this task was given ...
    x_id = actor.method.remote()
    # ... and block until it has run.
    return ray.get(x_id)


def main():
    ray.init(num_cpus=2)

    # Example: set and get.
    e = Example.remote(1)
    print("e.get()         ->", ray.get(e.get.remote()))
    assert ray.get(e.get.remote()) == 1
    e.set.remote(2)  # not waited for: methods from one caller run in order
    print("after e.set(2)  ->", ray.get(e.get.remote()))
    assert ray.get(e.get.remote()) == 2
    assert ray.get(e.set.remote(3)) is None
    assert ray.get(e.get.remote()) == 3

    # Two actors are two separate states.
    a, b = Example.remote("a"), Example.remote("b")
    assert ray.get([a.get.remote(), b.get.remote()]) == ["a", "b"]

    # Simulator: four steps, submitted without waiting.
    if not gymnasium_available():
        print("gymnasium is not installed: the Simulator uses the built-in TinyLineEnv")
    simulator = Simulator.remote()
    name = ray.get(simulator.env_name.remote())
    observations = []
    for _ in range(4):
        # Take action 0 in the simulator. This call does not block and
        # it returns a future.
        observations.append(simulator.step.remote(0))
    steps = ray.get(observations)
    print(f"Simulator ({name}), four steps of action 0:")
    for observation, reward, terminated, _truncated, _info in steps:
        print(f"  observation={np.round(observation, 4)} reward={reward} done={terminated}")
    assert len(steps) == 4
    assert all(reward == 1.0 for _, reward, _, _, _ in steps)
    assert not any(terminated or truncated for _, _, terminated, truncated, _ in steps)
    if name == "TinyLineEnv":
        assert [float(step[0][0]) for step in steps] == [-1.0, -2.0, -3.0, -4.0]
    else:
        # Pushing left makes the cart's velocity (observation[1]) fall at each step.
        velocities = [float(step[0][1]) for step in steps]
        assert all(v2 < v1 for v1, v2 in zip(velocities, velocities[1:], strict=False)), velocities

    # One actor handle, three tasks calling its method.
    actor = Actor.remote()
    results = ray.get([f.remote(actor), f.remote(actor), f.remote(actor)])
    print("the three tasks saw call numbers", sorted(results))
    assert sorted(results) == [1, 2, 3]
    assert ray.get(actor.num_calls.remote()) == 3

    ray.shutdown()
    print("actors: all checks passed")


if __name__ == "__main__":
    main()
