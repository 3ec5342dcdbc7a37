"""``ember.cloudpickle``: the cloudpickle that Ember pickles functions and classes with, at
Ray's ``ray.cloudpickle`` path (re-exports only)."""

from cloudpickle import (
    CloudPickler,
    Pickler,
    __version__,
    dump,
    dumps,
    load,
    loads,
    register_pickle_by_value,
    unregister_pickle_by_value,
)

__all__ = [
    "CloudPickler",
    "Pickler",
    "__version__",
    "dump",
    "dumps",
    "load",
    "loads",
    "register_pickle_by_value",
    "unregister_pickle_by_value",
]
