"""What TensorFlowVariables and TorchVariables share: checking and flattening weights.

A subclass knows its variables' names, shapes and dtypes, and how to read and write all of
them at once; everything users call is built on those two operations, so both frameworks
check input the same way and lay out flat vectors the same way (variables in order, each
flattened in C order).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


class Weights:
    """A fixed, ordered set of named variables whose values travel as numpy arrays."""

    def __init__(
        self, names: Sequence[str], shapes: Sequence[tuple[int, ...]], dtypes: Sequence[Any]
    ) -> None:
        self._names = tuple(names)
        self._shapes = tuple(shapes)
        self._dtypes = tuple(np.dtype(d) for d in dtypes)
        self._sizes = tuple(math.prod(shape) for shape in self._shapes)

    def _read(self) -> list[npt.NDArray[Any]]:
        """The variables' current values, in order, as arrays the caller may keep."""
        raise NotImplementedError

    def _write(self, values: list[npt.NDArray[Any]]) -> None:
        """Set every variable, in order, from arrays of the right shape and dtype."""
        raise NotImplementedError

    def get_weights(self) -> dict[str, npt.NDArray[Any]]:
        """Every variable's value by name."""
        return dict(zip(self._names, self._read(), strict=True))

    def set_weights(self, new_weights: Mapping[str, Any]) -> None:
        """Set every variable from ``new_weights`` (as returned by ``get_weights``)."""
        if not isinstance(new_weights, Mapping):
            raise TypeError(
                f"set_weights takes a dict of variable name -> array (as get_weights returns), "
                f"not {type(new_weights).__name__}; use set_flat for a flat vector"
            )
        unknown = sorted(str(name) for name in new_weights if name not in self._names)
        missing = [name for name in self._names if name not in new_weights]
        if unknown or missing:
            problems = []
            if unknown:
                problems.append(f"unknown names {unknown}")
            if missing:
                problems.append(f"missing names {missing}")
            raise ValueError(
                f"set_weights: {' and '.join(problems)}; it needs exactly the names "
                f"get_weights returns: {list(self._names)}"
            )
        values = [np.asarray(new_weights[name]) for name in self._names]
        wrong = [
            f"{name} has shape {value.shape}, expected {shape}"
            for name, shape, value in zip(self._names, self._shapes, values, strict=True)
            if value.shape != shape
        ]
        if wrong:
            raise ValueError(f"set_weights: wrong shapes: {'; '.join(wrong)}")
        self._write(
            [
                value.astype(dtype, copy=False)
                for value, dtype in zip(values, self._dtypes, strict=True)
            ]
        )

    def get_flat_size(self) -> int:
        """How many numbers ``get_flat`` returns."""
        return sum(self._sizes)

    def get_flat(self) -> npt.NDArray[Any]:
        """Every variable flattened and concatenated, in the order of ``get_weights``."""
        return np.concatenate([value.ravel() for value in self._read()])

    def set_flat(self, new_weights: Any) -> None:
        """Set every variable from one vector laid out as ``get_flat`` returns it."""
        flat = np.asarray(new_weights)
        if flat.shape != (self.get_flat_size(),):
            raise ValueError(
                f"set_flat takes a 1-D vector of {self.get_flat_size()} numbers (see "
                f"get_flat_size), got an array of shape {flat.shape}"
            )
        ends = np.cumsum(self._sizes)[:-1]
        self._write(
            [
                part.reshape(shape).astype(dtype, copy=False)
                for part, shape, dtype in zip(
                    np.split(flat, ends), self._shapes, self._dtypes, strict=True
                )
            ]
        )
