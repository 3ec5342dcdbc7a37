"""TensorFlowVariables: weights by name and as flat vectors, in graph mode and eager mode.

Graph-mode tests build their graphs inside ``tf.Graph().as_default()``, so eager execution
stays on for the rest of the process (and the eager tests)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from ember.experimental import TensorFlowVariables  # noqa: E402
from ember.experimental.tf_utils import TensorFlowVariables as FromModule  # noqa: E402


class SeedNetwork:
    """The seed's network: y = w * x + b, a squared loss and a gradient-descent step."""

    def __init__(self, seed: int = 0) -> None:
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.set_random_seed(seed)
            self.x = tf.compat.v1.placeholder(tf.float32, [None])
            self.y = tf.compat.v1.placeholder(tf.float32, [None])
            self.w = tf.Variable(tf.compat.v1.random_uniform([1], -1.0, 1.0))
            self.b = tf.Variable(tf.zeros([1]))
            self.unused = tf.Variable(tf.ones([2, 3]))  # the loss does not depend on it
            self.prediction = self.w * self.x + self.b
            self.loss = tf.reduce_mean(tf.square(self.prediction - self.y))
            self.train = tf.compat.v1.train.GradientDescentOptimizer(0.5).minimize(self.loss)
            init = tf.compat.v1.global_variables_initializer()
        self.sess = tf.compat.v1.Session(graph=self.graph)
        self.sess.run(init)

    def predict(self, x: list[float]) -> Any:
        return self.sess.run(self.prediction, feed_dict={self.x: x})


@pytest.fixture
def net() -> Any:
    network = SeedNetwork()
    yield network
    network.sess.close()


def test_both_names_are_one_class() -> None:
    assert FromModule is TensorFlowVariables


def test_graph_walk_finds_the_variables_the_loss_depends_on(net: Any) -> None:
    variables = TensorFlowVariables(net.loss, net.sess)
    assert list(variables.get_weights()) == ["Variable", "Variable_1"]
    assert variables.variables == {"Variable": net.w, "Variable_1": net.b}
    assert variables.get_flat_size() == 2
    # The training op depends on the same two, through the gradients and the updates.
    assert list(TensorFlowVariables(net.train, net.sess).get_weights()) == [
        "Variable",
        "Variable_1",
    ]
    assert list(TensorFlowVariables([net.loss, net.unused], net.sess).get_weights()) == [
        "Variable",
        "Variable_1",
        "Variable_2",
    ]


def test_graph_round_trip_of_weights_and_flat_vectors(net: Any) -> None:
    variables = TensorFlowVariables(net.loss, net.sess)
    variables.set_weights({"Variable": np.array([2.0]), "Variable_1": np.array([3.0])})
    weights = variables.get_weights()
    assert {k: v.tolist() for k, v in weights.items()} == {"Variable": [2.0], "Variable_1": [3.0]}
    assert all(v.dtype == np.float32 for v in weights.values())
    np.testing.assert_allclose(net.predict([1.0, 2.0]), [5.0, 7.0])
    variables.set_flat(np.array([-1.0, 0.5]))
    np.testing.assert_array_equal(variables.get_flat(), np.array([-1.0, 0.5], np.float32))
    np.testing.assert_allclose(net.predict([2.0]), [-1.5])


def test_setting_weights_adds_no_nodes_to_the_graph(net: Any) -> None:
    variables = TensorFlowVariables(net.loss, net.sess)
    size = len(net.graph.get_operations())
    for i in range(5):
        variables.set_weights({"Variable": [float(i)], "Variable_1": [0.0]})
        variables.set_flat(variables.get_flat())
        variables.get_weights()
    assert len(net.graph.get_operations()) == size


def test_weights_move_between_two_copies_of_a_graph() -> None:
    """The seed's pattern: each worker builds the same graph, only the weights travel."""
    first, second = SeedNetwork(seed=0), SeedNetwork(seed=1)
    source = TensorFlowVariables(first.loss, first.sess)
    target = TensorFlowVariables(second.loss, second.sess)
    assert first.predict([1.0]) != second.predict([1.0])
    target.set_weights(source.get_weights())
    np.testing.assert_array_equal(first.predict([0.5, 3.0]), second.predict([0.5, 3.0]))
    first.sess.run(first.train, feed_dict={first.x: [1.0], first.y: [2.0]})
    target.set_flat(source.get_flat())
    np.testing.assert_array_equal(first.predict([0.5, 3.0]), second.predict([0.5, 3.0]))


def test_reference_variables_and_control_inputs_are_found() -> None:
    graph = tf.Graph()
    with graph.as_default():
        ref = tf.compat.v1.Variable([1.0, 2.0], use_resource=False)
        counter = tf.Variable(0.0)
        with tf.control_dependencies([counter.assign_add(1.0)]):
            out = ref * 2.0
        init = tf.compat.v1.global_variables_initializer()
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(init)
        variables = TensorFlowVariables(out, sess)
        assert variables.variables == {ref.op.name: ref, counter.op.name: counter}
        variables.set_flat([5.0, 6.0, 7.0])
        assert variables.get_flat().tolist() == [5.0, 6.0, 7.0]


def test_input_variables_are_added(net: Any) -> None:
    variables = TensorFlowVariables(net.loss, net.sess, input_variables=[net.unused])
    assert list(variables.get_weights()) == ["Variable", "Variable_1", "Variable_2"]
    assert variables.get_flat_size() == 8
    np.testing.assert_array_equal(variables.get_weights()["Variable_2"], np.ones((2, 3)))


def test_session_given_later(net: Any) -> None:
    variables = TensorFlowVariables(net.loss)
    with pytest.raises(RuntimeError, match="set_session"):
        variables.get_weights()
    variables.set_session(net.sess)
    assert variables.get_flat_size() == 2
    assert variables.get_flat().shape == (2,)


def test_session_of_another_graph_is_refused(net: Any) -> None:
    other = SeedNetwork()
    with pytest.raises(ValueError, match="another graph"):
        TensorFlowVariables(net.loss, other.sess)
    with pytest.raises(ValueError, match="different graphs"):
        TensorFlowVariables([net.loss, other.loss], net.sess)


def test_set_weights_names_unknown_and_missing_variables(net: Any) -> None:
    variables = TensorFlowVariables(net.loss, net.sess)
    with pytest.raises(ValueError, match=r"unknown names \['bias'\] and missing names") as info:
        variables.set_weights({"Variable": [1.0], "bias": [0.0]})
    assert "['Variable_1']" in str(info.value)
    with pytest.raises(ValueError, match=r"missing names \['Variable_1'\]"):
        variables.set_weights({"Variable": [1.0]})
    with pytest.raises(TypeError, match="set_flat"):
        variables.set_weights([1.0, 2.0])  # type: ignore[arg-type]


def test_set_weights_names_wrong_shapes(net: Any) -> None:
    variables = TensorFlowVariables(net.loss, net.sess)
    before = variables.get_flat()
    with pytest.raises(ValueError, match=r"Variable_1 has shape \(2,\), expected \(1,\)"):
        variables.set_weights({"Variable": [1.0], "Variable_1": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"vector of 2 numbers .* shape \(3,\)"):
        variables.set_flat(np.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(1, 2\)"):
        variables.set_flat(np.zeros((1, 2)))
    np.testing.assert_array_equal(variables.get_flat(), before)  # nothing was set


def test_an_output_without_variables_is_refused() -> None:
    graph = tf.Graph()
    with graph.as_default():
        out = tf.constant(1.0) * 2.0
    with pytest.raises(ValueError, match="found no variables"):
        TensorFlowVariables(out)


# ----------------------------------------------------------------------------- eager mode


class Line(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable([[1.0, 2.0]])
        self.b = tf.Variable(0.0)
        self.scale = tf.Variable(1.0)  # two unnamed variables share the name "Variable"

    def __call__(self, x: Any) -> Any:
        return self.scale * tf.reduce_sum(self.w * x) + self.b


def test_eager_module_round_trip() -> None:
    line = Line()
    variables = TensorFlowVariables(line)
    weights = variables.get_weights()
    # tf.Module lists variables by attribute name: b, scale, w.
    assert list(weights) == ["Variable", "Variable_1", "Variable_2"]
    assert [w.shape for w in weights.values()] == [(), (), (1, 2)]
    assert variables.get_flat_size() == 4
    variables.set_flat([1.0, 2.0, 3.0, 4.0])
    assert float(line(tf.constant([[1.0, 1.0]]))) == 2.0 * 7.0 + 1.0
    variables.set_weights(weights)
    assert variables.get_flat().tolist() == [0.0, 1.0, 1.0, 2.0]


def test_eager_list_of_variables() -> None:
    a, b = tf.Variable([1.0, 2.0], name="a"), tf.Variable(3, name="b")
    variables = TensorFlowVariables([a, b])
    assert {k: v.tolist() for k, v in variables.get_weights().items()} == {
        "a": [1.0, 2.0],
        "b": 3,
    }
    variables.set_weights({"a": np.array([5.0, 6.0]), "b": np.int64(7)})
    assert a.numpy().tolist() == [5.0, 6.0] and int(b.numpy()) == 7


def test_keras_model_round_trip_and_copies() -> None:
    def build(seed: int) -> Any:
        tf.keras.utils.set_random_seed(seed)
        return tf.keras.Sequential(
            [
                tf.keras.Input((3,)),
                tf.keras.layers.Dense(4, activation="tanh"),
                tf.keras.layers.BatchNormalization(),
                tf.keras.layers.Dense(1),
            ]
        )

    first, second = build(0), build(1)
    source, target = TensorFlowVariables(first), TensorFlowVariables(second)
    weights = source.get_weights()
    assert len(weights) == 8  # kernels, biases and batch norm's four, moving ones included
    assert all(not name.endswith(":0") for name in weights)
    assert len(set(weights)) == 8
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    assert not np.allclose(first(x), second(x))
    target.set_weights(dict(zip(target.get_weights(), weights.values(), strict=True)))
    np.testing.assert_allclose(first(x), second(x))
    target.set_flat(np.zeros(target.get_flat_size()))
    np.testing.assert_array_equal(second(x), np.zeros((5, 1)))
    # get_weights hands out copies: changing them leaves the model alone.
    kernel = next(iter(weights))
    source.get_weights()[kernel][...] = 42.0
    np.testing.assert_array_equal(source.get_weights()[kernel], weights[kernel])


def test_eager_errors() -> None:
    with pytest.raises(TypeError, match="eager tensor"):
        TensorFlowVariables(tf.constant(1.0))
    with pytest.raises(TypeError, match="not int"):
        TensorFlowVariables(3)
    unbuilt = tf.keras.Sequential([tf.keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="found no variables"):
        TensorFlowVariables(unbuilt)
    line = Line()
    with pytest.raises(ValueError, match="no session"):
        TensorFlowVariables(line, sess=object())
    with pytest.raises(ValueError, match="no session"):
        TensorFlowVariables(line).set_session(object())
    with pytest.raises(ValueError, match=r"Variable_2 has shape \(2,\), expected \(1, 2\)"):
        TensorFlowVariables(line).set_weights(
            {"Variable": 0.0, "Variable_1": 0.0, "Variable_2": [1.0, 2.0]}
        )


def test_missing_tensorflow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow now fails
    with pytest.raises(ImportError, match=r"pip install 'ember\[tensorflow\]'"):
        TensorFlowVariables([1.0])
