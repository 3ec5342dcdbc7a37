"""tqdm_ray's bar-state protocol (``_core.progress_bars``) with plain values, a worker's bar
writing its states at the rate it is allowed, and the driver turning state lines into bars."""

from __future__ import annotations

import re

import pytest

from ember._api import progress_bars as display
from ember._core.progress_bars import (
    MAGIC,
    BarLayout,
    BarState,
    OpenBars,
    Throttle,
    decode,
    encode,
    process_ended,
)
from ember.experimental import tqdm_ray


def test_a_state_survives_its_line_and_the_prefix_in_front_of_it() -> None:
    state = BarState(uuid="u1", x=3, total=10, desc="load", unit="file", pos=1, pid=7, node="ab")
    line = encode(state)
    assert line.startswith(MAGIC) and "\n" not in line
    assert decode(line) == ("", state)
    assert decode("(f pid=7) " + line) == ("(f pid=7) ", state)
    closed = BarState(uuid="u2", x=2.5, desc='quote " and \n newline', closed=True)
    assert decode(encode(closed)) == ("", closed)


@pytest.mark.parametrize(
    "line",
    [
        "plain text",
        MAGIC,
        MAGIC + "{not json",
        MAGIC + "[1, 2]",
        MAGIC + '{"uuid": "u"}',  # fields missing
        encode(BarState(uuid="u")).replace('"pos":0', '"pos":-1'),
        encode(BarState(uuid="u")).replace('"x":0', '"x":"3"'),
        encode(BarState(uuid="u")).replace('"closed":false', '"closed":false,"extra":1'),
    ],
)
def test_a_line_that_carries_no_well_formed_state_is_text(line: str) -> None:
    assert decode(line) is None


def test_throttle_sends_the_first_state_then_one_per_interval_and_always_the_final() -> None:
    throttle = Throttle(0.25)
    assert throttle.due(100.0)
    assert not throttle.due(100.125)
    assert throttle.due(100.25)
    assert not throttle.due(100.375)
    assert throttle.due(100.375, force=True)
    assert not throttle.due(100.5)  # the forced one counted as sent


def test_layout_stacks_processes_and_keeps_a_process_bars_together() -> None:
    layout = BarLayout()
    a, b = ("n1", 10), ("n1", 11)
    layout.add(a, "a0", 0)
    layout.add(b, "b0", 0)
    assert layout.lines() == {"a0": 0, "b0": 1}
    layout.add(a, "a1", 1)  # an inner bar of process a: below a's, so b moves down
    assert layout.lines() == {"a0": 0, "a1": 1, "b0": 2}
    layout.add(a, "a-again", 0)  # the same position again: the next free line of a's block
    assert layout.lines() == {"a0": 0, "a1": 1, "a-again": 2, "b0": 3}


def test_layout_gives_lines_back_when_bars_close() -> None:
    layout = BarLayout()
    a, b, c = ("n1", 1), ("n2", 1), ("n1", 2)
    for source, uuid in ((a, "a"), (b, "b"), (c, "c")):
        layout.add(source, uuid, 0)
    layout.remove(b, "b")
    assert layout.lines() == {"a": 0, "c": 1}
    layout.remove(b, "b")  # twice: nothing happens
    layout.add(b, "b2", 2)  # a bar at position 2 alone: its block is three lines tall
    layout.add(("n3", 1), "d", 0)
    assert layout.lines() == {"a": 0, "c": 1, "b2": 4, "d": 5}


def test_open_bars_end_the_silent_ones_and_the_oldest_beyond_the_cap() -> None:
    bars = OpenBars(idle=10, cap=2)
    bars.seen("a", 0)
    bars.seen("b", 1)
    bars.seen("a", 5)  # a moved on: b is now the one silent longest
    assert bars.due(10) == []
    bars.seen("c", 10)
    assert bars.due(10) == [("b", "ended: over 2 bars open")]
    bars.forget("c")  # closed by its owner
    assert bars.due(14) == []
    assert bars.due(15) == [("a", "ended: silent for 10 s")]
    assert (len(bars), bars.silent, bars.over_cap) == (0, 1, 1)


def test_a_worker_bar_writes_its_first_and_final_state_and_few_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(tqdm_ray, "send_to_driver", lambda line: sent.append(line) or True)
    for _ in tqdm_ray.tqdm(range(10_000), desc="steps", flush_interval_s=3600):
        pass
    states = [decode(line) for line in sent]
    assert [(s.x, s.total, s.closed) for _, s in states] == [
        (0, 10_000, False),
        (10_000, 10_000, True),
    ]  # type: ignore[union-attr]


def test_bar_methods_and_bad_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []
    monkeypatch.setattr(tqdm_ray, "send_to_driver", lambda line: sent.append(line) or True)
    with tqdm_ray.tqdm(desc="a", flush_interval_s=0) as bar:
        bar.total = 5
        bar.update(2)
        bar.n = 4
        bar.set_description("b")
        bar.refresh()
        assert (bar.n, bar.total) == (4, 5)
    bar.close()  # a second close sends nothing
    last = decode(sent[-1])
    assert last is not None and (last[1].x, last[1].desc, last[1].closed) == (4, "b", True)
    assert len(sent) == 5  # made, update, description, refresh, close
    with pytest.raises(ValueError, match="position"):
        tqdm_ray.tqdm(position=-1)
    with pytest.raises(ValueError, match="flush_interval_s"):
        tqdm_ray.tqdm(flush_interval_s=-1)
    with pytest.raises(ValueError, match="No iterable"):
        iter(tqdm_ray.tqdm(flush_interval_s=0)).__next__()


def test_a_closed_bar_sends_nothing_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver would draw a late state as a new bar, opened and closed again."""
    sent: list[str] = []
    monkeypatch.setattr(tqdm_ray, "send_to_driver", lambda line: sent.append(line) or True)
    bar = tqdm_ray.tqdm(desc="a", flush_interval_s=0)
    bar.close()
    bar.update(1)
    bar.set_description("b")
    bar.refresh()
    bar.close()
    assert len(sent) == 2  # made, closed


def test_the_driver_draws_state_lines_as_bars_and_keeps_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def line(x: int, closed: bool = False) -> str:
        return "(f pid=7) " + encode(BarState(uuid="drawn", x=x, total=4, desc="d", closed=closed))

    text = display.show_lines([line(0), "(f pid=7) hello", line(2), line(4, closed=True)])
    assert text == ["(f pid=7) hello"]
    err = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", capsys.readouterr().err)
    shown = [part.strip() for part in re.split(r"[\r\n]", err) if part.strip()]
    assert shown[-1].startswith("(f pid=7) d: 100%") and "4/4" in shown[-1], shown


def test_the_driver_ends_the_bars_of_a_process_that_ended(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def line(uuid: str, pid: int) -> str:
        return encode(BarState(uuid=uuid, x=1, total=4, desc=uuid, pid=pid, node="n"))

    assert display.show_lines([line("left-1", 8), line("left-2", 8), line("other", 9)]) == []
    assert display._display is not None
    open_bars = display._display.bars
    assert {"left-1", "left-2", "other"} <= set(open_bars)
    assert display.show_lines([process_ended("n", 8)]) == []
    assert "left-1" not in open_bars and "left-2" not in open_bars and "other" in open_bars
    assert "ended: its process ended" in capsys.readouterr().err
    display.show_lines([encode(BarState(uuid="other", x=4, total=4, pid=9, node="n", closed=True))])
    assert "other" not in open_bars


def test_the_driver_ends_the_bar_silent_longest_beyond_the_cap(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import tqdm

    shown = display._Display(tqdm.tqdm)
    shown.open = OpenBars(cap=1)
    shown.show(BarState(uuid="first", total=4, desc="first", pid=1), "")
    shown.show(BarState(uuid="second", total=4, desc="second", pid=2), "")
    assert list(shown.bars) == ["second"] and shown.open.over_cap == 1
    assert "ended: over 1 bars open" in capsys.readouterr().err
    shown.close_all()
