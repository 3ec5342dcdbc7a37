"""Helpers beside the core API, under the names Ray gives them (``ray.util``)."""

from ember.util.actor_pool import ActorPool

__all__ = ["ActorPool"]
