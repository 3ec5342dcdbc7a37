"""Where a compiled graph's values travel: which channels to make, who writes and reads each.

The graph is given as its actor calls in an order where each comes after the calls it takes
(``Call``: the actor it runs on and its sources, call positions or ``INPUT``) and the positions
of its outputs. A value crosses a process only through a channel, and only where it must: one
channel carries the input to each actor that reads it (the driver writes them all); one carries
a call's result to each *other* actor that takes it, however many of that actor's calls do; one
carries it to the driver when it is an output, however many outputs name it. A value taken by
a call of the same actor is passed in that process. Each actor runs its calls in the given
order, so its loop reads a channel when a call first needs it and writes a result as soon as
it is made: the order is one the whole graph agrees with, which keeps one-slot channels free of
deadlock.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

INPUT = -1  # the source that is the graph's input


@dataclass(frozen=True)
class Call:
    actor: Hashable
    sources: tuple[int, ...]  # positions of the calls it takes, or INPUT


@dataclass
class ActorPart:
    """One actor's share: its calls in order, and the channels it reads from (by source)."""

    calls: list[int] = field(default_factory=list)
    reads: dict[int, int] = field(default_factory=dict)


@dataclass
class Plan:
    channels: int  # how many to make, numbered from 0
    actors: dict[Hashable, ActorPart]
    sends: dict[int, list[int]]  # call -> the channels its result is written to
    inputs: list[int]  # the channels the driver writes each input to
    outputs: list[int]  # the channels the driver reads, one per distinct output call
    output_of: list[int]  # output position -> index in ``outputs``


def plan(calls: Sequence[Call], outputs: Sequence[int]) -> Plan:
    """The channels of a graph of ``calls`` (each after its sources) ending in ``outputs``."""
    count = 0
    actors: dict[Hashable, ActorPart] = {}
    sends: dict[int, list[int]] = {i: [] for i in range(len(calls))}
    inputs: list[int] = []
    for i, call in enumerate(calls):
        part = actors.setdefault(call.actor, ActorPart())
        part.calls.append(i)
        for source in call.sources:
            if source != INPUT and not 0 <= source < i:
                raise ValueError(f"call {i} takes call {source}, which does not come before it")
            if source in part.reads or (source != INPUT and calls[source].actor == call.actor):
                continue
            part.reads[source] = count
            (inputs if source == INPUT else sends[source]).append(count)
            count += 1
    driver: dict[int, int] = {}  # output call -> index in the driver's channels
    out_channels: list[int] = []
    for source in outputs:
        if source not in driver:
            driver[source] = len(out_channels)
            out_channels.append(count)
            sends[source].append(count)
            count += 1
    return Plan(count, actors, sends, inputs, out_channels, [driver[source] for source in outputs])
