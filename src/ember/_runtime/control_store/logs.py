"""The control store passes log requests on to the nodes that have the files: ListLogs to
every live node (or one), answered with all their files; ReadLog to the one node."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from ember._protocol import messages as m

if TYPE_CHECKING:
    from ember._runtime.control_store.server import ControlStore, PeerConnection


class LogRequests:
    def __init__(self, store: ControlStore) -> None:
        self.store = store

    def handle(self, conn: PeerConnection, msg: m.Message) -> bool:
        """Pass a log request on; False if ``msg`` is not one."""
        if not isinstance(msg, (m.ListLogs, m.ReadLog)):
            return False
        nodes = [
            e
            for e in self.store.nodes.values()
            if e.alive and e.conn is not None and msg.node_id in (b"", e.node_id)
        ]
        if not nodes:
            conn.send(
                m.error_reply(msg.rid, m.ErrorKind.INVALID, f"no live node {msg.node_id.hex()}")
            )
            return True
        calls = self.store.placement_groups.calls
        if isinstance(msg, m.ReadLog):
            calls.call(
                nodes[0].conn,
                lambda rid: m.replace(msg, rid=rid),
                lambda answer: conn.send(m.replace(answer, rid=msg.rid)),
            )
            return True
        files: list[m.LogFile] = []
        warnings: list[str] = []
        left = [len(nodes)]

        def answered(node_id: bytes, answer: m.Answer) -> None:
            if isinstance(answer, m.LogFiles):
                files.extend(answer.files)
            else:
                warnings.append(f"node {node_id.hex()} did not answer")
            left[0] -= 1
            if not left[0]:
                conn.send(m.LogFiles(rid=msg.rid, files=files, warnings=warnings))

        for e in nodes:
            calls.call(e.conn, lambda rid: m.replace(msg, rid=rid), partial(answered, e.node_id))
        return True
