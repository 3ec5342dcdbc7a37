"""``tqdm`` for tasks and actors, at Ray's path (``ray.experimental.tqdm_ray``): a bar made in
a task or an actor shows on the driver as a real ``tqdm`` bar, one line per bar, with the
bars of every process of the job kept apart and printed lines written around them.

In a worker, a bar sends its whole state as one line on the worker's stdout (``encode`` in
``_core.progress_bars``), at most once per ``flush_interval_s`` and always when it closes;
the driver draws it (``_api.progress_bars``). In the driver, or in a task of local mode, the
bar is drawn directly. Like Ray's, it takes a few of ``tqdm``'s arguments, not all.

This module is a core feature at Ray's experimental path, so the layering rule places it
with the public API (``tests/unit/test_layering.py``), not with the libraries.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from ember._api.progress_bars import safe_print
from ember._api.progress_bars import show as _show
from ember._core.progress_bars import MAGIC, BarState, Throttle, encode
from ember._runtime import state as _state
from ember._runtime.worker.output import send_to_driver

__all__ = ["RAY_TQDM_MAGIC", "safe_print", "tqdm"]

# What marks a worker's printed line as a bar's state.
RAY_TQDM_MAGIC = MAGIC

_T = TypeVar("_T")


class tqdm(Generic[_T]):  # noqa: N801 (Ray's and tqdm's name)
    """A progress bar that shows on the driver wherever it is made (``tqdm``'s ``update``,
    ``close``, ``refresh``, ``set_description``, ``n``, ``total``, iteration, and use as a
    context manager).

    ``position`` orders the bars of one process (an inner loop's bar below its outer one).
    ``flush_interval_s`` (default 0.1 s) is the least time between two states sent to the
    driver: a bar updated a million times a second prints ten lines a second. (Ray's
    default is 1 s, which makes a bar jump; ten short lines a second cost a worker nothing.)
    """

    DEFAULT_FLUSH_INTERVAL_SECONDS = 0.1

    def __init__(
        self,
        iterable: Iterable[_T] | None = None,
        desc: str | None = None,
        total: float | None = None,
        unit: str | None = None,
        position: int | None = None,
        flush_interval_s: float | None = None,
    ) -> None:
        self._closed = True  # (until it is made: nothing to close if this raises)
        if position is not None and (
            isinstance(position, bool) or not isinstance(position, int) or position < 0
        ):
            raise ValueError(f"tqdm: position must be an int >= 0 or None, got {position!r}")
        if flush_interval_s is None:
            flush_interval_s = self.DEFAULT_FLUSH_INTERVAL_SECONDS
        if not isinstance(flush_interval_s, (int, float)) or flush_interval_s < 0:
            raise ValueError(
                f"tqdm: flush_interval_s must be a number of seconds >= 0, got {flush_interval_s!r}"
            )
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        runtime = _state.current()
        self._iterable = iterable
        self._state = BarState(
            uuid=uuid.uuid4().hex,
            total=total,
            desc=desc or "",
            unit=unit or "it",
            pos=position or 0,
            pid=os.getpid(),
            node=runtime.node_id.hex() if runtime is not None else "",
        )
        self._throttle = Throttle(flush_interval_s)
        self._closed = False
        self._send()  # the bar shows at once, before its first step

    def set_description(self, desc: str | None = None) -> None:
        self._state.desc = desc or ""
        self._send()

    def update(self, n: float = 1) -> None:
        self._state.x += n
        self._send()

    def refresh(self) -> None:
        self._send()

    def close(self) -> None:
        """Send the final state (a closed bar stays on the driver's screen, finished)."""
        if self._closed:
            return
        self._closed = True
        self._state.closed = True
        self._send(force=True)

    @property
    def total(self) -> float | None:
        return self._state.total

    @total.setter
    def total(self, total: float | None) -> None:
        self._state.total = total

    @property
    def n(self) -> float:
        return self._state.x

    @n.setter
    def n(self, n: float) -> None:
        self._state.x = n

    def __iter__(self) -> Iterator[_T]:
        """Each item counts once the loop's body is done with it; the bar closes when the
        loop ends, however it ends."""
        if self._iterable is None:
            raise ValueError("No iterable provided")
        try:
            for item in self._iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> tqdm[_T]:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter teardown: the streams may be gone
            pass

    def _send(self, force: bool = False) -> None:
        # Once closed, only the final state goes (the driver would open a new bar for more).
        if self._closed and not force:
            return
        if not self._throttle.due(time.monotonic(), force):
            return
        if not send_to_driver(encode(self._state)):
            _show(dataclasses.replace(self._state))
