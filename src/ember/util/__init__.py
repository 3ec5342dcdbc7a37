"""Helpers beside the core API, under the names Ray gives them (``ray.util``)."""
