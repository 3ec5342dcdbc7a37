"""Every program in examples/ runs to the end and exits 0.

Each example is a Ray program doing ``import ember as ray``; it checks its own
results with asserts. It runs in a subprocess of its own, in a new session, so
that on a timeout the whole process group (the example and every process its
runtime started) can be killed, and so that processes left behind after it
exits can be found and reported.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.py"))
TIMEOUT_SECONDS = 120
# How long processes of the example's session may take to exit after it has.
LINGER_SECONDS = 10


def _environment(results: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TUNE_RESULT_DIR"] = str(results)  # the Tune examples' experiments go there
    paths = [str(REPO / "src")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _session_members(session_id: int) -> list[psutil.Process]:
    """Processes still in the session (and process group) the example led."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session_id or os.getpgid(process.pid) == session_id:
                members.append(process)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def _kill_session(session_id: int) -> None:
    """Kill the example's process group and whatever else is left of its session."""
    try:
        os.killpg(session_id, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    survivors = _session_members(session_id)
    for process in survivors:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(survivors, timeout=5)


def _describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} ({' '.join(process.cmdline()[:3])})"
    except psutil.Error:
        return str(process.pid)


def _report(stdout: str, stderr: str) -> str:
    return f"\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"


def test_examples_exist() -> None:
    names = {path.name for path in EXAMPLES}
    assert "demo.py" in names, sorted(names)


@pytest.mark.timeout(TIMEOUT_SECONDS + LINGER_SECONDS + 60)
@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs(example: Path, tmp_path: Path) -> None:
    # Output goes to files, not pipes: a process left behind holding the pipes
    # open would otherwise keep the test waiting after the example has exited.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [sys.executable, str(example)],
            cwd=REPO,
            env=_environment(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        session_id = process.pid
        timed_out = False
        try:
            process.wait(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if process.poll() is None:  # timed out, or interrupted: never leave it running
                _kill_session(session_id)
                process.wait()

        leftovers = []
        if not timed_out:
            deadline = time.monotonic() + LINGER_SECONDS
            while _session_members(session_id) and time.monotonic() < deadline:
                time.sleep(0.2)
            leftovers = [_describe(p) for p in _session_members(session_id)]
        _kill_session(session_id)

        out.seek(0)
        err.seek(0)
        report = _report(out.read().decode(errors="replace"), err.read().decode(errors="replace"))

    assert not timed_out, f"{example.name} did not finish within {TIMEOUT_SECONDS} s" + report
    assert process.returncode == 0, f"{example.name} exited with {process.returncode}" + report
    assert not leftovers, (
        f"{example.name} left processes running {LINGER_SECONDS} s after it exited "
        f"(now killed): {leftovers}" + report
    )
