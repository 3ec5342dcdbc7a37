"""Tune's errors, at Ray Tune's path (``ray.tune.error``)."""

from __future__ import annotations


class TuneError(Exception):
    """An experiment could not run as asked (the message says what to change)."""
