"""The control store's gathering of one state query from the nodes."""

from __future__ import annotations

from typing import Any

from ember._protocol import messages as m
from ember._runtime.control_store.state_queries import _Gather


class _Conn:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.later: list[tuple[float, Any]] = []
        self.reactor = self

    def send(self, msg: Any) -> None:
        self.sent.append(msg)

    def call_later(self, delay: float, fn: Any) -> None:
        self.later.append((delay, fn))


def test_a_finished_gather_keeps_no_rows_while_its_expiry_timer_holds_it():
    conn = _Conn()
    query = m.StateQuery(rid=7, kind="task_runs", limit=1_000_000)
    gather = _Gather(conn, query, {"a", "b"}, 5.0, None)  # type: ignore[arg-type]
    big = [{"runs": list(range(1000))}]
    for node in ("a", "b"):
        gather.answered(node, m.Reply(rid=1, value={"rows": big, "total": 1, "warnings": []}))
    (reply,) = conn.sent
    assert reply.rid == 7 and len(reply.value["rows"]) == 2 and reply.value["total"] == 2
    # (each answer used to stay referenced until the 5 s expiry: three timelines of
    # 100,000 tasks in a row held 75 MB in the head)
    assert gather.parts == []
    gather.expire()  # the timer, later: nothing more is sent
    assert len(conn.sent) == 1
