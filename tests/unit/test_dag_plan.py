"""Where a compiled graph's values travel (``_core/dag_plan.py``), with plain values."""

from __future__ import annotations

import pytest

from ember._core.dag_plan import INPUT, Call, plan


def test_one_method_has_an_input_and_an_output_channel() -> None:
    p = plan([Call("a", (INPUT,))], [0])
    assert p.channels == 2
    assert p.inputs == [0] and p.actors["a"].reads == {INPUT: 0}
    assert p.outputs == [1] and p.sends == {0: [1]} and p.output_of == [0]


def test_values_stay_inside_an_actor() -> None:
    # a.f(inp) -> a.g(f) -> a.h(f, g): one input channel, one output, nothing in between
    p = plan([Call("a", (INPUT,)), Call("a", (0,)), Call("a", (0, 1))], [2])
    assert p.channels == 2
    assert p.actors["a"].calls == [0, 1, 2] and p.actors["a"].reads == {INPUT: 0}
    assert p.sends == {0: [], 1: [], 2: [1]}


def test_a_value_crosses_to_each_other_actor_once() -> None:
    # a.f(inp); b.g(f); b.h(f, inp); c.k(f): f goes to b once (for g and h) and to c once
    calls = [Call("a", (INPUT,)), Call("b", (0,)), Call("b", (0, INPUT)), Call("c", (0,))]
    p = plan(calls, [1, 2, 3])
    assert len(p.inputs) == 2  # to a and to b
    assert p.actors["b"].reads.keys() == {0, INPUT}
    assert p.actors["c"].reads.keys() == {0}
    assert sorted(p.sends[0]) == sorted([p.actors["b"].reads[0], p.actors["c"].reads[0]])
    assert p.actors["b"].calls == [1, 2]


def test_outputs_share_a_channel_per_call() -> None:
    p = plan([Call("a", (INPUT,)), Call("b", (0,))], [1, 0, 1])
    assert len(p.outputs) == 2
    assert p.output_of == [0, 1, 0]
    assert p.sends[1] == [p.outputs[0]] and p.outputs[1] in p.sends[0]


def test_every_channel_has_one_writer_and_one_reader() -> None:
    calls = [Call("a", (INPUT,)), Call("b", (INPUT, 0)), Call("a", (1,)), Call("c", (2, 1))]
    p = plan(calls, [3, 2])
    written = [ch for chans in p.sends.values() for ch in chans] + p.inputs
    read = [ch for part in p.actors.values() for ch in part.reads.values()] + p.outputs
    assert sorted(written) == sorted(read) == list(range(p.channels))


def test_a_call_must_come_after_its_sources() -> None:
    with pytest.raises(ValueError, match="does not come before"):
        plan([Call("a", (1,)), Call("b", (INPUT,))], [0])
