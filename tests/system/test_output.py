"""What tasks print reaches the driver even when it leaves right away: a task's result comes
straight from its worker while its printed lines come through the node, so ``shutdown()`` and
interpreter exit wait (briefly) for the lines. Checked against Ray 2.60: a driver that exits
shows the lines its tasks printed, also those of tasks it never waited for, and does not wait
for a task still running."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

CYCLES = 20

# Each cycle gets results and leaves at once: shutdown(), and interpreter exit for the last.
_LEAVES_AT_ONCE = textwrap.dedent(
    """
    import json, sys
    import ember as ray

    address, cycles, options = sys.argv[1] or None, int(sys.argv[2]), json.loads(sys.argv[3])

    @ray.remote
    def say(cycle, i):
        print(f"line {cycle}.{i}")
        return i

    for cycle in range(cycles):
        ray.init(address) if address else ray.init(num_cpus=2)
        assert ray.get([say.options(**options).remote(cycle, i) for i in range(3)]) == [0, 1, 2]
        if cycle < cycles - 1:
            ray.shutdown()
    """
)


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _every_line_arrived(stdout: str, cycles: int) -> None:
    lines = {line.split(") ", 1)[-1] for line in stdout.splitlines()}
    missing = [f"line {c}.{i}" for c in range(cycles) for i in range(3)]
    missing = [line for line in missing if line not in lines]
    assert not missing, f"lost: {missing}\n{stdout}"


def test_lines_printed_before_the_result_reach_a_driver_that_leaves_at_once() -> None:
    _every_line_arrived(_run(_LEAVES_AT_ONCE, "", str(CYCLES), "{}"), CYCLES)


@pytest.mark.ember_only
def test_on_a_cluster_and_in_client_mode_too(make_cluster: Any, tmp_path: Path) -> None:
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"far": 1}})
    far = '{"resources": {"far": 1}}'  # printed on the other node
    cycles = CYCLES // 2
    _every_line_arrived(_run(_LEAVES_AT_ONCE, cluster.address, str(cycles), far), cycles)
    # Client mode: no node on "this host" (a folder without records), the token by env.
    env = dict(os.environ, EMBER_TOKEN=cluster.token, TMPDIR=str(tmp_path))
    for options in ("{}", far):
        stdout = _run(_LEAVES_AT_ONCE, f"ember://{cluster.address}", str(cycles), options, env=env)
        _every_line_arrived(stdout, cycles)


def test_tasks_never_waited_for_are_heard_and_do_not_hold_the_exit(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys, time
        import ember as ray

        ray.init(num_cpus=2)

        @ray.remote
        def quick(i):
            print(f"quick {i}")

        @ray.remote
        class Forever:
            def run(self, marker):
                print("forever started", flush=True)
                open(marker, "w").close()
                time.sleep(300)

        ray.get(quick.remote(-1))  # a worker is up
        Forever.remote().run.remote(sys.argv[1])
        while not os.path.exists(sys.argv[1]):
            time.sleep(0.01)
        for i in range(3):
            quick.remote(i)
        """
    )
    stdout = _run(script, str(tmp_path / "started"))  # (a wait for "forever" would time out)
    lines = {line.split(") ", 1)[-1] for line in stdout.splitlines()}
    assert {"forever started", "quick 0", "quick 1", "quick 2"} <= lines, stdout
