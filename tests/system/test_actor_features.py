"""System tests: concurrency groups, the runtime context inside tasks and actors,
``exit_actor``, ``async def __init__`` and an actor's ``__repr__`` in its log prefix.

Checked against real Ray 2.60. Things Ray does that may surprise an implementer:
- Calls in different concurrency groups run at the same time, on a sync actor too; methods
  without a group are in the default group, of size ``max_concurrency`` (1 for a sync actor).
  An async actor's groups each have an event loop (and thread) of their own; its calls may
  start out of order, even within one group.
- An actor whose class defines ``__repr__`` prefixes its printed lines with ``(repr pid=N)``.
- In the driver, ``get_task_name()``, ``get_task_function_name()`` and ``get_actor_name()``
  return None (with a warning); ``current_actor`` and ``is_canceled()`` raise RuntimeError.
- An actor call's task name is ``Class.method``; an actor without a name has the name "".
- The call that runs ``exit_actor()`` fails with ActorDiedError, not a return value, and so
  does every later call; the actor is not restarted, whatever its ``max_restarts``. In a
  threaded or async actor, the calls already running finish (and are answered) first.
  ``exit_actor()`` outside an actor raises TypeError.
- A sync (or threaded) actor's running call is not interrupted by ``cancel``: it can see
  ``is_canceled()``, and its caller gets TaskCancelledError whatever it returns.
  ``is_canceled()`` raises RuntimeError in an async actor.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests._helpers import get_when_answered, wait_until

T = 30  # upper bound for every get: a bug fails the test instead of hanging it


# ------------------------------------------------------------------ concurrency groups


def _grouped_cls(ray, is_async):
    """An actor whose ``hold`` (group "io", limit 1) waits for a signal: while it waits,
    ``compute`` (group "compute") and default-group calls must still run."""

    if is_async:

        @ray.remote(concurrency_groups={"io": 1, "compute": 2})
        class Grouped:
            def __init__(self):
                self.started = []

            @ray.method(concurrency_group="io")
            async def hold(self, tag, signal):
                self.started.append(tag)
                await signal.wait.remote()
                return tag

            @ray.method(concurrency_group="compute")
            async def compute(self):
                return list(self.started)

            async def default(self):
                return list(self.started)

        return Grouped

    @ray.remote(concurrency_groups={"io": 1, "compute": 2})
    class Grouped:
        def __init__(self):
            self.started = []

        @ray.method(concurrency_group="io")
        def hold(self, tag, signal):
            self.started.append(tag)
            ray.get(signal.wait.remote(), timeout=T)
            return tag

        @ray.method(concurrency_group="compute")
        def compute(self):
            return list(self.started)

        def default(self):
            return list(self.started)

    return Grouped


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_groups_run_apart_and_each_keeps_its_limit(ray, signal_cls, is_async):
    signal = signal_cls.remote()
    actor = _grouped_cls(ray, is_async).remote()
    first = actor.hold.remote("first", signal)
    second = actor.hold.remote("second", signal)  # waits: "io" runs one at a time
    wait_until(lambda: ray.get(signal.num_waiting.remote(), timeout=T) == 1, T, "hold to wait")
    # "io" is full and busy: the other groups still answer, and "second" has not started.
    # (An async actor may start its calls out of order: which one runs is not known.)
    started = ray.get(actor.compute.remote(), timeout=T)
    assert len(started) == 1 and started[0] in ("first", "second")
    assert ray.get(actor.default.remote(), timeout=T) == started
    ray.get(signal.send.remote(), timeout=T)
    assert ray.get([first, second], timeout=T) == ["first", "second"]


def test_an_async_group_that_blocks_its_loop_holds_up_only_itself(ray, signal_cls):
    @ray.remote(concurrency_groups={"io": 1})
    class Blocking:
        @ray.method(concurrency_group="io")
        async def block(self, signal):
            return ray.get(signal.wait.remote(), timeout=T)  # (blocks its group's loop)

        async def ping(self):
            return "pong"

    signal = signal_cls.remote()
    actor = Blocking.remote()
    blocked = actor.block.remote(signal)
    wait_until(lambda: ray.get(signal.num_waiting.remote(), timeout=T) == 1, T, "block to wait")
    assert ray.get(actor.ping.remote(), timeout=T) == "pong"
    ray.get(signal.send.remote(), timeout=T)
    assert ray.get(blocked, timeout=T) is True


def test_call_options_choose_the_group(ray, signal_cls):
    signal = signal_cls.remote()
    actor = _grouped_cls(ray, False).remote()
    held = actor.hold.remote("first", signal)
    wait_until(lambda: ray.get(signal.num_waiting.remote(), timeout=T) == 1, T, "hold to wait")
    # An "io" method sent to "compute" starts at once although "io" is full (then waits too).
    moved = actor.hold.options(concurrency_group="compute").remote("moved", signal)
    wait_until(lambda: ray.get(signal.num_waiting.remote(), timeout=T) == 2, T, "moved to wait")
    ray.get(signal.send.remote(), timeout=T)
    assert ray.get([held, moved], timeout=T) == ["first", "moved"]


def test_default_group_is_max_concurrency_wide(ray, signal_cls):
    @ray.remote(concurrency_groups={"io": 1}, max_concurrency=2)
    class Wide:
        def wait(self, signal):
            return ray.get(signal.wait.remote(), timeout=T)

    signal = signal_cls.remote()
    actor = Wide.remote()
    calls = [actor.wait.remote(signal) for _ in range(2)]  # both start: the default holds 2
    wait_until(lambda: ray.get(signal.num_waiting.remote(), timeout=T) == 2, T, "both to wait")
    ray.get(signal.send.remote(), timeout=T)
    assert ray.get(calls, timeout=T) == [True, True]


@pytest.mark.ember_only  # Ray fails an assertion when the actor is created
def test_a_method_in_an_undefined_group_is_refused_at_the_class(ray):
    class Bad:
        @ray.method(concurrency_group="nope")
        def f(self):
            return 1

    with pytest.raises(ValueError, match="'nope'"):
        ray.remote(concurrency_groups={"io": 1})(Bad)


@pytest.mark.ember_only  # what Ray does with an unknown group on a call is not documented
def test_an_undefined_group_on_a_call_is_refused_at_the_call(ray):
    actor = _grouped_cls(ray, False).remote()
    with pytest.raises(ValueError, match="'nope'"):
        actor.compute.options(concurrency_group="nope").remote()


# ------------------------------------------------------------------ the runtime context


def test_runtime_context_in_the_driver(ray):
    rc = ray.get_runtime_context()
    assert rc.get_task_name() is None
    assert rc.get_task_function_name() is None
    assert rc.get_actor_name() is None
    with pytest.raises(RuntimeError):
        rc.current_actor  # noqa: B018
    with pytest.raises(RuntimeError):
        rc.is_canceled()
    assert isinstance(rc.get_node_labels(), dict)


def test_runtime_context_in_a_task(ray):
    @ray.remote
    def where():
        rc = ray.get_runtime_context()
        with pytest.warns(DeprecationWarning):
            gpus = rc.get_resource_ids()["GPU"]
        return (
            rc.get_task_name(),
            rc.get_task_function_name(),
            rc.get_actor_name(),
            rc.is_canceled(),
            gpus,
        )

    name, fn_name, actor_name, canceled, gpus = ray.get(where.remote(), timeout=T)
    assert name == "where" and fn_name.endswith(".where")
    assert actor_name is None and canceled is False and gpus == []
    assert ray.get(where.options(name="custom").remote(), timeout=T)[0] == "custom"


def test_runtime_context_in_an_actor(ray):
    @ray.remote(max_restarts=1)
    class Where:
        def __init__(self):
            self.value = 7

        def names(self):
            rc = ray.get_runtime_context()
            return rc.get_task_name(), rc.get_task_function_name(), rc.get_actor_name()

        def me(self):
            return ray.get_runtime_context().current_actor

        def get(self):
            return self.value

        def restarted(self):
            rc = ray.get_runtime_context()
            return rc.was_current_actor_reconstructed, rc.is_canceled()

        def die(self):
            os._exit(1)

    actor = Where.remote()
    name, fn_name, actor_name = ray.get(actor.names.remote(), timeout=T)
    assert name == "Where.names" and fn_name.endswith("Where.names") and actor_name == ""
    named = Where.options(name="here").remote()
    assert ray.get(named.names.remote(), timeout=T)[2] == "here"
    me = ray.get(actor.me.remote(), timeout=T)
    assert ray.get(me.get.remote(), timeout=T) == 7  # a handle to the same actor
    assert ray.get(actor.restarted.remote(), timeout=T) == (False, False)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.die.remote(), timeout=T)
    wait_until(
        lambda: get_when_answered(actor.restarted.remote), T, "the restarted actor to answer"
    )
    assert ray.get(actor.restarted.remote(), timeout=T) == (True, False)


@pytest.mark.parametrize("max_concurrency", [1, 2], ids=["serial", "threaded"])
def test_a_running_sync_actor_call_is_not_interrupted_but_sees_is_canceled(
    ray, signal_cls, max_concurrency
):
    @ray.remote(max_concurrency=max_concurrency)
    class Spinner:
        def __init__(self):
            self.seen = "nothing"

        def spin(self, started):
            ray.get(started.send.remote(), timeout=T)
            deadline = time.monotonic() + T
            while not ray.get_runtime_context().is_canceled():
                assert time.monotonic() < deadline, "no cancel came"
                time.sleep(0.005)
            self.seen = "saw cancel"
            return self.seen

        def what_was_seen(self):
            return self.seen

    started = signal_cls.remote()
    actor = Spinner.remote()
    ref = actor.spin.remote(started)
    ray.get(started.wait.remote(), timeout=T)
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=T)  # although the method returned
    assert ray.get(actor.what_was_seen.remote(), timeout=T) == "saw cancel"


def test_is_canceled_is_refused_in_an_async_actor(ray):
    @ray.remote
    class Async:
        async def canceled(self):
            try:
                ray.get_runtime_context().is_canceled()
            except RuntimeError as e:
                return str(e)
            return "no error"

        async def name(self):
            return ray.get_runtime_context().get_task_name()

    actor = Async.remote()
    assert "async actor" in ray.get(actor.canceled.remote(), timeout=T)
    assert ray.get(actor.name.remote(), timeout=T) == "Async.name"


# ------------------------------------------------------------------ exit_actor


def _exit_actor(ray):
    return importlib.import_module(f"{ray.__name__}.actor").exit_actor


def _quitter_cls(ray, is_async):
    exit_actor = _exit_actor(ray)

    if is_async:

        @ray.remote(max_restarts=2)
        class Quitter:
            async def quit(self):
                exit_actor()
                return "after"

            async def ping(self):
                return "pong"

        return Quitter

    @ray.remote(max_restarts=2)
    class Quitter:
        def quit(self):
            exit_actor()
            return "after"

        def ping(self):
            return "pong"

    return Quitter


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_exit_actor_ends_it_for_good(ray, is_async):
    actor = _quitter_cls(ray, is_async).remote()
    assert ray.get(actor.ping.remote(), timeout=T) == "pong"
    # (Ray: "... Worker exit type: INTENDED_USER_EXIT ...")
    with pytest.raises(ray.exceptions.ActorDiedError, match="(?i)intend|intention"):
        ray.get(actor.quit.remote(), timeout=T)
    for _ in range(2):  # not restarted, although max_restarts allows it
        with pytest.raises(ray.exceptions.ActorDiedError, match="(?i)intend|intention"):
            ray.get(actor.ping.remote(), timeout=T)


@pytest.mark.parametrize("is_async", [False, True], ids=["threaded", "async"])
def test_exit_actor_lets_running_calls_finish(ray, signal_cls, is_async):
    exit_actor = _exit_actor(ray)
    if is_async:

        @ray.remote
        class Worker:
            async def work(self, signal):
                return await signal.wait.remote()

            async def quit(self, started):
                await started.send.remote()
                exit_actor()

    else:

        @ray.remote(max_concurrency=2)
        class Worker:
            def work(self, signal):
                return ray.get(signal.wait.remote(), timeout=T)

            def quit(self, started):
                ray.get(started.send.remote(), timeout=T)
                exit_actor()

    signal, quit_started = signal_cls.remote(), signal_cls.remote()
    actor = Worker.remote()
    running = actor.work.remote(signal)
    wait_until(lambda: ray.get(signal.num_waiting.remote(), timeout=T) == 1, T, "work to wait")
    quitting = actor.quit.remote(quit_started)
    ray.get(quit_started.wait.remote(), timeout=T)
    ray.get(signal.send.remote(), timeout=T)
    assert ray.get(running, timeout=T) is True  # it ran to its end before the actor exited
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(quitting, timeout=T)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(actor.work.remote(signal), timeout=T)


def test_exit_actor_outside_an_actor_raises_type_error(ray):
    exit_actor = _exit_actor(ray)
    with pytest.raises(TypeError):
        exit_actor()

    @ray.remote
    def task():
        try:
            exit_actor()
        except TypeError:
            return "TypeError"
        return "no error"

    assert ray.get(task.remote(), timeout=T) == "TypeError"


# ------------------------------------------------------------------ construction and output


def test_async_init(ray):
    @ray.remote
    class Slow:
        async def __init__(self, value):
            await asyncio.sleep(0)
            self.value = value
            self.loop_thread = threading.get_ident()

        async def get(self):
            return self.value, self.loop_thread == threading.get_ident()

    assert ray.get(Slow.remote(5).get.remote(), timeout=T) == (5, True)


_PRINTS = textwrap.dedent(
    """
    import sys, threading
    import ember as ray

    heard = {"plain says hi": threading.Event(), "shown says hi": threading.Event()}

    class Tee:  # the driver's output, watched for the actors' lines (they come later)
        def __init__(self, out):
            self.out = out

        def write(self, text):
            for line, event in heard.items():
                if line in text:
                    event.set()
            return self.out.write(text)

        def __getattr__(self, name):
            return getattr(self.out, name)

    sys.stdout, sys.stderr = Tee(sys.stdout), Tee(sys.stderr)
    ray.init(num_cpus=1)

    def make_plain():  # (a class made in a function shows its own name, not its qualname)
        @ray.remote
        class Plain:
            def say(self):
                print("plain says hi")

        return Plain

    Plain = make_plain()

    @ray.remote
    class Shown:
        def __init__(self, i):
            self.i = i

        def __repr__(self):
            return f"Shown(i={self.i})"

        def say(self):
            print("shown says hi")

    ray.get([Plain.remote().say.remote(), Shown.remote(7).say.remote()])
    assert all(event.wait(60) for event in heard.values()), "a line never came"
    ray.shutdown()
    """
)


def test_actor_repr_is_its_log_prefix(ray):
    ray.shutdown()  # (the script starts its own)
    out = subprocess.run(
        [sys.executable, "-c", _PRINTS], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    for line in text.splitlines():
        if "plain says hi" in line:
            assert "(Plain pid=" in line, text
        if "shown says hi" in line:
            assert "(Shown(i=7) pid=" in line, text
