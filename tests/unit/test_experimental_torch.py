"""TorchVariables: a module's parameters and buffers by name and as flat vectors."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ember.experimental import TorchVariables  # noqa: E402
from ember.experimental.torch_utils import TorchVariables as FromModule  # noqa: E402

NAMES = [
    "0.weight",
    "0.bias",
    "1.weight",
    "1.bias",
    "1.running_mean",
    "1.running_var",
    "1.num_batches_tracked",
]


def build(seed: int) -> Any:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    model(torch.randn(8, 3))  # training mode: the running statistics move
    return model.eval()


def test_both_names_are_one_class() -> None:
    assert FromModule is TorchVariables


def test_parameters_then_buffers_by_name() -> None:
    variables = TorchVariables(build(0))
    weights = variables.get_weights()
    assert list(weights) == NAMES
    assert weights["0.weight"].shape == (2, 3) and weights["0.weight"].dtype == np.float32
    assert (
        weights["1.num_batches_tracked"].shape == () and int(weights["1.num_batches_tracked"]) == 1
    )
    assert variables.get_flat_size() == 6 + 2 + 2 + 2 + 2 + 2 + 1


def test_weights_move_between_two_copies_of_a_module() -> None:
    first, second = build(0), build(1)
    x = torch.randn(4, 3)
    assert not torch.allclose(first(x), second(x))
    TorchVariables(second).set_weights(TorchVariables(first).get_weights())
    torch.testing.assert_close(first(x), second(x))
    assert int(second[1].num_batches_tracked) == 1


def test_flat_round_trip_keeps_each_dtype() -> None:
    variables = TorchVariables(build(0))
    flat = variables.get_flat()
    assert flat.dtype == np.float64  # float32 parameters beside an int64 step count
    target = TorchVariables(build(1))
    target.set_flat(flat)
    assert target.module[1].num_batches_tracked.dtype == torch.int64
    for name, value in target.get_weights().items():
        np.testing.assert_array_equal(value, variables.get_weights()[name], err_msg=name)
    target.set_flat(np.arange(target.get_flat_size()))
    np.testing.assert_array_equal(target.module[0].bias.detach().numpy(), [6.0, 7.0])


def test_get_weights_returns_copies() -> None:
    model = build(0)
    weights = TorchVariables(model).get_weights()
    weights["0.bias"][...] = 42.0
    assert not (model[0].bias == 42.0).any()


def test_read_only_arrays_are_accepted() -> None:
    """Arrays from the object store are read-only views."""
    variables = TorchVariables(build(0))
    weights = {name: np.ones_like(value) for name, value in variables.get_weights().items()}
    for value in weights.values():
        value.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        variables.set_weights(weights)
    assert variables.get_flat().tolist() == [1.0] * variables.get_flat_size()


def test_a_buffer_replaced_by_the_module_is_still_found() -> None:
    model = build(0)
    variables = TorchVariables(model)
    model[1].running_mean = torch.zeros(2)  # a new tensor, not an in-place update
    variables.set_flat(np.full(variables.get_flat_size(), 3.0))
    assert model[1].running_mean.tolist() == [3.0, 3.0]


def test_gradients_and_devices_are_left_alone() -> None:
    model = build(0)
    variables = TorchVariables(model)
    variables.set_flat(np.zeros(variables.get_flat_size()))
    assert model[0].weight.requires_grad and model[0].weight.grad is None
    assert model[0].weight.device.type == "cpu"


def test_set_weights_errors_name_what_is_wrong() -> None:
    variables = TorchVariables(build(0))
    weights = variables.get_weights()
    with pytest.raises(ValueError, match=r"unknown names \['2.weight'\]"):
        variables.set_weights({**weights, "2.weight": np.zeros(1)})
    del weights["1.running_var"]
    with pytest.raises(ValueError, match=r"missing names \['1.running_var'\]"):
        variables.set_weights(weights)
    weights["1.running_var"] = np.zeros((2, 1))
    with pytest.raises(ValueError, match=r"1.running_var has shape \(2, 1\), expected \(2,\)"):
        variables.set_weights(weights)
    with pytest.raises(ValueError, match=r"vector of 17 numbers"):
        variables.set_flat(np.zeros(16))


def test_construction_errors() -> None:
    with pytest.raises(TypeError, match="torch.nn.Module, not dict"):
        TorchVariables({})
    with pytest.raises(ValueError, match="no parameters or buffers"):
        TorchVariables(torch.nn.ReLU())
    with pytest.raises(ValueError, match="not initialized yet"):
        TorchVariables(torch.nn.LazyLinear(2))


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    with pytest.raises(ImportError, match=r"pip install 'ember\[rllib\]'"):
        TorchVariables(object())
