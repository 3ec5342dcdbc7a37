"""The control store answers the state API (``StateQuery``): the kinds it holds itself
(nodes, jobs, ...) from its own tables; every other kind by asking each live node, which
filters its own rows (``_runtime/node/state_rows.py``), and merging their answers. Nothing
is gathered ahead of a question: the head merges on request.

A node that does not answer within ``ANSWER_SECONDS`` (busy, or dying), or before the asker
stops waiting (the query's ``timeout`` less ``MARGIN_SECONDS``), is left out and named in the
answer's warnings, so a question never hangs on one node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ember._core import state_filters, state_summary
from ember._protocol import messages as m
from ember._runtime.control_store import state_rows
from ember._runtime.memory import after_big_answer

if TYPE_CHECKING:
    from ember._runtime.control_store.server import ControlStore, PeerConnection

ANSWER_SECONDS = 5.0
MARGIN_SECONDS = 0.5  # (for the answer's way back)

Rows = list[dict[str, Any]]
# How the rows of one kind from several nodes become one list (by default, one after another).
Merge = Callable[[list[Rows]], Rows]


class StateQueries:
    def __init__(self, store: ControlStore) -> None:
        self.store = store
        self.own: dict[str, Callable[[bool], Rows]] = {
            "nodes": lambda detail: state_rows.node_rows(store, detail),
            "jobs": lambda detail: state_rows.job_rows(store, detail),
            "placement_groups": lambda detail: state_rows.placement_group_rows(store, detail),
        }
        self.merges: dict[str, Merge] = {kind: _merge_counts for kind in state_summary.COUNT_KINDS}

    def handle(self, conn: PeerConnection, msg: m.Message) -> bool:
        """Answer a ``StateQuery`` (or pass a ``ReadLog`` on); False if ``msg`` is neither."""
        if isinstance(msg, m.ReadLog):
            self.read_log(conn, msg)
            return True
        if not isinstance(msg, m.StateQuery):
            return False
        own = self.own.get(msg.kind)
        if own is not None:
            conn.send(_own_answer(msg, own))
            return True
        nodes = [e for e in self.store.nodes.values() if e.alive and e.conn is not None]
        wait = max(0.0, min(ANSWER_SECONDS, msg.timeout - MARGIN_SECONDS))
        gather = _Gather(
            conn, msg, {e.node_id.hex() for e in nodes}, wait, self.merges.get(msg.kind)
        )
        for entry in nodes:
            assert entry.conn is not None
            self.store.calls.call(entry.conn, _asking(msg), _answered(gather, entry.node_id.hex()))
        conn.reactor.call_later(wait, gather.expire)
        gather.maybe_done()
        return True

    def read_log(self, conn: PeerConnection, msg: m.ReadLog) -> None:
        """A log file is read by its node: the request goes there, its answer back."""
        entry = self.store.nodes.get(msg.node_id)
        if entry is None or not entry.alive or entry.conn is None:
            conn.send(
                m.error_reply(
                    msg.rid, m.ErrorKind.INVALID, f"no live node {msg.node_id.hex()} to read from"
                )
            )
            return

        def answered(answer: m.Answer) -> None:
            if isinstance(answer, m.Reply) and answer.kind is m.ErrorKind.CONNECTION_LOST:
                text = f"node {msg.node_id.hex()} went away before it answered"
                answer = m.error_reply(0, m.ErrorKind.NODE_DIED, text)
            conn.send(m.replace(answer, rid=msg.rid))

        self.store.calls.call(entry.conn, lambda rid: m.replace(msg, rid=rid), answered)


def _own_answer(msg: m.StateQuery, own: Callable[[bool], Rows]) -> m.Reply:
    try:
        found = own(msg.detail)
        if not msg.detail and state_filters.needs_detail(found, msg.filters):
            found = own(True)
        rows, total = state_filters.select(found, msg.filters, msg.limit)
    except Exception as e:  # (a bug: said, not mistaken for a timeout)
        return m.error_reply(
            msg.rid,
            m.ErrorKind.INVALID,
            f"the control store failed to list its {msg.kind}: {type(e).__name__}: {e}",
        )
    return m.Reply(rid=msg.rid, value={"rows": rows, "total": total, "warnings": []})


class _Gather:
    """One question to the nodes, until all have answered or the time is up."""

    def __init__(
        self,
        conn: PeerConnection,
        query: m.StateQuery,
        waiting: set[str],
        wait: float,
        merge: Merge | None,
    ):
        self.conn, self.query, self.waiting, self.wait, self.merge = (
            conn,
            query,
            waiting,
            wait,
            merge,
        )
        self.parts: list[Rows] = []
        self.total = 0
        self.warnings: list[str] = []
        self.errors: list[str] = []
        self.done = False

    def answered(self, node: str, answer: m.Answer) -> None:
        if self.done or node not in self.waiting:
            return
        self.waiting.discard(node)
        if isinstance(answer, m.Reply) and answer.error is None:
            value = answer.value
            self.parts.append(value["rows"])
            self.total += value["total"]
            self.warnings.extend(value["warnings"])
        elif isinstance(answer, m.Reply) and answer.error is not None:
            self.errors.append(f"node {node}: {answer.error[1]}")
        self.maybe_done()

    def expire(self) -> None:
        if not self.done:
            self.warnings.append(
                f"{len(self.waiting)} node(s) did not answer within {self.wait:g} s, so their "
                f"rows are missing: {', '.join(sorted(self.waiting))}"
            )
            self.finish()

    def maybe_done(self) -> None:
        if not self.waiting and not self.done:
            self.finish()

    def finish(self) -> None:
        self.done = True
        q, parts = self.query, self.parts
        self.parts = []  # (the expiry timer keeps this object for a few seconds more)
        if self.errors and not parts:  # (every node refused: an unknown kind, say)
            self.conn.send(m.error_reply(q.rid, m.ErrorKind.INVALID, "; ".join(self.errors)))
            return
        if self.merge is not None:
            rows, total = state_filters.select(self.merge(parts), q.filters, q.limit)
        else:
            rows = [row for part in parts for row in part][: max(q.limit, 0)]
            total = self.total
        warnings = self.warnings + self.errors
        self.conn.send(
            m.Reply(rid=q.rid, value={"rows": rows, "total": total, "warnings": warnings})
        )
        after_big_answer(q.limit, self.conn.reactor.call_later)


def _merge_counts(parts: list[Rows]) -> Rows:
    return state_summary.merge_counts(row for part in parts for row in part)


def _asking(query: m.StateQuery) -> Callable[[int], m.Message]:
    return lambda rid: m.replace(query, rid=rid)


def _answered(gather: _Gather, node: str) -> Callable[[m.Answer], None]:
    return lambda answer: gather.answered(node, answer)
