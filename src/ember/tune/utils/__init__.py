"""Helpers for Tune's users and pieces (``ray.tune.utils``)."""

from ember.tune.utils.util import flatten_dict

__all__ = ["flatten_dict"]
