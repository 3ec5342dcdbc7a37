"""Hyperparameters that change with the number of env steps sampled: Ray's schedule format,
a list of ``[timestep, value]`` pairs, interpolated linearly and held after the last one."""

from __future__ import annotations

import bisect
from collections.abc import Sequence


class Scheduler:
    """``Scheduler(0.001)`` is constant; ``Scheduler([[0, 1e-3], [100_000, 1e-4]])`` decays."""

    def __init__(self, spec: float | Sequence[Sequence[float]], name: str = "value") -> None:
        if isinstance(spec, (int, float)):
            self._points = [(0.0, float(spec))]
        else:
            points = [tuple(map(float, p)) for p in spec]
            if not points or any(len(p) != 2 for p in points):
                raise ValueError(
                    f"{name} schedule must be a number or a list of [timestep, value] pairs, "
                    f"not {spec!r}"
                )
            if [p[0] for p in points] != sorted(p[0] for p in points) or points[0][0] != 0:
                raise ValueError(
                    f"{name} schedule must start at timestep 0 with increasing timesteps: {spec!r}"
                )
            self._points = [(p[0], p[1]) for p in points]
        self._steps = [p[0] for p in self._points]

    def values(self) -> list[float]:
        """The schedule's values at its points (a constant's one value)."""
        return [p[1] for p in self._points]

    def value(self, timestep: float) -> float:
        i = bisect.bisect_right(self._steps, timestep) - 1
        if i >= len(self._points) - 1:
            return self._points[-1][1]
        (t0, v0), (t1, v1) = self._points[i], self._points[i + 1]
        return v0 + (v1 - v0) * (timestep - t0) / (t1 - t0)
