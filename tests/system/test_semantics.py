"""Semantics where Ember once differed from Ray: argument checks at the call, method lookup,
cancelled coroutines that swallow the cancel, and the exception classes Ray raises in those
places (``sys.exit()`` in tasks and actors: test_failures.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests._helpers import wait_until

T = 60  # seconds: bound on every wait


def test_arguments_that_do_not_fit_raise_type_error_at_the_call(ray: Any) -> None:
    @ray.remote
    def f(a: int, b: int = 2, *, c: int = 3) -> int:
        return a + b + c

    @ray.remote
    def anything(*args: Any, **kwargs: Any) -> int:
        return len(args) + len(kwargs)

    @ray.remote
    class Counter:
        def __init__(self, start: int) -> None:
            self.n = start

        def add(self, k: int) -> int:
            self.n += k
            return self.n

        @staticmethod
        def twice(x: int) -> int:
            return 2 * x

        @classmethod
        def name(cls) -> str:
            return cls.__name__

    for bad in [(), (1, 2, 3), (1,)]:
        kwargs = {"d": 4} if bad == (1,) else {}
        with pytest.raises(TypeError):
            f.remote(*bad, **kwargs)
    with pytest.raises(TypeError):
        f.options(num_cpus=1).remote()
    assert ray.get(f.remote(1, c=0), timeout=T) == 3
    assert ray.get(anything.remote(1, 2, x=3), timeout=T) == 3

    with pytest.raises(TypeError):
        Counter.remote()
    with pytest.raises(TypeError):
        Counter.options(num_cpus=0).remote(1, 2)
    counter = Counter.remote(10)
    with pytest.raises(TypeError):
        counter.add.remote()
    with pytest.raises(TypeError):
        counter.add.remote(1, k=1)
    assert ray.get(counter.add.remote(5), timeout=T) == 15
    assert ray.get(counter.twice.remote(4), timeout=T) == 8
    assert ray.get(counter.name.remote(), timeout=T) == "Counter"


def test_an_instance_attribute_does_not_hide_a_method(ray: Any) -> None:
    @ray.remote
    class Shadowed:
        def __init__(self) -> None:
            self.value = "the attribute"

        def value(self) -> str:
            return "the method"

    assert ray.get(Shadowed.remote().value.remote(), timeout=T) == "the method"


def test_a_cancelled_coroutine_that_returns_still_ends_cancelled(ray: Any) -> None:
    @ray.remote
    class Stubborn:
        def __init__(self) -> None:
            self.started = False

        async def slow(self) -> str:
            self.started = True
            try:
                await asyncio.sleep(T)
            except asyncio.CancelledError:
                return "caught it"
            return "slept"

        async def has_started(self) -> bool:
            return self.started

    actor = Stubborn.remote()
    ref = actor.slow.remote()
    wait_until(lambda: ray.get(actor.has_started.remote(), timeout=T), T, "the call to start")
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=T)


def test_a_taken_actor_name_raises_actor_already_exists(ray: Any) -> None:
    @ray.remote
    class Named:
        def ping(self) -> int:
            return 1

    first = Named.options(name="only-one").remote()
    assert ray.get(first.ping.remote(), timeout=T) == 1
    with pytest.raises(ray.exceptions.ActorAlreadyExistsError) as info:
        Named.options(name="only-one").remote()
    assert isinstance(info.value, ValueError)
    assert "only-one" in str(info.value)


def test_the_exception_classes_have_rays_bases(ray: Any) -> None:
    e = ray.exceptions
    for name, bases in {
        "ActorAlreadyExistsError": (ValueError, e.RayError),
        "ActorHandleNotFoundError": (ValueError, e.RayError),
        "AuthenticationError": (e.RayError,),
        "UserCodeException": (e.RayError,),
        "OufOfBandObjectRefSerializationException": (e.RayError,),
        "RpcError": (e.RayError,),
        "RayDirectTransportError": (e.RaySystemError,),
        "StreamingGeneratorReplayInconsistentError": (e.RaySystemError,),
    }.items():
        cls = getattr(e, name)
        assert all(issubclass(cls, base) for base in bases), name


def test_killing_a_handle_from_an_earlier_session_raises_handle_not_found(ray: Any) -> None:
    @ray.remote
    class Old:
        def ping(self) -> int:
            return 1

    old = Old.remote()
    assert ray.get(old.ping.remote(), timeout=T) == 1
    ray.shutdown()
    ray.init(num_cpus=1)
    with pytest.raises(ray.exceptions.ActorHandleNotFoundError):
        ray.kill(old)
