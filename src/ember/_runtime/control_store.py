"""The control store: cluster metadata that outlives any one worker.

It holds exported functions and classes (so a function is shipped to each worker once, by
id), actor names per namespace with what a handle needs, and the jobs that are connected. It is
off the per-task path: callers touch it when they first use a function on a worker or look up
a named actor. On one machine it runs inside the node manager's process, behind its own
socket, so that a cluster can later move it to a process of its own.
"""

from __future__ import annotations

from typing import Any

from ember._protocol import messages as m
from ember._transport.reactor import Connection


class NameTaken(ValueError):
    pass


class ControlStore:
    def __init__(self) -> None:
        self.functions: dict[bytes, bytes] = {}
        self._fn_waiters: dict[bytes, list[tuple[Connection, int]]] = {}
        self.names: dict[tuple[str, str], bytes] = {}
        self.actors: dict[bytes, dict[str, Any]] = {}

    # ------------------------------------------------------------------ for the node manager

    def register_actor(
        self,
        actor_id: bytes,
        name: str | None,
        namespace: str,
        handle_meta: bytes,
        get_if_exists: bool,
    ) -> bytes:
        """Record an actor; returns the id to use (an existing one for get_if_exists)."""
        if name is not None:
            existing = self.names.get((namespace, name))
            if existing is not None:
                if get_if_exists:
                    return existing
                raise NameTaken(
                    f"The name {name!r} (namespace={namespace!r}) is already taken by another "
                    "actor. Pick another name, kill that actor first, or pass "
                    "get_if_exists=True to reuse it."
                )
            self.names[(namespace, name)] = actor_id
        self.actors[actor_id] = {"name": name, "namespace": namespace, "handle_meta": handle_meta}
        return actor_id

    def actor_dead(self, actor_id: bytes) -> None:
        info = self.actors.pop(actor_id, None)
        if info and info["name"] is not None:
            self.names.pop((info["namespace"], info["name"]), None)

    # ------------------------------------------------------------------ for clients

    def handle(self, conn: Connection, msg: m.Message) -> None:
        if isinstance(msg, m.ExportFunction):
            self.functions[msg.fn_id] = msg.data
            for waiter, rid in self._fn_waiters.pop(msg.fn_id, []):
                waiter.send(m.Reply(rid, None, msg.data))
        elif isinstance(msg, m.FetchFunction):
            data = self.functions.get(msg.fn_id)
            if data is None:
                self._fn_waiters.setdefault(msg.fn_id, []).append((conn, msg.rid))
            else:
                conn.send(m.Reply(msg.rid, None, data))
        elif isinstance(msg, m.GetNamedActor):
            actor_id = self.names.get((msg.namespace, msg.name))
            if actor_id is None:
                conn.send(
                    m.Reply(
                        msg.rid,
                        [
                            "ValueError",
                            f"Failed to look up actor with name {msg.name!r} in namespace "
                            f"{msg.namespace!r}. It was never created, it has died, or it lives "
                            "in another namespace (pass namespace=...).",
                        ],
                    )
                )
            else:
                meta = self.actors[actor_id]["handle_meta"]
                conn.send(m.Reply(msg.rid, None, {"actor_id": actor_id, "handle_meta": meta}))
        elif isinstance(msg, m.ListNamedActors):
            names = [
                {"name": name, "namespace": ns}
                for (ns, name) in self.names
                if msg.namespace is None or ns == msg.namespace
            ]
            conn.send(m.Reply(msg.rid, None, names))
