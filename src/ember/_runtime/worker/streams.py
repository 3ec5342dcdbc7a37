"""A worker's generator tasks: each item goes to the caller as it is yielded, and the task
pauses under backpressure (``_core.generator_stream.must_pause``) until the caller takes more.
Also a generator with a fixed ``num_returns``, whose values are stored as they are yielded."""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ember import exceptions as exc
from ember._core.generator_stream import must_pause
from ember._protocol import messages as m
from ember._protocol.messages import ReturnValue
from ember._runtime import serialization
from ember._runtime.task_context import TaskContext
from ember._transport.reactor import Connection

if TYPE_CHECKING:
    import asyncio


class _Outflow:
    """A running generator task's items: how many it yielded and how many its caller said it
    took, which pause it under backpressure (``must_pause``) until the caller takes more."""

    __slots__ = ("conn", "threshold", "produced", "consumed", "cond", "on_change")

    def __init__(
        self, conn: Connection, threshold: int, on_change: Callable[[], object] | None = None
    ) -> None:
        self.conn = conn
        self.threshold = threshold
        self.produced = 0
        self.consumed = 0
        self.cond = threading.Condition()
        self.on_change = on_change  # (an async actor's: wakes its pause on the loop)

    def taken(self, consumed: int) -> None:
        """Reactor thread: the caller took ``consumed`` items (-1: it wants no more, or it
        is gone: never pause again)."""
        with self.cond:
            if consumed < 0:
                self.threshold = -1
            self.consumed = max(self.consumed, consumed)
            self.cond.notify_all()
        if self.on_change is not None:
            self.on_change()

    def pause(self, ctx: TaskContext) -> None:
        """The task's thread, after an item: wait while backpressure says so, or until the
        task is cancelled."""
        with self.cond:
            while must_pause(self.produced, self.consumed, self.threshold):
                if ctx.cancelled:
                    raise exc.TaskCancelledError(ctx.task_id.hex())
                self.cond.wait()

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()
        if self.on_change is not None:
            self.on_change()


ReturnValueOf = Callable[[m.PushTask, int, serialization.Serialized], ReturnValue]
FailureOf = Callable[[m.PushTask, TaskContext, BaseException], list[ReturnValue]]


class Streams:
    """The worker's running generator tasks, by task id. ``return_value`` stores one of a
    task's return objects, ``failure`` makes its error values (the worker's own)."""

    def __init__(self, return_value: ReturnValueOf, failure: FailureOf) -> None:
        self.return_value = return_value
        self.failure = failure
        self.outflows: dict[bytes, _Outflow] = {}

    def taken(self, task_id: bytes, consumed: int) -> None:
        """Reactor thread: the caller of a generator task took ``consumed`` of its items."""
        flow = self.outflows.get(task_id)
        if flow is not None:
            flow.taken(consumed)

    def caller_gone(self, conn: Connection) -> None:
        """Reactor thread: a generator task paused for a caller that is gone goes on."""
        for flow in list(self.outflows.values()):
            if flow.conn is conn:
                flow.taken(-1)

    def wake(self, task_id: bytes) -> None:
        """The task was cancelled: if paused by backpressure, it raises when woken."""
        flow = self.outflows.get(task_id)
        if flow is not None:
            flow.wake()

    def stream(self, conn: Connection, msg: m.PushTask, ctx: TaskContext, gen: Any) -> None:
        """Run a generator task's generator, sending each item to the caller as it comes,
        paused by backpressure; its return value only says that it is over."""
        flow = self.outflows[msg.task_id] = _Outflow(conn, msg.backpressure)
        try:
            for item in gen:
                self.emit(flow, msg, item)
                flow.pause(ctx)
        finally:
            self.outflows.pop(msg.task_id, None)

    async def stream_async(
        self, conn: Connection, msg: m.PushTask, ctx: TaskContext, gen: Any
    ) -> None:
        """``stream`` on an async actor's loop, for an async or a sync generator (which runs on
        the loop too, as in Ray): a pause under backpressure awaits the caller's word, so the
        loop's other calls go on meanwhile (no thread waits: any number may be paused)."""
        import asyncio

        loop = asyncio.get_running_loop()
        woken = asyncio.Event()
        flow = _Outflow(conn, msg.backpressure, lambda: loop.call_soon_threadsafe(woken.set))
        self.outflows[msg.task_id] = flow
        try:
            if inspect.isasyncgen(gen):
                async for item in gen:
                    self.emit(flow, msg, item)
                    await self._pause_async(flow, ctx, woken)
            else:
                for item in gen:
                    self.emit(flow, msg, item)
                    await self._pause_async(flow, ctx, woken)
        finally:
            self.outflows.pop(msg.task_id, None)

    @staticmethod
    async def _pause_async(flow: _Outflow, ctx: TaskContext, woken: asyncio.Event) -> None:
        """``_Outflow.pause`` on the loop: the flow sets ``woken`` (on the loop, so after the
        clear below) whenever the caller takes items or the task is cancelled."""
        while must_pause(flow.produced, flow.consumed, flow.threshold):
            if ctx.cancelled:
                raise exc.TaskCancelledError(ctx.task_id.hex())
            woken.clear()
            await woken.wait()

    def emit(self, flow: _Outflow, msg: m.PushTask, item: Any) -> None:
        """Store one item as the task's next return object and tell the caller."""
        index = flow.produced
        value = self.return_value(msg, index + 2, serialization.serialize(item))
        flow.conn.send(m.GeneratorItem(task_id=msg.task_id, index=index, value=value))
        flow.produced = index + 1

    def pack_yielded(self, msg: m.PushTask, ctx: TaskContext, gen: Any) -> list[ReturnValue]:
        """A generator's ``num_returns`` values, each stored as it is yielded (so the worker
        holds one at a time); if it raises, or yields fewer, the refs left hold the error. As in
        Ray, one value too many ends it: its first values stand and the error is only printed."""
        n = msg.num_returns
        results: list[ReturnValue] = []
        try:
            for item in gen:
                if len(results) == n:
                    raise ValueError(
                        f"{msg.name!r} was declared with num_returns={n} but yielded more values"
                    )
                ser = serialization.serialize(item)
                results.append(self.return_value(msg, len(results) + 1, ser))
            if len(results) < n:
                raise ValueError(
                    f"{msg.name!r} was declared with num_returns={n} but yielded "
                    f"{len(results)} values"
                )
        except (Exception, KeyboardInterrupt) as e:  # (a cancel too keeps the values made)
            if len(results) == n:
                print(f"Error in task {msg.name!r}: {e}", file=sys.stderr)
            return results + self.failure(msg, ctx, e)[len(results) :]
        return results
