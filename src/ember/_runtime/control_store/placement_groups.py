"""The control store's placement groups: it runs ``_core.placement_groups.GroupTable`` and
carries out its actions on the nodes (``PrepareBundles``, ``CommitBundles``,
``ReleaseBundles`` over each node's connection to the store).

Groups are tried when created, when a node's free resources change (its heartbeat), when a
node dies, and every heartbeat interval (an attempt that failed waits for the next); a job's
groups are removed when it ends, unless detached. The table lives in
memory only: a control store that restarts (with Redis) forgets its groups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ember._core import placement_groups as pgs
from ember._core.resources import shape_dict, shape_of, to_units
from ember._protocol import messages as m

if TYPE_CHECKING:
    from ember._runtime.control_store.server import ControlStore, PeerConnection


class PlacementGroups:
    def __init__(self, store: ControlStore) -> None:
        self.store = store
        self.table = pgs.GroupTable()

    # -- requests from clients ---------------------------------------------------------------

    def handle(self, conn: PeerConnection, msg: m.Message) -> bool:
        """Serve a placement-group message; False if ``msg`` is not one."""
        if isinstance(msg, m.CreatePlacementGroup):
            self.table.create(
                pgs.Group(
                    msg.pg_id,
                    [shape_of(b) for b in msg.bundles],
                    msg.strategy,
                    msg.name,
                    msg.namespace,
                    msg.job_id,
                    msg.detached,
                )
            )
            conn.send(m.Reply(rid=msg.rid))
            self.schedule()
        elif isinstance(msg, m.RemovePlacementGroup):
            self.run(self.table.remove(msg.pg_id, self.live_nodes()))
            conn.send(m.Reply(rid=msg.rid))
        elif isinstance(msg, m.GetPlacementGroups):
            entries = self.entries(msg.pg_id, msg.name, msg.namespace)
            conn.send(m.PlacementGroups(rid=msg.rid, entries=entries))
        else:
            return False
        return True

    def entries(self, pg_id: bytes, name: str, namespace: str) -> list[m.PlacementGroupEntry]:
        if pg_id:
            group = self.table.groups.get(pg_id)
            found = [group] if group is not None else []
        elif name:
            named = self.table.named(name, namespace)
            found = [named] if named is not None else []
        else:
            found = list(self.table.groups.values())
        return [
            m.PlacementGroupEntry(
                g.pg_id,
                g.name,
                [shape_dict(b) for b in g.bundles],
                [g.placed.get(i) for i in range(len(g.bundles))],
                g.strategy,
                g.state,
                g.attempts,
            )
            for g in found
        ]

    # -- events from the cluster -------------------------------------------------------------

    def schedule(self) -> None:
        if not self.table.waiting():
            return
        available = {
            e.node_id: {k: to_units(v) for k, v in e.available.items()}
            for e in self.store.nodes.values()
            if e.alive and e.conn is not None
        }
        self.run(self.table.schedule(available))

    def node_died(self, node_id: bytes) -> None:
        self.run(self.table.node_died(node_id))
        self.schedule()

    def job_ended(self, job_id: bytes) -> None:
        self.run(self.table.job_ended(job_id, self.live_nodes()))

    def live_nodes(self) -> list[bytes]:
        return [e.node_id for e in self.store.nodes.values() if e.alive and e.conn is not None]

    # -- actions -----------------------------------------------------------------------------

    def run(self, actions: list[pgs.GroupAction]) -> None:
        for action in actions:
            entry = self.store.nodes.get(action.node)
            conn = entry.conn if entry is not None and entry.alive else None
            if isinstance(action, pgs.Prepare):
                if conn is None:
                    self.run(self.table.prepared(action.pg_id, action.node, False))
                    continue
                bundles = [m.Bundle(i, shape_dict(s)) for i, s in action.bundles]
                self.store.calls.call(
                    conn,
                    _prepare(action.pg_id, bundles),
                    _answered(self, action.pg_id, action.node),
                )
            elif conn is None:
                continue  # (a dead node's bundles went with it)
            elif isinstance(action, pgs.Commit):
                conn.send(m.CommitBundles(pg_id=action.pg_id, indexes=list(action.indexes)))
            else:
                conn.send(
                    m.ReleaseBundles(
                        pg_id=action.pg_id, indexes=list(action.indexes), removed=action.removed
                    )
                )

    def prepared(self, pg_id: bytes, node: bytes, answer: m.Answer) -> None:
        ok = isinstance(answer, m.Reply) and answer.error is None and bool(answer.value)
        self.run(self.table.prepared(pg_id, node, ok))


def _prepare(pg_id: bytes, bundles: list[m.Bundle]) -> Callable[[int], m.Message]:
    return lambda rid: m.PrepareBundles(rid=rid, pg_id=pg_id, bundles=bundles)


def _answered(groups: PlacementGroups, pg_id: bytes, node: bytes) -> Callable[[m.Answer], None]:
    return lambda answer: groups.prepared(pg_id, node, answer)
