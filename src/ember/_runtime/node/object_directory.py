"""The node manager's object directory: the node's store, the transfers of objects between
nodes, and the messages about objects, around ``_core.object_index`` (which decides where an
object is, who waits for it, what to pull, spill and free: its docstring tells how objects
are found across a cluster).

A pull is one TCP connection to the node holding the object: the file's bytes are sent with
``sendfile`` and received straight into a new store file (``_transport/bulk.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, cast

from ember._core import object_index as ix
from ember._core.object_index import ObjectIndex, Waiter
from ember._protocol import messages as m
from ember._protocol.messages import STORED, ErrorKind
from ember._runtime.node.cluster_link import CONNECT_SECONDS
from ember._runtime.object_store.store import Claim, StoreFiles
from ember._transport.bulk import FileReceiver, FileSender
from ember._transport.reactor import Connection
from ember._transport.rpc import refuse

if TYPE_CHECKING:
    from ember._runtime.node.manager import NodeManager

# Freed store files kept for reuse go back to the system after this long unused.
_POOL_IDLE_SECONDS = 30.0
# How often the store's count of its shared memory is checked against its files (at least).
_RECOUNT_SECONDS = 1.0

# Told when an object is here: (None, [kind, data] / [STORED, size]), or (the error, None).
OnFound = Callable[[ix.Error | None, Any], None]


def _lost(text: str) -> ix.Error:
    return (ErrorKind.OBJECT_LOST, text)


def _error_of(answer: m.Answer) -> ix.Error:
    """Why a request failed, from an answer other than the one it expects."""
    if isinstance(answer, m.Reply) and answer.error is not None:
        return (ErrorKind(answer.error[0]), answer.error[1])
    return (ErrorKind.UNEXPECTED, f"unexpected answer {answer!r:.100}")


def _caller(waiter: Waiter) -> tuple[Connection, int]:
    """Another node that asked where an object is: its connection and request id."""
    return cast(tuple[Connection, int], waiter.token)


class ObjectDirectory:
    """The node's objects: what its store holds, who holds refs to them, who waits for them,
    and where objects owned here are on other nodes."""

    def __init__(
        self, node: NodeManager, shm_dir: str, spill_dir: str, capacity: int, ref_grace: float
    ) -> None:
        self.node = node
        self.store = store = StoreFiles(shm_dir, spill_dir, make_room=self.make_room)
        self.capacity = capacity
        store.create_usage(capacity)
        self.index = ObjectIndex(node.node_id, self, ref_grace)
        self._free_timer = False
        self.receiving: dict[bytes, tuple[bytes, FileReceiver]] = {}  # oid -> (node, receiver)
        self.senders: dict[FileSender, bytes] = {}  # sender -> the node pulling
        self.recount_at = 0.0  # when to recount the store's files next (see ``reap``)

    # ------------------------------------------------------------------ what the index asks

    def home_of(self, client_id: bytes) -> bytes | None:
        return self.node.cluster.home_of(client_id)

    def is_connected(self, client_id: bytes) -> bool:
        return self.node.is_connected(client_id)

    def is_alive(self, node_id: bytes) -> bool:
        return self.node.cluster.is_alive(node_id)

    def stored(self, oid: bytes) -> bool:
        return self.store.exists(oid)

    def in_shm(self, oid: bytes) -> bool | None:
        if os.path.exists(self.store.path(oid)):
            return True
        return False if os.path.exists(self.store.spill_path(oid)) else None

    # ------------------------------------------------------------------ actions

    def run(self, actions: list[ix.Action]) -> None:
        """Carry out every action of the index."""
        for a in actions:
            if isinstance(a, ix.Found):
                self._answer(a.waiter, None, a.inline or [STORED, a.size])
            elif isinstance(a, ix.Failed):
                self._answer(a.waiter, (a.kind, a.text), None)
            elif isinstance(a, ix.FoundAt):
                conn, rid = _caller(a.waiter)
                conn.send(m.ObjectAt(rid=rid, node_id=a.node_id))
            elif isinstance(a, ix.Pull):
                self.pull(a.oid, a.node_id)
            elif isinstance(a, ix.Locate):
                self.locate_remote(a.oid, a.owner, a.home)
            elif isinstance(a, ix.DeleteFile):
                # A file being sent or mapped is deleted instead of recycled; it stays
                # readable through its descriptor or mapping.
                if a.recycle:
                    self.store.recycle(a.oid)
                else:
                    self.store.delete(a.oid)
            elif isinstance(a, ix.IncRef | ix.DecRef | ix.DropOwner):
                peer = self.node.cluster.node_conn(a.node_id)
                if peer is None:
                    continue
                if isinstance(a, ix.IncRef):
                    peer.send(m.IncRef(ids=[a.oid]))
                elif isinstance(a, ix.DecRef):
                    peer.send(m.DecRef(ids=[a.oid]))
                else:
                    peer.send(m.DropOwner(ids=[a.oid], owner_id=a.owner))
            elif isinstance(a, ix.ActorUnreferenced):
                self.node.actors.refs_dropped(a.actor_id)
            else:
                raise AssertionError(f"unknown object index action {a!r}")

    def _answer(self, waiter: Waiter, err: ix.Error | None, value: Any) -> None:
        if not waiter.where_only:
            cast(OnFound, waiter.token)(err, value)
            return
        conn, rid = _caller(waiter)
        if err is not None:
            conn.send(m.error_reply(rid, *err))
        elif value[0] == STORED:
            conn.send(m.ObjectAt(rid=rid, node_id=self.node.node_id))
        else:
            conn.send(m.ObjectAt(rid=rid, inline=value))

    # ------------------------------------------------------------------ upkeep

    def reap(self, now: float) -> None:
        """Give pooled store files unused for a while back to the system, and repair the
        store's count of its shared memory (``StoreFiles.recount``)."""
        self.store.trim_pool(self.capacity // 2, idle_seconds=_POOL_IDLE_SECONDS)
        if now >= self.recount_at:
            self.store.recount()
            # (a folder of many thousands of objects takes a while to go through: then less often)
            self.recount_at = now + max(_RECOUNT_SECONDS, 100 * (time.monotonic() - now))

    def usage(self) -> tuple[int, int]:
        """(capacity, bytes used) of the node's shared memory."""
        return self.capacity, self.store.usage.used

    def owned_by(self, client_id: bytes) -> bool:
        return self.index.owned_by(client_id)

    def client_gone(self, client_id: bytes, pid: int | None) -> None:
        """A process ended: its refs go (after the grace period), its unsealed files (if it
        ran here, ``pid``) and the waits for objects it owned fail."""
        if pid is not None:
            self.store.discard_unsealed(pid)
        self.run(self.index.holder_gone(client_id, time.monotonic()))
        self.schedule_free()

    def node_died(self, node_id: bytes, reason: str) -> None:
        """Transfers from and to that node end; its processes' refs go; objects that lived
        only there are lost."""
        for _, receiver in [r for r in self.receiving.values() if r[0] == node_id]:
            receiver.abort()
        for sender in [s for s, puller in self.senders.items() if puller == node_id]:
            sender.abort()
        self.index.node_died(node_id, reason, time.monotonic())
        self.schedule_free()

    # ------------------------------------------------------------------ messages

    def object_created(self, msg: m.ObjectCreated) -> None:
        self.run(self.index.created(msg.object_id, msg.owner_id, msg.size, msg.contained))

    def put_inline(self, msg: m.PutInline) -> None:
        self.run(self.index.put_inline(msg.object_id, msg.owner_id, msg.data, msg.contained))

    def put_file(self, oid: bytes, data: bytes) -> None:
        """An object sent whole by a driver on no node (client mode, ``remote_store.py``)."""
        self.store.write_file(oid, data)

    def hold_actor(self, actor_id: bytes, owner: bytes) -> None:
        self.index.hold_actor(actor_id, owner)

    def add_refs(self, holder: Hashable, ids: list[bytes], owners: Sequence[bytes]) -> None:
        self.run(self.index.add_refs(holder, ids, owners))

    def dec_refs(self, holder: bytes, ids: list[bytes]) -> None:
        """``holder`` let go of these (a process here, or the owner on another node)."""
        self.index.dec_refs(holder, ids, time.monotonic())
        self.schedule_free()

    def free_now(self, holder: bytes, ids: list[bytes]) -> None:
        self.run(self.index.free_now(holder, ids, time.monotonic()))
        self.schedule_free()

    def schedule_free(self) -> None:
        if self._free_timer:
            return
        due = self.index.next_due()
        if due is None:
            return
        self._free_timer = True
        self.node.reactor.call_later(max(0.0, due - time.monotonic()) + 0.01, self.free_due)

    def free_due(self) -> None:
        self._free_timer = False
        self.run(self.index.free_due(time.monotonic()))
        self.schedule_free()

    def wait_object(self, conn: Connection, msg: m.WaitObject, asker: bytes | None) -> None:
        def answer(err: ix.Error | None, value: Any) -> None:
            conn.send(
                m.Reply(rid=msg.rid, value=value) if err is None else m.error_reply(msg.rid, *err)
            )

        waiter = Waiter(answer, fetch=msg.fetch)
        self.run(self.index.find(waiter, msg.object_id, msg.owner_id, asker == msg.owner_id))

    def locate_object(self, conn: Connection, msg: m.LocateObject) -> None:
        """Another node asks the home of an object where it is."""
        waiter = Waiter((conn, msg.rid), where_only=True)
        self.run(self.index.locate(waiter, msg.object_id, msg.owner_id))

    def object_located(self, msg: m.ObjectLocated, owner: bytes) -> None:
        """An owner here reports that its object is stored on another node."""
        self.run(self.index.located(msg.object_id, msg.node_id, owner))

    def locate_remote(self, oid: bytes, owner: bytes, home: bytes | None) -> None:
        conn = self.node.cluster.node_conn(home)
        if conn is None:
            self.run(
                self.index.located_reply(oid, (ErrorKind.OWNER_DIED, "its owner's node is gone"))
            )
            return
        self.node.calls.call(
            conn,
            lambda rid: m.LocateObject(rid=rid, object_id=oid, owner_id=owner),
            lambda reply: self.located_reply(oid, reply),
        )

    def located_reply(self, oid: bytes, answer: m.Answer) -> None:
        if not isinstance(answer, m.ObjectAt):
            self.run(self.index.located_reply(oid, _error_of(answer)))
        elif answer.node_id:
            self.run(self.index.located_reply(oid, node_id=answer.node_id))
        else:
            self.run(self.index.located_reply(oid, inline=answer.inline))

    # ------------------------------------------------------------------ the store

    def make_room(self, size: int) -> bool:
        """Make room in the store's shared memory for a new file of ``size`` bytes: pooled
        files go (largest first), then the oldest objects that no process maps are spilled to
        disk, if together they make room enough (else none is: copying them would not help).
        True if there is room now; the writer then reserves it itself, so that nothing stays
        reserved for a writer that died meanwhile (it may lose the room to another writer)."""
        store = self.store
        if size > self.capacity:
            return False
        short = store.usage.used + size - self.capacity
        if short > 0:
            store.trim_pool(store.pooled_bytes() - short)
            short = store.usage.used + size - self.capacity
        chosen: list[tuple[bytes, int]] = []  # locked, so nobody maps them meanwhile
        try:
            for oid in self.index.spill_order():
                if short <= 0:
                    break
                fd = store.lock(oid)
                if fd is not None:
                    chosen.append((oid, fd))
                    short -= os.fstat(fd).st_size
            if short > 0:
                return False
            while chosen:
                oid, fd = chosen.pop(0)
                if store.spill(oid, fd):
                    self.index.spilled(oid)
        finally:
            for _, fd in chosen:
                os.close(fd)
        return store.usage.used + size <= self.capacity

    # ------------------------------------------------------------------ transfers

    def pull(self, oid: bytes, node_id: bytes) -> None:
        node = self.node
        address = node.cluster.address_of(node_id)
        if address is None:
            self.pull_done(oid, None, _lost("the node that held it died"))
            return
        try:
            conn = node.reactor.connect(
                address,
                self.pull_message,
                self.pull_closed,
                timeout=CONNECT_SECONDS,
                token=node.token,
            )
        except OSError as e:
            self.pull_done(oid, None, _lost(f"could not reach the node that holds it: {e}"))
            return
        conn.node = node_id
        conn.peer = oid
        conn.send(m.PullObject(rid=0, object_id=oid, node_id=node.node_id))

    def pull_message(self, conn: Connection[bytes], msg: m.Message) -> None:
        """The connection of one pull (``peer``: the object): an answer with the size, then
        the raw bytes, once the connection is detached from the loop (no more calls here)."""
        oid = conn.peer
        assert oid is not None
        if not isinstance(msg, m.Answer):
            refuse(conn, msg, "a node pulling an object")
            return
        if not isinstance(msg, m.PullAccepted):
            self.pull_done(oid, None, _error_of(msg))
            conn.close()
            return
        sock, leftover, _ = conn.detach()
        store = self.store
        claim: Claim | None = None

        def done(ok: bool) -> None:
            assert claim is not None
            if not ok:
                store.abandon(claim)
            self.pull_done(oid, claim if ok else None, None)

        try:
            # A pooled file of about that size if any, else new room (or the spill folder).
            claim = store.claim(oid, msg.size, ".pull")
            os.close(claim.fd)  # (the receiver opens it itself)
            claim.fd = -1
            receiver = FileReceiver(self.node.reactor, sock, leftover, claim.tmp, claim.size, done)
        except OSError as e:
            sock.close()
            if claim is not None:
                store.abandon(claim)
            self.pull_done(oid, None, _lost(f"could not receive it here: {e}"))
            return
        self.receiving[oid] = (conn.node, receiver)
        receiver.start()

    def pull_closed(self, conn: Connection[bytes]) -> None:
        """Closed before it was detached: the pull failed."""
        if conn.peer is not None:
            self.pull_done(conn.peer, None, None)

    def pull_done(self, oid: bytes, got: Claim | None, error: ix.Error | None) -> None:
        self.receiving.pop(oid, None)
        if got is not None and not self.index.pull_wanted(oid):
            self.store.abandon(got)  # every holder let go while it came: nobody will free it
            error = _lost("the object was freed while it was fetched")
            got = None
        size = self.store.seal(got) if got is not None else None
        self.run(self.index.pull_finished(oid, size, error))

    def serve_pull(self, conn: Connection, msg: m.PullObject) -> None:
        fd = self.store.open_sealed(msg.object_id)
        if fd is None:
            conn.send(
                m.error_reply(msg.rid, *_lost("the object is no longer on the node that held it"))
            )
            return
        size = os.fstat(fd).st_size
        conn.send(m.PullAccepted(rid=msg.rid, size=size))
        sock, _, out = conn.detach()
        # The descriptor's lock keeps the file from being spilled or reused while it is sent.
        sender = FileSender(self.node.reactor, sock, out, fd, size)

        def sent(ok: bool) -> None:
            self.senders.pop(sender, None)

        sender.on_done = sent
        self.senders[sender] = msg.node_id
        sender.start()
