"""``from ember.util.multiprocessing import Pool``: the standard library's process pool over
Ember actors, as Ray's ``ray.util.multiprocessing``."""

from multiprocessing import JoinableQueue, TimeoutError

from ember.util.multiprocessing.pool import AsyncResult, IMapIterator, Pool

__all__ = ["AsyncResult", "IMapIterator", "JoinableQueue", "Pool", "TimeoutError"]
