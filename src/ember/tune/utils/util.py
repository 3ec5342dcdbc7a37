"""Small helpers shared by Tune's pieces (``ray.tune.utils``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten_dict(dt: Mapping[str, Any], delimiter: str = "/") -> dict[str, Any]:
    """Nested dicts as one level: ``{"a": {"b": 1}}`` becomes ``{"a/b": 1}``. Lists stay."""
    flat: dict[str, Any] = {}
    for key, value in dt.items():
        if isinstance(value, Mapping) and value:
            for sub_key, sub_value in flatten_dict(value, delimiter).items():
                flat[f"{key}{delimiter}{sub_key}"] = sub_value
        else:
            flat[key] = value
    return flat
