"""Progress bars as a user sees them: a driver program runs in a subprocess and its stderr
(where the bars are drawn) and stdout are read back. A ``tqdm_ray`` bar made in a task or an
actor shows on the driver as one bar that reaches its total, what tasks print comes out as
whole lines with none of the bars' state lines among them, and ``ember.util.progress``
follows a list of refs and a generator task to the end.

Ember only: Ray 2.60 draws these bars too, but its driver may exit before a worker's lines
reach it (its shutdown does not wait for them), and it shows counts as ``30.0/30.0``."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
import time

import pytest

import ember
from ember._api import progress_bars
from ember.experimental.tqdm_ray import RAY_TQDM_MAGIC, tqdm
from tests._helpers import wait_until

pytestmark = pytest.mark.ember_only

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _run(script: str) -> tuple[str, str]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert RAY_TQDM_MAGIC not in out.stdout + out.stderr
    return out.stdout, out.stderr


def _drawn(stderr: str) -> list[str]:
    """Every image of a bar that was drawn, in order."""
    text = _ANSI.sub("", stderr)
    return [part.strip() for part in re.split(r"[\r\n]", text) if part.strip()]


def _screen(script: str) -> list[str]:
    """The rows of a terminal (100 columns) that ran ``script``, once it has ended: the
    program's output through a pseudo-terminal, replayed by a terminal that knows what
    ``tqdm`` writes (carriage return, newline, cursor up)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    data = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # every writer is gone
                    break
                if not chunk:
                    break
                data += chunk
            elif process.poll() is not None:
                break
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
    assert process.returncode == 0, data.decode(errors="replace")
    rows: list[list[str]] = [[]]
    row = col = 0
    for token in re.findall(r"\x1b\[\d*[A-Za-z]|.", data.decode(), flags=re.S):
        if token == "\x1b[A":
            row = max(0, row - 1)
        elif token.startswith("\x1b"):
            continue
        elif token == "\r":
            col = 0
        elif token == "\n":
            row += 1
            rows.extend([] for _ in range(row + 1 - len(rows)))
        else:
            line = rows[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = token
            col += 1
    return ["".join(line).rstrip() for line in rows if "".join(line).strip()]


def _finished(stderr: str, desc: str, total: int) -> list[str]:
    pattern = re.compile(rf"{re.escape(desc)}: 100%\|.*\| {total}/{total} ")
    return [image for image in _drawn(stderr) if pattern.search(image)]


def test_bars_in_a_task_and_an_actor_show_on_the_driver_around_printed_lines() -> None:
    stdout, stderr = _run(
        """
        import ember
        from ember.experimental.tqdm_ray import tqdm

        @ember.remote
        def count(n):
            bar = tqdm(total=n, desc="task-bar")
            for i in range(n):
                if i == n // 2:
                    print("halfway through the task")
                bar.update(1)
            bar.close()
            return n

        @ember.remote
        class Counter:
            def run(self, n):
                bar = tqdm(total=n, desc="actor-bar")
                for i in range(n):
                    bar.update(1)
                bar.close()
                return n

        ember.init(num_cpus=2, include_dashboard=False)  # (its INFO line is not a bar)
        counter = Counter.remote()
        assert ember.get([count.remote(30), counter.run.remote(40)]) == [30, 40]
        ember.shutdown()
        """
    )
    assert _finished(stderr, "task-bar", 30), _drawn(stderr)
    assert _finished(stderr, "actor-bar", 40), _drawn(stderr)
    # One bar each: every image of a bar is one of the two.
    assert {re.sub(r".*\b(\w+-bar): .*", r"\1", image) for image in _drawn(stderr)} == {
        "task-bar",
        "actor-bar",
    }, _drawn(stderr)
    lines = [line for line in stdout.splitlines() if "halfway" in line]
    assert len(lines) == 1 and lines[0].endswith(") halfway through the task"), stdout


def test_a_loop_over_a_bar_ends_at_its_total_and_bars_are_drawn_in_local_mode() -> None:
    script = """
        import ember
        from ember.experimental.tqdm_ray import tqdm

        @ember.remote
        def loop(desc, n):
            for i in tqdm(range(n), desc=desc):
                pass
            return n

        ember.init(num_cpus=2, local_mode=LOCAL)
        assert ember.get([loop.remote("first", 25), loop.remote("second", 35)]) == [25, 35]
        for i in tqdm(range(3), desc="driver"):
            print("step", i)
        ember.shutdown()
        """
    for local in (False, True):
        stdout, stderr = _run(script.replace("LOCAL", str(local)))
        for desc, total in (("first", 25), ("second", 35), ("driver", 3)):
            assert _finished(stderr, desc, total), (local, _drawn(stderr))
        assert stdout.splitlines() == ["step 0", "step 1", "step 2"], stdout


def test_progress_follows_refs_and_a_generator_task_to_the_end() -> None:
    _, stderr = _run(
        """
        import ember

        @ember.remote
        def square(i):
            return i * i

        @ember.remote
        def items(n):
            for i in range(n):
                yield i

        ember.init(num_cpus=2)
        refs = [square.remote(i) for i in range(50)]
        assert ember.util.progress(refs, desc="squares") == refs
        assert ember.get(refs) == [i * i for i in range(50)]
        streamed = ember.util.progress(items.remote(7), desc="items")
        assert ember.get(streamed) == list(range(7))
        one = square.remote(3)
        assert ember.util.progress(one, desc="one") is one
        ember.shutdown()
        """
    )
    assert _finished(stderr, "squares", 50), _drawn(stderr)
    assert any(image.startswith("items: 7it ") for image in _drawn(stderr)), _drawn(stderr)
    assert _finished(stderr, "one", 1), _drawn(stderr)


def test_on_a_terminal_lines_printed_meanwhile_and_the_bars_end_whole() -> None:
    screen = _screen(
        """
        import time
        import ember
        from ember.experimental.tqdm_ray import tqdm

        @ember.remote
        def work(name, n):
            for i in tqdm(range(n), desc=name):
                time.sleep(0.02)
                if i % 10 == 5:
                    print(f"{name} says {i}")
            return n

        ember.init(num_cpus=2, include_dashboard=False)  # (its INFO line is not a bar)
        refs = [work.remote("left", 30), work.remote("right", 20)]
        assert ember.get(ember.util.progress(refs, desc="both")) == [30, 20]
        print("done")
        ember.shutdown()
        """
    )
    said = [f"left says {i}" for i in (5, 15, 25)] + [f"right says {i}" for i in (5, 15)]
    bars = {"left": 30, "right": 20, "both": 2}
    for row in screen:  # each row is one whole line or one finished bar, nothing torn
        text = re.sub(r"^\(work pid=\d+\) ", "", row)
        bar = re.fullmatch(r"(\w+): 100%\|█+\| (\d+)/(\d+) \[.*\]", text)
        if bar:
            assert bars.pop(bar[1]) == int(bar[2]) == int(bar[3]), screen
        else:
            assert text in said or text == "done", screen
            if text in said:
                said.remove(text)
    # (Not in a given order: a task's result comes straight from its worker, its lines and
    # bar states through the node, so "done" may come before a bar's final image.)
    assert not bars and not said, screen


def test_progress_refuses_what_is_not_a_ref(ray: object) -> None:
    with pytest.raises(TypeError, match="item 1 is a int"):
        ember.util.progress([ember.put(1), 2])
    with pytest.raises(TypeError, match="got int"):
        ember.util.progress(5)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="total is for an ObjectRefGenerator"):
        ember.util.progress([ember.put(1)], total=3)
    with pytest.raises(ValueError, match="interval"):
        ember.util.progress([], interval=0)
    assert ember.util.progress([]) == []


def test_the_bar_of_a_killed_actor_ends_without_shutdown(ray: object) -> None:
    @ember.remote
    class Holder:
        def open(self) -> int:
            self.bar = tqdm(total=10, desc="held-bar")
            self.bar.update(3)
            return os.getpid()

    def held() -> list[str]:
        shown = progress_bars._display
        bars = list(shown.bars.values()) if shown is not None else []
        return [state.uuid for _, state in bars if state.desc == "held-bar"]

    holder = Holder.remote()  # type: ignore[attr-defined]
    ember.get(holder.open.remote(), timeout=60)
    wait_until(held, 30, "the actor's bar shown on the driver")
    ember.kill(holder)
    wait_until(held, 30, "the killed actor's bar ended", until=lambda uuids: not uuids)
