"""Get and set a PyTorch module's parameters and buffers by name, to pass them between actors.

The twin of ``TensorFlowVariables`` for ``torch.nn.Module``: the same methods, the same checks
and the same flat layout. Names are those of ``named_parameters()`` followed by
``named_buffers()`` (running statistics travel with the weights); tensors are looked up by
name on every call, so a buffer the module replaces rather than updates is still found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from ember.experimental._weights import Weights

if TYPE_CHECKING:
    import torch


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "TorchVariables needs PyTorch, which is not installed: pip install 'ember[rllib]'"
        ) from error
    return torch


class TorchVariables(Weights):
    """A module's parameters and buffers, with their values as numpy arrays by name.

    Values are copied to the CPU when read and to the tensors' devices and dtypes when set.
    A flat vector has the common dtype of all entries (float64 when an integer buffer, such
    as batch norm's step count, sits beside float32 parameters).
    """

    def __init__(self, module: torch.nn.Module) -> None:
        torch = _import_torch()
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"TorchVariables takes a torch.nn.Module, not {type(module).__name__}")
        self.module = module
        self._parameters = [name for name, _ in module.named_parameters()]
        self._buffers = [name for name, _ in module.named_buffers()]
        tensors = self._tensors()
        if not tensors:
            raise ValueError(
                f"TorchVariables: the {type(module).__name__} module has no parameters or "
                "buffers (is it built? lazy modules get them on their first call)"
            )
        for name, tensor in zip(self._parameters + self._buffers, tensors, strict=True):
            if isinstance(tensor, torch.nn.parameter.UninitializedTensorMixin):
                raise ValueError(
                    f"TorchVariables: {name} is not initialized yet; call the module once first"
                )
        super().__init__(
            self._parameters + self._buffers,
            [tuple(t.shape) for t in tensors],
            [torch.empty(0, dtype=t.dtype).numpy().dtype for t in tensors],
        )

    def _tensors(self) -> list[torch.Tensor]:
        return [self.module.get_parameter(n) for n in self._parameters] + [
            self.module.get_buffer(n) for n in self._buffers
        ]

    def _read(self) -> list[npt.NDArray[Any]]:
        return [t.detach().cpu().numpy().copy() for t in self._tensors()]

    def _write(self, values: list[npt.NDArray[Any]]) -> None:
        torch = _import_torch()
        with torch.no_grad():
            for tensor, value in zip(self._tensors(), values, strict=True):
                tensor.copy_(torch.tensor(value))  # a copy: object-store arrays are read-only
