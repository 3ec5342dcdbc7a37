"""The node manager's object index: local objects, spilling, freeing, and objects of other nodes.

Every object has a *home*: the node of its owner (the owner's client id starts with its node's
tag). The home knows where each of its owners' objects is: here (the node's own store, or a
small value the owner promoted), or on the node whose worker stored it (the owner reports it
with ``ObjectLocated``). A node asked for an object it does not have asks the home where it is
(``LocateObject``) and then pulls it from there (``PullObject``): one TCP connection per pull,
the file's bytes sent with ``sendfile`` and received straight into a new store file
(``_transport/bulk.py``). The copy is counted like any object here and freed when its local
holders let go; when the owner lets go, the home tells the node holding the primary copy
(``DropOwner``).
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ember._core.refcount import RefTable
from ember._protocol import messages as m
from ember._protocol.messages import STORED
from ember._runtime.node_cluster import CONNECT_SECONDS
from ember._runtime.object_store import Claim, StoreFiles
from ember._transport.bulk import FileReceiver, FileSender
from ember._transport.reactor import Connection

if TYPE_CHECKING:
    from ember._runtime.node import NodeManager

# Freed store files kept for reuse go back to the system after this long unused.
_POOL_IDLE_SECONDS = 30.0
# How often the store's count of its shared memory is checked against its files (at least).
_RECOUNT_SECONDS = 1.0

Answer = Callable[[Any, Any], None]  # (error or None, value): [kind, data] / [STORED, size]


@dataclass
class _Object:
    size: int
    owner: bytes
    inline: list[Any] | None = None  # [kind, data] for promoted small objects
    in_shm: bool = True


@dataclass
class _Waiter:
    answer: Answer
    fetch: bool = True
    # For a LocateObject from another node: told where the object is rather than given it.
    where: Callable[[bytes], None] | None = None


def _lost(text: str) -> list[str]:
    return ["ObjectLostError", text]


_OWNER_DIED = ["OwnerDiedError", "the process that owned this object has exited"]


class _PullHandler:
    """The connection of one pull: a reply with the size, then the raw bytes."""

    def __init__(self, directory: ObjectDirectory, oid: bytes) -> None:
        self.directory = directory
        self.oid = oid
        self.detached = False

    def on_message(self, conn: Connection, msg: m.Message) -> None:
        if not isinstance(msg, m.Reply) or self.detached:
            return
        directory = self.directory
        if msg.error is not None:
            directory.pull_done(self.oid, None, msg.error)
            conn.close()
            return
        self.detached = True
        sock, leftover, _ = conn.detach()
        store = directory.store
        claim: Claim | None = None

        def done(ok: bool) -> None:
            assert claim is not None
            if not ok:
                store.abandon(claim)
            directory.pull_done(self.oid, claim if ok else None, None)

        try:
            # A pooled file of about that size if any, else new room (or the spill folder).
            claim = store.claim(self.oid, int(msg.value["size"]), ".pull")
            os.close(claim.fd)  # (the receiver opens it itself)
            claim.fd = -1
            receiver = FileReceiver(
                directory.node.reactor, sock, leftover, claim.tmp, claim.size, done
            )
        except OSError as e:
            sock.close()
            if claim is not None:
                store.abandon(claim)
            directory.pull_done(self.oid, None, _lost(f"could not receive it here: {e}"))
            return
        directory.receiving[self.oid] = (conn.node, receiver)
        receiver.start()

    def on_close(self, conn: Connection) -> None:
        if not self.detached:
            self.directory.pull_done(self.oid, None, None)


class ObjectDirectory:
    """The node's objects: what its store holds, who holds refs to them, who waits for them,
    and where objects owned here are on other nodes."""

    def __init__(
        self, node: NodeManager, store: StoreFiles, capacity: int, ref_grace: float
    ) -> None:
        self.node = node
        self.store = store
        self.capacity = capacity
        store.create_usage(capacity)
        store.make_room = self.make_room
        self.refs = RefTable(grace=ref_grace)
        self.objects: collections.OrderedDict[bytes, _Object] = collections.OrderedDict()
        self.waiters: dict[bytes, list[_Waiter]] = {}
        self._waiting_owner: dict[bytes, bytes] = {}  # oid -> its owner, while waited for
        self._free_timer = False
        self.freed: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self.lost: dict[bytes, str] = {}
        self.located: dict[bytes, tuple[bytes, bytes]] = {}  # oid -> (node holding it, owner)
        self.borrowed: dict[bytes, bytes] = {}  # oid -> the node that counts its holders
        self.contains: dict[bytes, list[bytes]] = {}  # oid -> ids of the refs inside it
        self.pulls: dict[bytes, list[Answer]] = {}
        self.locating: dict[bytes, list[_Waiter]] = {}
        self.receiving: dict[bytes, tuple[bytes, FileReceiver]] = {}  # oid -> (node, receiver)
        self.senders: dict[FileSender, bytes] = {}  # sender -> the node pulling
        self.recount_at = 0.0  # when to recount the store's files next (see ``reap``)

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
        """Does this process hold refs, or own objects here?"""
        return self.refs.holds(client_id) or any(
            obj.owner == client_id for obj in self.objects.values()
        )

    def client_gone(self, client_id: bytes, pid: int | None) -> None:
        """A process ended: its refs go (after the grace period), its unsealed files (if it
        ran here, ``pid``) and the waits for objects it owned fail."""
        if pid is not None:
            self.store.discard_unsealed(pid)
        self.refs.holder_gone(client_id, time.monotonic())
        self.schedule_free()
        for oid, waiting in list(self.waiters.items()):
            if self._waiting_owner.get(oid) == client_id:
                for w in waiting:
                    w.answer(_OWNER_DIED, None)
                del self.waiters[oid]

    def node_died(self, node_id: bytes, reason: str) -> None:
        """Transfers from and to that node end; its processes' refs go; objects that lived
        only there are lost."""
        for _, receiver in [r for r in self.receiving.values() if r[0] == node_id]:
            receiver.abort()
        for sender in [s for s, puller in self.senders.items() if puller == node_id]:
            sender.abort()
        # Processes of that node held objects here (as owners or borrowers): they are gone.
        home_of = self.node.cluster.home_of
        self.refs.holders_gone(
            lambda h: isinstance(h, bytes) and home_of(h) == node_id, time.monotonic()
        )
        self.schedule_free()
        for oid, where in list(self.located.items()):
            if where[0] == node_id:
                del self.located[oid]
                self.lost[oid] = f"the node that held it died ({reason})"
                self.freed[oid] = None

    # ------------------------------------------------------------------ refs

    def hold(self, oid: bytes, holder: Hashable) -> None:
        """Count a ref (an actor's owner holds its actor like an object)."""
        self.refs.add(oid, holder)

    def dec_refs(self, holder: bytes, ids: list[bytes]) -> None:
        """``holder`` let go of these (a process here, or the owner on another node)."""
        now = time.monotonic()
        for oid in ids:
            self.refs.remove(oid, holder, now)
        self.schedule_free()

    def free_now(self, holder: bytes, ids: list[bytes]) -> None:
        for oid in ids:
            if self.refs.free_now(oid, holder):
                self.free(oid)

    # ------------------------------------------------------------------ local objects

    def object_created(self, msg: m.ObjectCreated) -> None:
        oid = msg.object_id
        obj = self.objects.get(oid)
        if obj is not None:
            # Made again where it is already (a task that ran again; a rebuild on a node that
            # pulled a copy): the writer kept the file here. Its owner holds it once.
            if obj.owner != msg.owner_id:
                obj.owner = msg.owner_id
                self.refs.add(oid, msg.owner_id)
                self.hold_contained(oid, msg.contained)
            return
        in_shm = os.path.exists(self.store.path(oid))
        if not in_shm and not os.path.exists(self.store.spill_path(oid)):
            return  # freed by its owner before this notice arrived
        self.freed.pop(oid, None)
        self.objects[oid] = _Object(msg.size, msg.owner_id, in_shm=in_shm)
        self.refs.add(oid, msg.owner_id)
        self.hold_contained(oid, msg.contained)
        self.wake_waiters(oid)

    def put_inline(self, msg: m.PutInline) -> None:
        self.objects[msg.object_id] = _Object(0, msg.owner_id, msg.data)
        self.refs.add(msg.object_id, msg.owner_id)
        self.hold_contained(msg.object_id, msg.contained)
        self.wake_waiters(msg.object_id)

    def hold_contained(self, oid: bytes, contained: Sequence[Sequence[bytes]]) -> None:
        """The objects (and actors) whose refs are inside ``oid`` are held for it until it is
        freed, whoever else lets go of them: a borrower of ``oid`` may read them later."""
        if contained and oid not in self.contains:
            self.contains[oid] = [c[0] for c in contained]
            self.add_refs(("in", oid), [c[0] for c in contained], [c[1] for c in contained])

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
        chosen: list[tuple[_Object, bytes, int]] = []  # locked, so nobody maps them meanwhile
        try:
            for oid, obj in self.objects.items():
                if short <= 0:
                    break
                if obj.in_shm and obj.inline is None:
                    fd = store.lock(oid)
                    if fd is not None:
                        chosen.append((obj, oid, fd))
                        short -= os.fstat(fd).st_size
            if short > 0:
                return False
            while chosen:
                obj, oid, fd = chosen.pop(0)
                if store.spill(oid, fd):
                    obj.in_shm = False
        finally:
            for _, _, fd in chosen:
                os.close(fd)
        return store.usage.used + size <= self.capacity

    def add_refs(self, holder: Hashable, ids: list[bytes], owners: Sequence[bytes]) -> None:
        """Count ``holder``'s new refs. For an object or actor owned on another node, this
        node holds it there, once, for all its local holders (until ``free``): its owner's
        node then does not let it go while processes here still use it."""
        for oid in ids:
            self.refs.add(oid, holder)
        for oid, owner in zip(ids, owners, strict=False):  # (owners may be absent)
            home = self.node.cluster.home_of(owner)
            if home is None or home == self.node.node_id or oid in self.borrowed:
                continue
            conn = self.node.cluster.node_conn(home)
            if conn is not None:
                self.borrowed[oid] = home
                conn.send(m.IncRef([oid]))

    def free(self, oid: bytes) -> None:
        inside = self.contains.pop(oid, None)
        if inside:
            now = time.monotonic()
            for held in inside:
                self.refs.remove(held, ("in", oid), now)
            self.schedule_free()
        home = self.borrowed.pop(oid, None)
        if home is not None:  # no holder is left here: let the owner's node know
            conn = self.node.cluster.node_conn(home)
            if conn is not None:
                conn.send(m.DecRef([oid]))
        self.freed[oid] = None
        if len(self.freed) > 100_000:
            old, _ = self.freed.popitem(last=False)
            self.lost.pop(old, None)
        obj = self.objects.pop(oid, None)
        if obj is not None and obj.in_shm and obj.inline is None:
            # Freed files stay allocated for reuse, for a while (they count as taken): new
            # tmpfs pages cost far more than overwriting old ones (for a pulled copy as for a
            # put). A file being sent or mapped is deleted instead; it stays readable through
            # its descriptor or mapping. (An owner has pooled an object only it knew already.)
            self.store.recycle(oid)
        elif obj is None or obj.inline is None:
            self.store.delete(oid)
        where = self.located.pop(oid, None)
        if where is not None:
            conn = self.node.cluster.node_conn(where[0])
            if conn is not None:
                conn.send(m.DropOwner([oid], where[1]))
        if self.node.actors.refs_dropped(oid):
            self.freed.pop(oid, None)  # (an actor's id, not an object's)

    def schedule_free(self) -> None:
        if self._free_timer:
            return
        due = self.refs.next_due()
        if due is None:
            return
        self._free_timer = True
        self.node.reactor.call_later(max(0.0, due - time.monotonic()) + 0.01, self.free_due)

    def free_due(self) -> None:
        self._free_timer = False
        for oid in self.refs.due(time.monotonic()):
            self.free(oid)
        self.schedule_free()

    # ------------------------------------------------------------------ finding objects

    def wait_object(self, conn: Connection, msg: m.WaitObject, asker: bytes | None) -> None:
        self.find_object(
            msg.object_id,
            msg.owner_id,
            lambda err, value: conn.send(m.Reply(msg.rid, err, value)),
            asker_is_owner=asker == msg.owner_id,
            fetch=msg.fetch,
        )

    def find_object(
        self,
        oid: bytes,
        owner: bytes,
        answer: Answer,
        asker_is_owner: bool = False,
        fetch: bool = True,
    ) -> None:
        """Answer with the object's value here once this node has it, pulling it from another
        node if needed (or, without ``fetch``, as soon as it exists anywhere)."""
        obj = self.objects.get(oid)
        if obj is not None:
            answer(None, obj.inline or [STORED, obj.size])
        elif self.store.exists(oid):
            answer(None, [STORED, 0])
        elif oid in self.pulls:
            self.pulls[oid].append(answer)
        elif oid in self.located:
            self.pull_or_answer(oid, self.located[oid][0], answer, fetch)
        elif oid in self.freed or asker_is_owner:
            answer(_lost(self.lost.get(oid, "the object was freed: no ref to it was left")), None)
        elif self.node.cluster.home_of(owner) != self.node.node_id:
            self.locate_remote(oid, owner, _Waiter(answer, fetch))
        elif not self.node.is_connected(owner):
            answer(_OWNER_DIED, None)
        else:
            self._waiting_owner[oid] = owner
            self.waiters.setdefault(oid, []).append(_Waiter(answer, fetch))

    def pull_or_answer(self, oid: bytes, node_id: bytes, answer: Answer, fetch: bool) -> None:
        if fetch:
            self.pull(oid, node_id, answer)
        else:
            answer(None, [STORED, 0])

    def locate_object(self, conn: Connection, msg: m.LocateObject) -> None:
        """Another node asks the home of an object where it is."""
        oid = msg.object_id

        def at(node_id: bytes) -> None:
            conn.send(m.Reply(msg.rid, None, {"node": node_id}))

        def answer(err: Any, value: Any) -> None:
            if err is not None:
                conn.send(m.Reply(msg.rid, err))
            elif value[0] == STORED:
                at(self.node.node_id)
            else:
                conn.send(m.Reply(msg.rid, None, {"inline": value}))

        where = self.located.get(oid)
        if where is not None:
            at(where[0])
        elif oid in self.objects or self.store.exists(oid) or oid in self.freed:
            self.find_object(oid, msg.owner_id, answer)
        elif not self.node.is_connected(msg.owner_id):
            answer(_OWNER_DIED, None)
        else:
            self._waiting_owner[oid] = msg.owner_id
            self.waiters.setdefault(oid, []).append(_Waiter(answer, where=at))

    def locate_remote(self, oid: bytes, owner: bytes, waiter: _Waiter) -> None:
        waiting = self.locating.get(oid)
        if waiting is not None:
            waiting.append(waiter)
            return
        self.locating[oid] = [waiter]
        conn = self.node.cluster.node_conn(self.node.cluster.home_of(owner))
        if conn is None:
            self.located_reply(oid, m.Reply(0, ["OwnerDiedError", "its owner's node is gone"]))
            return
        self.node.calls.call(
            conn,
            lambda rid: m.LocateObject(rid, oid, owner),
            lambda reply: self.located_reply(oid, reply),
        )

    def located_reply(self, oid: bytes, reply: m.Reply) -> None:
        waiting = self.locating.pop(oid, [])
        for w in waiting:
            if reply.error is not None:
                kind = reply.error[0]
                err = reply.error if kind != "ConnectionLost" else _OWNER_DIED
                w.answer(err, None)
            elif "inline" in reply.value:
                w.answer(None, reply.value["inline"])
            else:
                self.pull_or_answer(oid, reply.value["node"], w.answer, w.fetch)

    def object_located(self, msg: m.ObjectLocated, owner: bytes) -> None:
        """An owner here reports that its object is stored on another node."""
        oid = msg.object_id
        if not self.node.cluster.is_alive(msg.node_id):
            self.lost[oid] = "the node that held it died"
            self.freed[oid] = None
        else:
            self.located[oid] = (msg.node_id, owner)
        if oid not in self.lost:  # (a rebuilt object was counted when first located)
            self.refs.add(oid, owner)
        self._waiting_owner.pop(oid, None)
        for w in self.waiters.pop(oid, []):
            if oid not in self.located:
                w.answer(_lost(self.lost[oid]), None)
            elif w.where is not None:
                w.where(msg.node_id)
            else:
                self.pull_or_answer(oid, msg.node_id, w.answer, w.fetch)

    def wake_waiters(self, oid: bytes) -> None:
        waiting = self.waiters.pop(oid, None)
        self._waiting_owner.pop(oid, None)
        if waiting:
            obj = self.objects[oid]
            value = obj.inline or [STORED, obj.size]
            for w in waiting:
                w.answer(None, value)

    # ------------------------------------------------------------------ transfers

    def pull(self, oid: bytes, node_id: bytes, answer: Answer) -> None:
        if self.store.exists(oid) or oid in self.objects:
            self.find_object(oid, b"", answer)
            return
        waiting = self.pulls.get(oid)
        if waiting is not None:
            waiting.append(answer)
            return
        self.pulls[oid] = [answer]
        address = self.node.cluster.address_of(node_id)
        if address is None:
            self.pull_done(oid, None, _lost("the node that held it died"))
            return
        try:
            conn = self.node.reactor.connect(
                address, _PullHandler(self, oid), timeout=CONNECT_SECONDS, token=self.node.token
            )
        except OSError as e:
            self.pull_done(oid, None, _lost(f"could not reach the node that holds it: {e}"))
            return
        conn.node = node_id
        conn.send(m.PullObject(0, oid, self.node.node_id))

    def pull_done(self, oid: bytes, got: Claim | None, error: Any) -> None:
        self.receiving.pop(oid, None)
        waiting = self.pulls.pop(oid, [])
        if got is not None and oid in self.freed and oid not in self.refs:
            self.store.abandon(got)  # every holder let go while it came: nobody will free it
            result: tuple[Any, Any] = (_lost("the object was freed while it was fetched"), None)
        elif got is not None:
            size = self.store.seal(got)
            if oid not in self.objects:  # (else made here meanwhile, and kept)
                in_shm = os.path.exists(self.store.path(oid))
                self.objects[oid] = _Object(size, b"", in_shm=in_shm)
            result = (None, [STORED, size])
        else:
            result = (error or _lost("the transfer from the node that holds it failed"), None)
        for answer in waiting:
            answer(*result)

    def serve_pull(self, conn: Connection, msg: m.PullObject) -> None:
        fd = self.store.open_sealed(msg.object_id)
        if fd is None:
            conn.send(m.Reply(msg.rid, _lost("the object is no longer on the node that held it")))
            return
        size = os.fstat(fd).st_size
        conn.send(m.Reply(msg.rid, None, {"size": size}))
        sock, _, out = conn.detach()
        # The descriptor's lock keeps the file from being spilled or reused while it is sent.
        sender = FileSender(self.node.reactor, sock, out, fd, size)
        sender.on_done = lambda ok: self.senders.pop(sender, None)
        self.senders[sender] = msg.node_id
        sender.start()
