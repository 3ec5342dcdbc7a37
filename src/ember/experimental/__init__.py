"""Helpers that Ray keeps under ``ray.experimental``: moving a model's weights between actors,
and ``tqdm_ray`` (progress bars in tasks and actors, drawn on the driver).

A TensorFlow graph or a PyTorch module does not pickle well, and building one takes time, so
each actor builds the same model once and only the weights travel, as a dict of numpy arrays
or one flat vector. TensorFlow and PyTorch load when a class is first used, so importing this
package stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ember.experimental import tf_utils, torch_utils, tqdm_ray
    from ember.experimental.tf_utils import TensorFlowVariables
    from ember.experimental.torch_utils import TorchVariables

_WHERE = {
    "TensorFlowVariables": "ember.experimental.tf_utils",
    "TorchVariables": "ember.experimental.torch_utils",
}
_SUBMODULES = ("tf_utils", "torch_utils", "tqdm_ray")

__all__ = ["TensorFlowVariables", "TorchVariables", "tf_utils", "torch_utils", "tqdm_ray"]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"ember.experimental.{name}")
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ember.experimental' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
