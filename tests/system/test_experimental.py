"""Weights travel between Ember actors through the object store, as the weight helpers intend:
each actor builds the same model, and only a dict of arrays or a flat vector moves. The models
hold 33,665 float32 numbers (135 KB), enough for the object store to keep them in shared memory
and hand readers read-only arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import ember

# Ember's helpers: Ray's ray.experimental has no TorchVariables, nor these names at its top.
pytestmark = pytest.mark.ember_only

SIZE = 3 * 128 + 128 + 128 * 256 + 256 + 256 + 1  # 33,665 numbers


class Worker:
    """Holds a model and its weight helper; subclasses build the model."""

    variables: Any

    def get_weights(self) -> dict[str, Any]:
        return self.variables.get_weights()

    def set_weights(self, weights: dict[str, Any]) -> None:
        self.variables.set_weights(weights)

    def get_flat(self) -> Any:
        return self.variables.get_flat()

    def set_flat(self, flat: Any) -> None:
        self.variables.set_flat(flat)


@ember.remote
class TorchWorker(Worker):
    def __init__(self, seed: int) -> None:
        import torch

        from ember.experimental import TorchVariables

        torch.manual_seed(seed)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(3, 128),
            torch.nn.Tanh(),
            torch.nn.Linear(128, 256),
            torch.nn.Linear(256, 1),
        )
        self.variables = TorchVariables(self.model)

    def predict(self, x: Any) -> Any:
        import torch

        with torch.no_grad():
            return self.model(torch.as_tensor(x)).numpy()


@ember.remote
class KerasWorker(Worker):
    def __init__(self, seed: int) -> None:
        import tensorflow as tf

        from ember.experimental import TensorFlowVariables

        tf.keras.utils.set_random_seed(seed)
        self.model = tf.keras.Sequential(
            [
                tf.keras.Input((3,)),
                tf.keras.layers.Dense(128, activation="tanh"),
                tf.keras.layers.Dense(256),
                tf.keras.layers.Dense(1),
            ]
        )
        self.variables = TensorFlowVariables(self.model)

    def predict(self, x: Any) -> Any:
        return self.model(x).numpy()


@pytest.mark.parametrize(
    ("worker", "library"), [(TorchWorker, "torch"), (KerasWorker, "tensorflow")]
)
def test_weights_pass_between_actors_through_the_object_store(
    ray: Any, worker: Any, library: str
) -> None:
    pytest.importorskip(library)
    x = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    source, target = worker.remote(0), worker.remote(1)
    assert not np.allclose(*ray.get([source.predict.remote(x), target.predict.remote(x)]))

    # A dict of arrays, handed from actor to actor as a reference: the driver never reads it.
    ray.get(target.set_weights.remote(source.get_weights.remote()))
    first, second = ray.get([source.predict.remote(x), target.predict.remote(x)])
    np.testing.assert_array_equal(first, second)

    # A flat vector, put once and read by both (as read-only arrays from shared memory).
    flat = ray.get(source.get_flat.remote())
    assert flat.size == SIZE
    flat_id = ray.put(np.linspace(-1.0, 1.0, flat.size).astype(flat.dtype))
    assert not ray.get(flat_id).flags.writeable
    ray.get([source.set_flat.remote(flat_id), target.set_flat.remote(flat_id)])
    first, second = ray.get([source.predict.remote(x), target.predict.remote(x)])
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(ray.get(target.get_flat.remote()), ray.get(flat_id))
