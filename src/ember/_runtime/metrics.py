"""This process's user metrics: recorded by ``ember.util.metrics`` from any thread, sent to
the node by the process's client (``CoreClient.report_metrics``)."""

from __future__ import annotations

import threading

from ember._core.metrics import MetricsBuffer
from ember._protocol import messages as m

lock = threading.Lock()  # held around every use of ``buffer``
buffer = MetricsBuffer()


def take_report() -> m.MetricsReport | None:
    """What changed since the last report, if anything did."""
    with lock:
        points, dropped = buffer.take()
    return m.MetricsReport(points=points, dropped=dropped) if points or dropped else None
