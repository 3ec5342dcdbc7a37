"""This process's user metrics: recorded by ``ember.util.metrics`` from any thread, sent to
the node by the process's client (``CoreClient.report_metrics``)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ember._core.metrics import MetricsBuffer
from ember._protocol import messages as m

lock = threading.Lock()  # held around every use of ``buffer``
buffer = MetricsBuffer()


def report(send: Callable[[m.MetricsReport], None]) -> None:
    """Send what changed since the last report, if anything did. Taken and sent under the
    lock (``send`` only queues the message): a report taken later is sent later, so the
    node, which keeps a process's last report, never ends with an older one."""
    with lock:
        points, dropped = buffer.take()
        if points or dropped:
            send(m.MetricsReport(points=points, dropped=dropped))
