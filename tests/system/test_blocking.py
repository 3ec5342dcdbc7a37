"""Tasks blocked in get(): deep nesting, the limit on blocked tasks per worker, and what wakes
a blocked get early (shutdown, the node's death, a cancel).

Ember-only: Ray starts a process per blocked task, so 3,000 nested levels would need 3,000
processes (on the 2-core development machine Ray reached 200 levels in 41 s with 16 GB of
worker memory).
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import ember
from ember._runtime import state, task_context
from ember._runtime.client import object_table
from tests._helpers import wait_until

pytestmark = pytest.mark.ember_only

T = 100  # upper bound for every get: a bug fails the test instead of hanging it


@ember.remote
def nested(n: int) -> int:
    return 0 if n == 0 else ember.get(nested.remote(n - 1)) + 1


@ember.remote(num_cpus=0, resources={"never": 1})
def never() -> None:
    """Needs a resource no node has: its ref stays pending, holding no CPU."""


def test_thousands_of_nested_gets_finish(ray: Any) -> None:
    """3,000 tasks, each blocked in get() on the next, on 2 CPUs. Every blocked get used to
    wake ten times a second to look around: past ~2,500 levels the wake-ups starved the
    work (3,000 levels took 20-45 s, 5,000 did not finish in 4 minutes). The speed is in
    benchmarks/ (nested_depth); this checks the answer."""
    assert ray.get(nested.remote(3000), timeout=T) == 3000


def test_past_the_limit_of_blocked_tasks_a_get_raises_naming_it(
    start_ember: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBER_MAX_BLOCKED_TASKS", "3")
    ray = start_ember(num_cpus=1)  # one worker: every level shares its process
    assert ray.get(nested.remote(3), timeout=T) == 3
    with pytest.raises(ray.exceptions.BlockedTasksLimitExceeded) as info:
        ray.get(nested.remote(10), timeout=T)
    assert "EMBER_MAX_BLOCKED_TASKS=3" in str(info.value)


def _blocked_getter(ray: Any) -> tuple[threading.Thread, list[BaseException]]:
    """A driver thread blocked in get() on a ref that never becomes ready."""
    ref = never.remote()
    errors: list[BaseException] = []
    client = state.current()

    def get() -> None:
        try:
            ray.get(ref)
        except BaseException as e:  # checked by the test
            errors.append(e)

    thread = threading.Thread(target=get, daemon=True)
    thread.start()
    _until_blocked(client, thread, errors)
    return thread, errors


def test_shutdown_wakes_a_blocked_get(ray: Any) -> None:
    thread, errors = _blocked_getter(ray)
    ray.shutdown()
    thread.join(T)
    assert not thread.is_alive()
    assert [type(e) for e in errors] == [ray.exceptions.RaySystemError]
    assert "shutdown" in str(errors[0])


def test_the_death_of_the_node_wakes_a_blocked_get(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1})
    thread, errors = _blocked_getter(ember)
    cluster.remove_node(cluster.head)
    thread.join(T)
    assert not thread.is_alive()
    assert [type(e) for e in errors] == [ember.exceptions.LocalRayletDiedError]


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@ember.remote
def waiter(refs: list[Any], path: str) -> None:
    Path(path).write_text(str(threading.current_thread() is threading.main_thread()))
    ember.get(refs[0])


def test_a_cancel_wakes_a_task_blocked_in_get_on_an_executor_thread(
    start_ember: Any, tmp_path: Path
) -> None:
    """The second task blocked in one worker waits on an executor thread of its own, which
    the cancel (an exception raised in that thread) must wake: a blocked get sleeps."""
    ray = start_ember(num_cpus=1)
    pending = [never.remote()]
    first, second = tmp_path / "first", tmp_path / "second"
    refs = []
    for path in (first, second):
        refs.append(waiter.remote(pending, str(path)))
        wait_until(partial(_text, path), T, f"the task to write {path}")
    assert (first.read_text(), second.read_text()) == ("True", "False")
    ray.cancel(refs[1], recursive=False)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(refs[1], timeout=T)
    ray.cancel(refs[0], recursive=False)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(refs[0], timeout=T)


def _as_task(ray: Any, ref: Any, task_id: bytes, cancelled: bool = False, wait: Any = None) -> Any:
    """A driver thread that waits for ``ref`` as the task ``task_id`` would (its context
    set, as a worker's executor thread has it); ``wait`` replaces ``get``."""
    errors: list[BaseException] = []
    ctx = task_context.TaskContext(task_id, "t", b"", "", lease_id=1, cancelled=cancelled)

    def run() -> None:
        task_context.current.set(ctx)
        try:
            (wait or (lambda: ray.get(ref, timeout=T)))()
        except BaseException as e:  # checked by the test
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _until_blocked(client: Any, thread: threading.Thread, errors: object = None) -> None:
    """Until the thread sleeps in a get; fails at once if it ended (with ``errors``)."""
    wait_until(lambda: client.objects._latches or not thread.is_alive(), T, "the thread to block")
    assert thread.is_alive(), errors


def test_a_cancel_wakes_only_the_wait_of_the_task_it_names(ray: Any) -> None:
    """Waits were found for a cancel by thread: a cancel of a task that had just finished
    woke the get of the next task on that executor thread, which raised TaskCancelledError
    though nobody had cancelled it. They are found by task."""
    client = state.current()
    first, second = b"\x01" * 12, b"\x02" * 12  # (the first ran on that thread and ended)
    thread, errors = _as_task(ray, never.remote(), second)
    _until_blocked(client, thread)
    assert not client.interrupt_wait(first)
    assert [latch.n for latch in client.objects._latches] == [1]  # still asleep
    assert client.interrupt_wait(second)
    thread.join(T)
    assert [type(e) for e in errors] == [ray.exceptions.TaskCancelledError]


def test_a_task_cancelled_before_it_waits_does_not_block(ray: Any) -> None:
    """A cancel that came as the task was about to wait found no wait to wake, and the get
    slept on (or an exception raised in its thread left its wait registered for good)."""
    client = state.current()
    thread, errors = _as_task(ray, never.remote(), b"\x03" * 12, cancelled=True)
    thread.join(T)
    assert [type(e) for e in errors] == [ray.exceptions.TaskCancelledError]
    assert not client.objects._latches


def test_a_wait_over_before_it_sleeps_is_not_reported_as_blocked(ray: Any) -> None:
    """A worker told its node the task was blocked (lending its CPU, maybe starting the next
    task beside it) even when what it waited for came between taking the lock and sleeping."""
    client = state.current()
    seen: list[str] = []
    client.on_block = lambda: seen.append("blocked")
    client.on_unblock = lambda: seen.append("unblocked")
    try:
        with client.lock:
            latch = client.objects.latch(1)
            latch.hit()  # (what it waits for became ready meanwhile)
        client.objects.block_on(latch, None)
    finally:
        client.on_block = client.on_unblock = None
    assert seen == []


def test_a_wait_for_an_object_being_made_again_leaves_nothing_on_it_when_it_fails(
    ray: Any,
) -> None:
    """Waiting for an object that lineage makes again (``await_ready``) left its callback on the
    object when the wait ended early (here: too many blocked tasks), which also kept the
    object from ever being released."""
    client = state.current()
    ref = never.remote()
    obj = client.objects.entry(ref._id)

    def refuse() -> None:
        raise ray.exceptions.BlockedTasksLimitExceeded("too many")

    client.on_block = refuse
    try:
        thread, errors = _as_task(
            ray, ref, b"\x04" * 12, wait=lambda: client.objects.await_ready(obj)
        )
        thread.join(T)
    finally:
        client.on_block = None
    assert [type(e) for e in errors] == [ray.exceptions.BlockedTasksLimitExceeded]
    assert not obj.waiters


def test_an_abandoned_wait_loop_lets_go_of_the_index_of_its_list(
    ray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wait() loop that stopped early (a break at the first result wanted) kept the index
    of its list (a tuple, a dict and lists over all of it) for the life of the process, and
    every object that became ready afterwards was looked up in it."""
    monkeypatch.setattr(object_table, "_WAIT_INDEX_IDLE_SECONDS", 0.2)
    client = state.current()
    refs = [ray.put(i) for i in range(100)]
    ready, _ = ray.wait(refs, num_returns=1, timeout=T)
    assert ready and client.objects._wait_index is not None
    wait_until(lambda: client.objects._wait_index is None, T, "the index to be dropped")
