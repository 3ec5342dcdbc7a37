"""``ember.actor``, at Ray's ``ray.actor`` path: the actor classes and ``exit_actor``."""

from __future__ import annotations

from ember._api.actor import ActorClass, ActorHandle, ActorMethod, exit_actor, method

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "exit_actor", "method"]
