"""User metrics, as Ray's ``ray.util.metrics``: ``Counter``, ``Gauge`` and ``Histogram``.

Recording is a dict update in the calling process (driver, task or actor); the process's
client sends what changed to its node every second or so, the node keeps the series of
its processes (``ember._core.metrics``), and the dashboard's ``/metrics`` shows them to
Prometheus with the ``ember_`` prefix. The names, arguments and errors are Ray's.
"""

from __future__ import annotations

import re
import warnings
from itertools import pairwise
from typing import Any, TypeVar

from ember._core.metrics import Tags
from ember._runtime import metrics as _process

# Prometheus's rule for metric names (as its client checks them).
_VALID_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _name_is_invalid(name: str) -> bool:
    """As Ray: an empty name is an error; a name Prometheus refuses is a warning, and the
    metric records nothing."""
    if not name:
        raise ValueError("Empty name is not allowed. Please provide a metric name.")
    if _VALID_NAME.match(name):
        return False
    warnings.warn(
        f"Invalid metric name: {name}. Metric will be discarded and data will not be "
        "collected or published. Metric names can only contain letters, numbers, _, and :. "
        "Metric names cannot start with numbers.",
        UserWarning,
        stacklevel=3,
    )
    return True


def _check_value(value: object) -> None:
    if not isinstance(value, (int, float)):
        raise TypeError(f"value must be int or float, got {type(value)}.")


_M = TypeVar("_M", bound="Metric")


class Metric:
    """What every user metric shares: its name, description, tag keys and default tags."""

    def __init__(
        self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None
    ) -> None:
        self._discard_metric = _name_is_invalid(name)
        self._name = name
        self._description = description
        self._default_tags: dict[str, str] = {}
        self._tag_keys: tuple[str, ...] = tag_keys or ()
        if not isinstance(self._tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(self._tag_keys)}")
        for key in self._tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")
        if ":" in name:
            warnings.warn(
                f"Metric name {name} contains a : character, which is no longer allowed. "
                "Please migrate to the new metric name format. "
                "This will be an error in the future.",
                FutureWarning,
                stacklevel=3,
            )
        # The tags of a record that gives none, once the defaults name every tag key.
        self._default_key: Tags | None = None if self._tag_keys else ()

    def set_default_tags(self: _M, default_tags: dict[str, str]) -> _M:
        """Tags for every record that does not give them; returns the metric itself."""
        for key, value in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key}.")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value)}.")
        self._default_tags = default_tags
        missing = [key for key in self._tag_keys if key not in default_tags]
        self._default_key = None if missing else tuple(sorted(default_tags.items()))
        return self

    def _tags(self, tags: dict[str, str] | None) -> Tags:
        """The tags of a record: the defaults with ``tags`` over them, each tag key given."""
        if not tags and self._default_key is not None:
            return self._default_key
        for value in (tags or {}).values():
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value)}.")
        final = {**self._default_tags, **tags} if tags else self._default_tags
        missing = [key for key in self._tag_keys if key not in final]
        if missing:
            raise ValueError(f"Missing value for tag key(s): {','.join(missing)}.")
        return tuple(sorted(final.items()))

    @property
    def info(self) -> dict[str, Any]:
        return {
            "name": self._name,
            "description": self._description,
            "tag_keys": self._tag_keys,
            "default_tags": self._default_tags,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuilt where it is unpickled (a task's or actor's process), default tags
        included."""
        return _rebuild, (type(self), self._construct_args(), self._default_tags)

    def _construct_args(self) -> tuple[Any, ...]:
        return (self._name, self._description, self._tag_keys)


def _rebuild(cls: type[Metric], args: tuple[Any, ...], default_tags: dict[str, str]) -> Metric:
    metric = cls(*args)
    return metric.set_default_tags(default_tags) if default_tags else metric


class Counter(Metric):
    """A total that only grows, exported as a Prometheus counter (``<name>_total``)."""

    def inc(self, value: int | float = 1.0, tags: dict[str, str] | None = None) -> None:
        """Add ``value`` (> 0); ``tags`` override the default tags for this record."""
        _check_value(value)
        if value <= 0:
            raise ValueError(f"value must be >0, got {value}")
        if self._discard_metric:
            return
        key = self._tags(tags)
        with _process.lock:
            _process.buffer.inc(self._name, self._description, key, value)


class Gauge(Metric):
    """The last value set, which may go up or down."""

    def set(self, value: int | float | None, tags: dict[str, str] | None = None) -> None:
        """Set the gauge to ``value`` (None: do nothing)."""
        if value is None:
            return
        _check_value(value)
        if self._discard_metric:
            return
        key = self._tags(tags)
        with _process.lock:
            _process.buffer.set(self._name, self._description, key, value)


class Histogram(Metric):
    """How many observations fell in each bucket, and their sum."""

    def __init__(
        self,
        name: str,
        description: str = "",
        boundaries: list[float] | None = None,
        tag_keys: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(name, description, tag_keys)
        if not boundaries:
            raise ValueError(
                "boundaries argument should be provided when using the Histogram class. "
                'e.g., Histogram("name", boundaries=[1.0, 2.0])'
            )
        for i, boundary in enumerate(boundaries):
            if boundary <= 0:
                raise ValueError(
                    f"Invalid `boundaries` argument at index {i}, {boundaries}. "
                    "Use positive values for the arguments."
                )
        if any(a >= b for a, b in pairwise(boundaries)):
            raise ValueError(
                f"Invalid `boundaries` argument {boundaries}: the bucket boundaries must be "
                "in increasing order, each given once."
            )
        self.boundaries = boundaries
        self._bounds = tuple(float(b) for b in boundaries)

    def observe(self, value: int | float, tags: dict[str, str] | None = None) -> None:
        """Count ``value`` in its bucket (the first whose boundary is >= it)."""
        _check_value(value)
        if self._discard_metric:
            return
        key = self._tags(tags)
        with _process.lock:
            _process.buffer.observe(self._name, self._description, self._bounds, key, value)

    @property
    def info(self) -> dict[str, Any]:
        return {**super().info, "boundaries": self.boundaries}

    def _construct_args(self) -> tuple[Any, ...]:
        return (self._name, self._description, self.boundaries, self._tag_keys)


__all__ = ["Counter", "Gauge", "Histogram"]
