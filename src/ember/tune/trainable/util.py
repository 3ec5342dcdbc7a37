"""``tune.with_parameters`` and ``tune.with_resources``: a trainable with large objects put in
the object store once for all trials, or with the resources each of its trials holds."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import ember
from ember.tune.trainable.trainable import Trainable

Resources = dict[str, float] | Callable[[dict[str, Any]], dict[str, float]]


class _FunctionWithParameters:
    """A function trainable called as ``f(config, **parameters)``, the parameters fetched from
    the object store in the trial's actor."""

    def __init__(self, fn: Callable[..., Any], refs: dict[str, Any]) -> None:
        self._fn = fn
        self._refs = refs
        # Its name, not its signature: the trial calls it with the config alone.
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        resources = resources_of(fn)
        if resources is not None:  # with_parameters(with_resources(f, ...)) keeps them
            self._tune_resources = resources

    def __call__(self, config: dict[str, Any]) -> Any:
        return self._fn(config, **_fetch(self._refs))


def _fetch(refs: dict[str, Any]) -> dict[str, Any]:
    values = ember.get(list(refs.values()))
    return dict(zip(refs, values, strict=True))


def with_parameters(trainable: Any, **kwargs: Any) -> Any:
    """Pass ``kwargs`` to every trial (as keyword arguments of the function, or of a
    ``Trainable``'s ``setup``), each put in the object store once instead of with each trial."""
    if not kwargs:
        return trainable
    refs = {k: ember.put(v) for k, v in kwargs.items()}
    if isinstance(trainable, type) and issubclass(trainable, Trainable):

        class _TrainableWithParameters(trainable):  # type: ignore[misc]
            def setup(self, config: dict[str, Any]) -> None:
                super().setup(config, **_fetch(refs))

        _TrainableWithParameters.__name__ = trainable.__name__
        _TrainableWithParameters.__qualname__ = trainable.__qualname__
        return _TrainableWithParameters
    if not callable(trainable):
        raise TypeError(
            "tune.with_parameters takes a function or a tune.Trainable subclass, not "
            f"{type(trainable).__name__}"
        )
    return _FunctionWithParameters(trainable, refs)


def with_resources(trainable: Any, resources: Resources) -> Any:
    """The trainable with the resources each trial holds: a dict such as
    ``{"cpu": 2, "gpu": 0.5, "custom": 1}``, or a function of the trial's config to one."""
    if not (isinstance(resources, dict) or callable(resources)):
        raise TypeError(
            "tune.with_resources takes a dict such as {'cpu': 2, 'gpu': 1} or a function "
            f"of the config returning one, not {type(resources).__name__}"
        )
    if isinstance(resources, dict):
        for key, value in resources.items():
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"tune.with_resources: {key!r} must be a number >= 0")
    if isinstance(trainable, type):

        class _TrainableWithResources(trainable):  # type: ignore[misc]
            pass

        _TrainableWithResources.__name__ = trainable.__name__
        _TrainableWithResources.__qualname__ = trainable.__qualname__
        _TrainableWithResources._tune_resources = resources
        return _TrainableWithResources
    wrapped = _WithResources(trainable, resources)
    return wrapped


class _WithResources:
    def __init__(self, fn: Any, resources: Resources) -> None:
        self._fn = fn
        self._tune_resources = resources
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)


def resources_of(trainable: Any) -> Resources | None:
    return getattr(trainable, "_tune_resources", None)
