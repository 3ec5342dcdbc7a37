"""Ember's processes as seen from outside: their names in ``ps``, and the files a session
leaves (none, unless the user asked to keep its logs)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests._helpers import wait_until

pytestmark = pytest.mark.ember_only  # Ember's own process names and session folders

T = 30  # upper bound for every wait: a bug fails the test instead of hanging it


def _session() -> dict[str, Any]:
    """The running session's folders, as the node told the driver."""
    from ember._runtime import state

    return state.current().info  # type: ignore[no-any-return]


def _titles(proc: psutil.Process) -> tuple[str, str]:
    return proc.name(), proc.cmdline()[0]


# ------------------------------------------------------------------------------ names


def test_processes_are_named_after_their_role_and_task(ray, gate):
    """`ps` tells the node from its workers, and a worker running a task or hosting an
    actor by that task's or actor's name (as Ray's `ray::f`); the dashboard beside them."""
    node, board = sorted(psutil.Process().children(), key=lambda p: "dashboard" in p.cmdline()[-1])
    assert _titles(node) == ("ember::node", "ember::node")
    wait_until(
        lambda: _titles(board),
        T,
        "the dashboard's title",
        until=lambda t: t[0] == "ember::dashboard",
    )

    @ray.remote
    def busy_task(gate):
        gate.wait()
        return os.getpid()

    @ray.remote
    def pid():
        return os.getpid()

    @ray.remote
    class Counter:
        def pid(self):
            return os.getpid()

    ref = busy_task.remote(gate)
    gate.wait_arrivals(1)
    (busy,) = [p for p in node.children() if p.name() == "ember::busy_task"]
    assert _titles(busy) == ("ember::busy_task", "ember::busy_task")
    gate.open()
    assert ray.get(ref, timeout=T) == busy.pid
    idle = ("ember::worker", "ember::worker")
    wait_until(lambda: _titles(busy), T, "an idle title", until=lambda titles: titles == idle)

    counter = Counter.remote()
    actor = psutil.Process(ray.get(counter.pid.remote(), timeout=T))
    assert _titles(actor) == ("ember::Counter", "ember::Counter")
    ray.get([pid.remote() for _ in range(4)], timeout=T)
    assert _titles(actor) == ("ember::Counter", "ember::Counter")  # tasks run elsewhere


def test_an_idle_worker_s_loop_does_not_tick_to_rename_it(ray, tmp_path):
    """A worker's loop woke 10 times a second for the whole life of the process to rename it
    idle, idle or not. It ticks only while a task's name is shown."""
    out = tmp_path / "ticks"

    @ray.remote
    def watch(path):
        import threading

        from ember._runtime import proctitle, state

        timers = state.current().reactor._timers

        def ticking():
            return any(getattr(fn, "__name__", "") == "_retitle" for _, _, fn in list(timers))

        def look():  # (not a task: once this one is over and the worker shows it is idle)
            deadline = time.monotonic() + T
            while proctitle._shown != "ember::worker" and time.monotonic() < deadline:
                time.sleep(0.01)
            samples = []
            for _ in range(10):
                samples.append(ticking())
                time.sleep(0.05)
            Path(path).write_text(f"{proctitle._shown} {samples.count(True)}")

        threading.Thread(target=look, daemon=True).start()

    ray.get(watch.remote(str(out)), timeout=T)
    wait_until(lambda: out.exists() and out.read_text(), T, "the worker's report")
    assert out.read_text() == "ember::worker 0"


# --------------------------------------------------------------------------- sessions


def test_a_session_leaves_no_folder(start_ember):
    ray = start_ember(num_cpus=1)
    info = _session()
    assert os.path.isdir(info["session_dir"]) and os.path.isdir(info["shm_dir"])
    ray.shutdown()
    assert not os.path.exists(info["session_dir"])
    assert not os.path.exists(info["shm_dir"])


def test_a_killed_node_keeps_only_its_logs_after_shutdown(start_ember, capfd):
    """A node that was killed (out of memory, say) could not clean up: shutdown() removes its
    shared memory and spilled objects, keeps its logs, and says where they are."""
    from ember._api import session

    ray = start_ember(num_cpus=1)
    info = _session()
    node = session._node.proc
    os.killpg(node.pid, signal.SIGKILL)  # the node and its workers, at once: no clean-up
    node.wait(timeout=T)
    assert os.path.isdir(info["shm_dir"])
    try:
        ray.shutdown()
        assert not os.path.exists(info["shm_dir"])
        assert os.listdir(info["session_dir"]) == ["logs"]
        assert os.path.isfile(os.path.join(info["log_dir"], "node.log"))
        assert f"its logs are kept in {info['log_dir']}" in capfd.readouterr().err
    finally:
        shutil.rmtree(info["session_dir"], ignore_errors=True)


def test_a_node_asked_for_its_stacks_logs_them_and_goes_on(start_ember):
    """What shutdown() sends a node that did not stop when asked, before killing it: the
    node writes where its threads are to its log (kept after the kill), and runs on."""
    from ember._api import session
    from ember._runtime.launch.cluster_files import DUMP_STACKS

    ray = start_ember(num_cpus=1)
    log = Path(_session()["log_dir"], "node.log")
    session._node.proc.send_signal(DUMP_STACKS)
    wait_until(lambda: "manager.py" in log.read_text(), T, "the node's stacks in its log")
    assert ray.get(ray.remote(lambda: 1).remote(), timeout=T) == 1


def test_a_start_interrupted_stops_the_node_and_removes_its_folders(monkeypatch):
    """Ctrl-C while init() (or `ember start`) waits for the node to listen: the node is
    stopped, not left running without anyone to stop it, and its folders go."""
    from ember._runtime.launch import launcher

    def interrupted(*args: Any, **kwargs: Any) -> str:
        raise KeyboardInterrupt

    spawned = launcher.spawn_node(
        resources={"CPU": 1.0}, object_store_memory=64 << 20, prestart_workers=0
    )
    try:
        monkeypatch.setattr(launcher, "_read_line", interrupted)
        with pytest.raises(KeyboardInterrupt):
            spawned.wait()
        assert spawned.proc.poll() is not None
        assert not os.path.exists(spawned.config.session_dir)
        assert not os.path.exists(spawned.config.shm_dir)
    finally:
        if spawned.proc.poll() is None:
            spawned.proc.kill()
            spawned.proc.wait()
            launcher.cluster_files.remove_node_files(
                spawned.config.shm_dir, spawned.config.session_dir
            )


def test_a_crashed_workers_log_is_there_while_the_driver_runs(ray):
    @ray.remote(max_retries=0)
    def crash():
        print("about to crash", flush=True)
        os._exit(1)

    with pytest.raises(ray.exceptions.WorkerCrashedError) as raised:
        ray.get(crash.remote(), timeout=T)
    err = raised.value
    log_dir = _session()["log_dir"]
    assert err.log_path is not None and os.path.dirname(err.log_path) == log_dir
    assert f"{err.log_path} (deleted when the session ends" in str(err)
    assert "EMBER_LOG_DIR" in str(err)
    assert "about to crash" in Path(err.log_path).read_text()


DRIVER = """
import os
import signal
import ember
from ember._runtime import state

ember.init(num_cpus=1)

@ember.remote
def hello():
    print("hello from a task", flush=True)

ember.get(hello.remote(), timeout=30)
info = state.current().info
import sys
# One write: a task's forwarded output may arrive meanwhile, from another thread.
sys.stdout.write(f"FOLDERS {{info['session_dir']}} {{info['shm_dir']}} {{info['log_dir']}}\\n")
sys.stdout.flush()
{end}
"""


def _driver(tmp_path: Path, end: str, **env: str) -> tuple[int, list[str]]:
    """Run a driver to its end; its exit code and the session's folders it printed."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(end=end))
    out = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, **env},
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    folders = next(line for line in out.stdout.splitlines() if line.startswith("FOLDERS "))
    return out.returncode, folders.split()[1:]


def test_a_driver_killed_leaves_no_folder(tmp_path):
    """A driver that dies without shutdown(): its node notices and cleans up all the same."""
    code, (session_dir, shm_dir, _) = _driver(tmp_path, "os.kill(os.getpid(), signal.SIGKILL)")
    assert code == -signal.SIGKILL
    wait_until(lambda: not os.path.exists(session_dir), T, "the node to remove its folder")
    assert not os.path.exists(shm_dir)


def test_EMBER_LOG_DIR_keeps_the_logs(tmp_path):
    code, (session_dir, _, log_dir) = _driver(tmp_path, "", EMBER_LOG_DIR=str(tmp_path / "logs"))
    assert code == 0
    assert Path(log_dir).parent == tmp_path / "logs"
    assert not os.path.exists(session_dir)
    names = os.listdir(log_dir)
    assert "node.log" in names
    assert any(
        "hello from a task" in Path(log_dir, n).read_text()
        for n in names
        if n.startswith("worker-")
    )
