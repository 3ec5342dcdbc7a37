"""What the errors of dead actors, crashed workers and lost objects say: what happened (killed
by ``ember.kill()``, the process's exit code or signal, restarts used) and what to do, in clean
sentences. The texts are Ember's own, so these tests do not run against Ray."""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Any

import numpy as np
import pytest

import ember

pytestmark = pytest.mark.ember_only

T = 30  # upper bound for every get: a bug fails the test instead of hanging it


def _reads_cleanly(text: str) -> None:
    """No two sentences run together ("is 0 If the actor..."), no doubled stops or spaces."""
    assert not re.search(r"[a-z0-9] [A-Z][a-z]", text), text
    assert ".." not in text.replace("...", "") and "  " not in text, text
    assert text.rstrip().endswith((".", ")")), text


@ember.remote(max_restarts=0)
class Fragile:
    def pid(self) -> int:
        return os.getpid()

    def exit(self, code: int) -> None:
        os._exit(code)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@ember.remote(max_restarts=2)
class Twice:
    def exit(self) -> None:
        os._exit(1)


def test_an_actor_without_restarts_is_never_said_to_be_restarted(ray: Any) -> None:
    """The call's failure used to race the node hearing of the death: the node still saw the
    actor alive and the error said it had been restarted."""
    for i in range(20):
        actor = Fragile.remote()
        pid = ray.get(actor.pid.remote(), timeout=T)
        if i % 2:
            ref = actor.sleep.remote(60)
            os.kill(pid, signal.SIGKILL)
            how = "killed by signal SIGKILL (9)"
        else:
            ref = actor.exit.remote(3)
            how = "exited with code 3"
        with pytest.raises(ray.exceptions.ActorDiedError) as info:
            ray.get(ref, timeout=T)
        text = str(info.value)
        assert "restarted" not in text, text
        assert how in text and f"pid {pid}" in text and "max_restarts" in text, text
        _reads_cleanly(text)


def test_a_killed_actor_says_it_was_killed(ray: Any) -> None:
    actor = Fragile.remote()
    ray.get(actor.pid.remote(), timeout=T)
    running = actor.sleep.remote(60)
    ray.kill(actor)
    for ref in (running, actor.pid.remote()):
        with pytest.raises(ray.exceptions.ActorDiedError) as info:
            ray.get(ref, timeout=T)
        text = str(info.value)
        assert "killed by ember.kill()" in text, text
        assert "unexpectedly" not in text and "max_restarts" not in text, text
        _reads_cleanly(text)


def test_a_kill_that_found_no_process_is_not_blamed_for_a_later_crash(start_ember: Any) -> None:
    """kill(no_restart=False) of an actor that had no process yet (not placed) ended nothing,
    but its next real end was reported as "killed by ember.kill()"."""
    ray = start_ember(num_cpus=1, resources={"slot": 1})
    holder = Fragile.options(resources={"slot": 1}).remote()
    ray.get(holder.pid.remote(), timeout=T)
    waiting = Fragile.options(resources={"slot": 1}).remote()  # no room for it yet
    ray.kill(waiting, no_restart=False)
    ray.kill(holder)  # (after the first kill, on the same connection): now it starts
    pid = ray.get(waiting.pid.remote(), timeout=T)
    with pytest.raises(ray.exceptions.ActorDiedError) as info:
        ray.get(waiting.exit.remote(3), timeout=T)
    text = str(info.value)
    assert "exited with code 3" in text and f"pid {pid}" in text, text
    assert "kill" not in text, text


def test_an_actor_that_used_up_its_restarts_says_so(ray: Any) -> None:
    actor = Twice.remote()
    texts = []
    for _ in range(3):
        with pytest.raises(ray.exceptions.ActorDiedError) as info:
            ray.get(actor.exit.remote(), timeout=T)
        texts.append(str(info.value))
    for text in texts:
        _reads_cleanly(text)
    assert "was restarted (1 of 2 restarts used)" in texts[0], texts[0]
    assert "max_task_retries" in texts[0], texts[0]
    assert "was restarted (2 of 2 restarts used)" in texts[1], texts[1]
    assert "2 of 2 restarts used" in texts[2] and "was restarted" not in texts[2], texts[2]
    assert "max_restarts" in texts[2], texts[2]
    with pytest.raises(ray.exceptions.ActorDiedError) as info:  # and so do later calls
        ray.get(actor.exit.remote(), timeout=T)
    assert str(info.value) == texts[2]


def test_a_segfault_is_reported_with_its_signal_and_logged(ray: Any) -> None:
    @ray.remote(max_retries=0)
    def crash() -> None:
        import ctypes

        ctypes.string_at(0)

    with pytest.raises(ray.exceptions.WorkerCrashedError) as info:
        ray.get(crash.remote(), timeout=T)
    err = info.value
    text = str(err)
    assert "crash' died" in text and "killed by signal SIGSEGV (11)" in text, text
    assert "max_retries" in text and err.log_path in text, text
    _reads_cleanly(text)
    with open(err.log_path) as f:  # the worker's last words: faulthandler's traceback
        log = f.read()
    assert "Segmentation fault" in log and "in crash" in log, log


def test_a_worker_exit_code_is_reported(ray: Any) -> None:
    @ray.remote(max_retries=0)
    def leave() -> None:
        os._exit(3)

    with pytest.raises(ray.exceptions.WorkerCrashedError) as info:
        ray.get(leave.remote(), timeout=T)
    text = str(info.value)
    assert "exited with code 3" in text and f"pid {info.value.pid}" in text, text
    _reads_cleanly(text)


@ember.remote(resources={"w": 1}, max_retries=0)
def _stored_once() -> np.ndarray:
    return np.ones(500_000)


def test_an_object_lost_with_its_node_names_it_and_says_what_to_do(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"w": 1}})
    ref = _stored_once.remote()
    ember.wait([ref], timeout=T)
    cluster.remove_node(cluster.nodes[1])
    with pytest.raises(ember.exceptions.ObjectLostError) as info:
        ember.get(ref, timeout=60)
    text = str(info.value)
    assert ref.hex() in text, text
    assert ember.exceptions.ObjectLostError._advice in text, text
    _reads_cleanly(text)
