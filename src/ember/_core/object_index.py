"""The node's object directory decisions: where an object is, who waits for it, what to pull,
spill and free.

Theory of operation: every object has a *home*, the node of its owner (client ids start with
their node's tag). The home knows where each of its owners' objects is: in its own store (or
a small value the owner promoted), or on the node whose worker stored it (the owner reports
that with ``located``). A node asked for an object it does not have asks the home where it is
(``Locate``) and then pulls it from there (``Pull``); the copy is counted like any object here
and freed when its local holders let go; when the owner lets go, the home tells the node
holding the primary copy (``DropOwner``). A node holds an object owned elsewhere at its home
once, for all its local holders (``IncRef``/``DecRef``), so the home keeps it while processes
here use it.

``ObjectIndex`` takes events (an object was created, someone waits for one, a reply about
where one is, a pull ended, refs were dropped...) and returns actions (answer a waiter, ask a
home, pull, tell another node, delete a file). The node component turns messages into these
events and carries out every action; what it knows of the outside world (the store's files,
which processes are connected, which nodes are alive) it tells through ``Lookups``.
Waiters are opaque here: the node passes its own token (how to answer) in each ``Waiter``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from ember._core.refcount import RefTable
from ember._protocol.messages import ErrorKind
from ember._protocol.records import record

OWNER_EXITED = "the process that owned this object has exited"
FREED = "the object was freed: no ref to it was left"
NO_OWNER = (
    "the ref was built from the object's id alone (ObjectRef(binary) or ObjectRef.from_hex), "
    "so its owner is unknown, and this node does not hold the object. Pass the ref itself (as "
    "a task argument or inside a value), or send it with ember.cloudpickle.dumps, which keeps "
    "its owner"
)
Error = tuple[ErrorKind, str]  # why an object cannot be had: its kind and a text
# Ids of freed objects remembered (so that a late ask is told, not made to wait for ever).
_FREED_KEPT = 100_000


class Lookups(Protocol):
    """What the index asks of the node around it."""

    def home_of(self, client_id: bytes) -> bytes | None:
        """The node a process runs on (None if unknown)."""

    def is_connected(self, client_id: bytes) -> bool:
        """Is this process connected to this node?"""

    def is_alive(self, node_id: bytes) -> bool: ...

    def stored(self, oid: bytes) -> bool:
        """Is the object's file in this node's store (in shared memory or spilled)?"""

    def in_shm(self, oid: bytes) -> bool | None:
        """Is its file in shared memory (True), spilled (False), or gone (None)?"""


@dataclass(frozen=True, eq=False)
class Waiter:
    """Someone who waits for an object. ``token`` is the node's (how to answer); ``fetch``
    False: told as soon as the object exists anywhere; ``where_only``: another node asking
    this home, told which node holds the object rather than given it."""

    token: object
    fetch: bool = True
    where_only: bool = False


@dataclass
class _Object:
    size: int
    owner: bytes
    inline: Any = None  # [kind, data] for promoted small objects
    in_shm: bool = True
    # Made here for an owner on another node, which holds it until its node says it let go
    # (``DropOwner``); the table counts only this node's own holders (see ``_hold_for_owner``).
    owner_holds: bool = False


class Reference(NamedTuple):
    """A holder's refs to an object or actor, as ``ObjectIndex.references`` gives them:
    ``holder`` is a process's client id, ``("in", oid)`` for refs inside another object, or
    None; ``size`` is -1 for an actor."""

    oid: bytes
    size: int
    owner: bytes
    in_shm: bool
    holder: Hashable | None
    actor: bool


# -- actions --------------------------------------------------------------------------------


@record
class Found:
    """The object is here: ``inline`` its value if small, else it is stored (``size``)."""

    waiter: Waiter
    size: int
    inline: Any = None


@record
class FoundAt:
    """(To a ``where_only`` waiter) the object is on ``node_id``."""

    waiter: Waiter
    node_id: bytes


@record
class Failed:
    waiter: Waiter
    kind: ErrorKind  # OBJECT_LOST, OWNER_DIED, or an error passed on from another node
    text: str


@record
class Locate:
    """Ask the object's home (``home``, None if unknown) where it is; answer with
    ``located_reply``."""

    oid: bytes
    owner: bytes
    home: bytes | None


@record
class Pull:
    """Copy the object from ``node_id``; report with ``pull_finished``."""

    oid: bytes
    node_id: bytes


@record
class IncRef:
    """Hold the object at its home, for this node's holders."""

    node_id: bytes
    oid: bytes


@record
class DecRef:
    """No holder is left here: let its home know."""

    node_id: bytes
    oid: bytes


@record
class DropOwner:
    """The owner let go of an object stored on ``node_id``: tell that node."""

    node_id: bytes
    oid: bytes
    owner: bytes


@record
class DeleteFile:
    """The object is freed: its file goes (``recycle``: kept for reuse while unused)."""

    oid: bytes
    recycle: bool


@record
class ActorUnreferenced:
    """Every ref to this actor was dropped."""

    actor_id: bytes


Action = (
    Found
    | FoundAt
    | Failed
    | Locate
    | Pull
    | IncRef
    | DecRef
    | DropOwner
    | DeleteFile
    | ActorUnreferenced
)


def _lost(waiter: Waiter, text: str) -> Failed:
    return Failed(waiter, ErrorKind.OBJECT_LOST, text)


class ObjectIndex:
    def __init__(self, node_id: bytes, lookups: Lookups, ref_grace: float) -> None:
        self.node_id = node_id
        self.lookups = lookups
        self.refs = RefTable(grace=ref_grace)
        self._objects: collections.OrderedDict[bytes, _Object] = collections.OrderedDict()
        self._waiters: dict[bytes, list[Waiter]] = {}  # for its owner to make it
        self._waiting_owner: dict[bytes, bytes] = {}  # oid -> its owner, while waited for
        self._freed: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._lost: dict[bytes, str] = {}
        self._located: dict[bytes, tuple[bytes, bytes]] = {}  # oid -> (node holding it, owner)
        self._borrowed: dict[bytes, bytes] = {}  # oid -> the node that counts its holders
        self._contains: dict[bytes, list[bytes]] = {}  # oid -> ids of the refs inside it
        self._pulls: dict[bytes, list[Waiter]] = {}
        self._locating: dict[bytes, list[Waiter]] = {}
        self._actors: set[bytes] = set()  # actor ids counted here (by their home)

    # -- queries ----------------------------------------------------------------------------

    def owned_by(self, client_id: bytes) -> bool:
        """Does this process hold refs, or own objects here?"""
        return self.refs.holds(client_id) or any(
            obj.owner == client_id for obj in self._objects.values()
        )

    def spill_order(self) -> Iterator[bytes]:
        """Objects in shared memory, oldest first: what to spill to disk to make room."""
        for oid, obj in self._objects.items():
            if obj.in_shm and obj.inline is None:
                yield oid

    def references(self) -> Iterator[Reference]:
        """Each object (and actor) counted here with each holder of refs to it, for the state
        API: an object that nobody holds any more (it is freed after the grace period) is
        given once with holder None."""
        for oid, obj in self._objects.items():
            inline = obj.inline[1] if obj.inline is not None else None
            size = len(inline) if isinstance(inline, bytes | bytearray) else obj.size
            holders = self.refs.holders(oid)
            if obj.owner_holds:
                yield Reference(oid, size, obj.owner, obj.in_shm, obj.owner, False)
            elif not holders:
                yield Reference(oid, size, obj.owner, obj.in_shm, None, False)
            for holder in holders:
                yield Reference(oid, size, obj.owner, obj.in_shm, holder, False)
        for actor_id in self._actors:
            for holder in self.refs.holders(actor_id):
                yield Reference(actor_id, -1, b"", True, holder, True)

    def owner_of(self, oid: bytes) -> bytes | None:
        obj = self._objects.get(oid)
        return obj.owner if obj is not None else None

    def pull_wanted(self, oid: bytes) -> bool:
        """Is a copy that just arrived still wanted (a holder is left, or it was not freed)?"""
        return oid not in self._freed or oid in self.refs

    # -- objects made here ------------------------------------------------------------------

    def created(
        self, oid: bytes, owner: bytes, size: int, contained: Sequence[Sequence[bytes]]
    ) -> list[Action]:
        """A process stored an object in this node's store."""
        obj = self._objects.get(oid)
        if obj is not None:
            # Made again where it is already (a task that ran again; a rebuild on a node that
            # pulled a copy): the writer kept the file here. Its owner holds it once.
            if obj.owner == owner:
                return []
            obj.owner = owner
            self._hold_for_owner(oid, obj)
            return self._hold_contained(oid, contained)
        in_shm = self.lookups.in_shm(oid)
        if in_shm is None:
            return []  # freed by its owner before this notice arrived
        self._freed.pop(oid, None)
        obj = self._objects[oid] = _Object(size, owner, in_shm=in_shm)
        self._hold_for_owner(oid, obj)
        return self._hold_contained(oid, contained) + self._wake(oid)

    def _hold_for_owner(self, oid: bytes, obj: _Object) -> None:
        """The owner holds what it made. An owner on another node holds it through its home,
        which also counts this node while processes here hold it (``IncRef``) and says when
        the owner let go (``DropOwner``): were that owner counted as a holder here, this
        node's count would never reach zero, so it would never let the home go, nor the home
        it."""
        home = self.lookups.home_of(obj.owner)
        if home is None or home == self.node_id:
            self.refs.add(oid, obj.owner)
        else:
            obj.owner_holds = True

    def put_inline(
        self, oid: bytes, owner: bytes, data: Any, contained: Sequence[Sequence[bytes]]
    ) -> list[Action]:
        """An owner promoted a small value so that other processes can fetch it."""
        self._objects[oid] = _Object(0, owner, data)
        self.refs.add(oid, owner)
        return self._hold_contained(oid, contained) + self._wake(oid)

    def spilled(self, oid: bytes) -> None:
        obj = self._objects.get(oid)
        if obj is not None:
            obj.in_shm = False

    def _hold_contained(self, oid: bytes, contained: Sequence[Sequence[bytes]]) -> list[Action]:
        """The objects (and actors) whose refs are inside ``oid`` are held for it until it is
        freed, whoever else lets go of them: a borrower of ``oid`` may read them later."""
        if not contained or oid in self._contains:
            return []
        self._contains[oid] = [c[0] for c in contained]
        return self.add_refs(("in", oid), [c[0] for c in contained], [c[1] for c in contained])

    def _wake(self, oid: bytes) -> list[Action]:
        waiting = self._waiters.pop(oid, None)
        self._waiting_owner.pop(oid, None)
        if not waiting:
            return []
        obj = self._objects[oid]
        return [Found(w, obj.size, obj.inline) for w in waiting]

    # -- finding objects --------------------------------------------------------------------

    def find(
        self, waiter: Waiter, oid: bytes, owner: bytes, asker_is_owner: bool = False
    ) -> list[Action]:
        """Answer with the object once this node has it, pulling it from another node if
        needed (or, without ``fetch``, as soon as it exists anywhere)."""
        obj = self._objects.get(oid)
        if obj is not None:
            return [Found(waiter, obj.size, obj.inline)]
        if self.lookups.stored(oid):
            return [Found(waiter, 0)]
        pulling = self._pulls.get(oid)
        if pulling is not None:
            pulling.append(waiter)
            return []
        where = self._located.get(oid)
        if where is not None:
            return self._pull_or_answer(oid, where[0], waiter)
        if not owner:  # nobody to ask where it is, or whether it will ever be
            return [_lost(waiter, self._lost.get(oid, FREED if oid in self._freed else NO_OWNER))]
        home = self.lookups.home_of(owner)
        # (Freed here, an object owned on another node was only let go of by this node's
        # holders: a new holder, such as a task run again once its owner made it again,
        # asks its home, which knows whether it lives.)
        borrowed = home is not None and home != self.node_id
        if (oid in self._freed and not borrowed) or asker_is_owner:
            return [_lost(waiter, self._lost.get(oid, FREED))]
        if home != self.node_id:
            return self._locate_remote(oid, owner, waiter)
        if not self.lookups.is_connected(owner):
            return [Failed(waiter, ErrorKind.OWNER_DIED, OWNER_EXITED)]
        self._wait_for_owner(oid, owner, waiter)
        return []

    def locate(self, waiter: Waiter, oid: bytes, owner: bytes) -> list[Action]:
        """Another node asks this home where an object is (``waiter.where_only``)."""
        where = self._located.get(oid)
        if where is not None:
            return [FoundAt(waiter, where[0])]
        if oid in self._objects or self.lookups.stored(oid) or oid in self._freed:
            return self.find(waiter, oid, owner)
        if not self.lookups.is_connected(owner):
            return [Failed(waiter, ErrorKind.OWNER_DIED, OWNER_EXITED)]
        self._wait_for_owner(oid, owner, waiter)
        return []

    def _wait_for_owner(self, oid: bytes, owner: bytes, waiter: Waiter) -> None:
        self._waiting_owner[oid] = owner
        self._waiters.setdefault(oid, []).append(waiter)

    def _pull_or_answer(self, oid: bytes, node_id: bytes, waiter: Waiter) -> list[Action]:
        return self._pull(oid, node_id, waiter) if waiter.fetch else [Found(waiter, 0)]

    def _locate_remote(self, oid: bytes, owner: bytes, waiter: Waiter) -> list[Action]:
        waiting = self._locating.get(oid)
        if waiting is not None:
            waiting.append(waiter)
            return []
        self._locating[oid] = [waiter]
        return [Locate(oid, owner, self.lookups.home_of(owner))]

    def located_reply(
        self,
        oid: bytes,
        error: Error | None = None,
        node_id: bytes = b"",
        inline: Any = None,
    ) -> list[Action]:
        """The home's answer to ``Locate``: an error, the object's value, or its node."""
        out: list[Action] = []
        for w in self._locating.pop(oid, []):
            if error is not None:
                if error[0] is ErrorKind.CONNECTION_LOST:  # the home went away
                    out.append(Failed(w, ErrorKind.OWNER_DIED, OWNER_EXITED))
                else:
                    out.append(Failed(w, *error))
            elif inline is not None:
                out.append(Found(w, 0, inline))
            else:
                out += self._pull_or_answer(oid, node_id, w)
        return out

    def located(self, oid: bytes, node_id: bytes, owner: bytes) -> list[Action]:
        """An owner here reports that its object is stored on another node."""
        if not self.lookups.is_alive(node_id):
            self._lost[oid] = "the node that held it died"
            self._freed[oid] = None
        else:
            self._located[oid] = (node_id, owner)
        if oid not in self._lost:  # (a rebuilt object was counted when first located)
            self.refs.add(oid, owner)
        self._waiting_owner.pop(oid, None)
        out: list[Action] = []
        for w in self._waiters.pop(oid, []):
            if oid not in self._located:
                out.append(_lost(w, self._lost[oid]))
            elif w.where_only:
                out.append(FoundAt(w, node_id))
            else:
                out += self._pull_or_answer(oid, node_id, w)
        return out

    # -- transfers --------------------------------------------------------------------------

    def _pull(self, oid: bytes, node_id: bytes, waiter: Waiter) -> list[Action]:
        if oid in self._objects or self.lookups.stored(oid):
            return self.find(waiter, oid, b"")
        waiting = self._pulls.get(oid)
        if waiting is not None:
            waiting.append(waiter)
            return []
        self._pulls[oid] = [waiter]
        return [Pull(oid, node_id)]

    def pull_finished(
        self, oid: bytes, size: int | None, error: Error | None = None
    ) -> list[Action]:
        """A pull ended: the copy is sealed in the store (``size``), or it failed."""
        waiting = self._pulls.pop(oid, [])
        if size is None:
            kind, text = error or (
                ErrorKind.OBJECT_LOST,
                "the transfer from the node that holds it failed",
            )
            return [Failed(w, kind, text) for w in waiting]
        if oid not in self._objects:  # (else made here meanwhile, and kept)
            self._objects[oid] = _Object(size, b"", in_shm=self.lookups.in_shm(oid) is True)
        return [Found(w, size) for w in waiting]

    # -- refs and freeing -------------------------------------------------------------------

    def hold_actor(self, actor_id: bytes, owner: bytes) -> None:
        """An actor this node manages: its owner holds it like an object."""
        self._actors.add(actor_id)
        self.refs.add(actor_id, owner)

    def add_refs(
        self, holder: Hashable, ids: Sequence[bytes], owners: Sequence[bytes]
    ) -> list[Action]:
        """Count ``holder``'s new refs. For an object or actor owned on another node, this
        node holds it there, once, for all its local holders (until it is freed here): its
        owner's node then does not let it go while processes here still use it."""
        for oid in ids:
            self.refs.add(oid, holder)
        out: list[Action] = []
        for oid, owner in zip(ids, owners, strict=False):  # (owners may be absent)
            home = self.lookups.home_of(owner)
            if home is None or home == self.node_id or oid in self._borrowed:
                continue
            self._borrowed[oid] = home
            out.append(IncRef(home, oid))
        return out

    def dec_refs(self, holder: Hashable, ids: Sequence[bytes], now: float) -> None:
        """``holder`` let go of these (a process here, or the owner on another node); they
        are freed after the grace period (see ``free_due``)."""
        for oid in ids:
            obj = self._objects.get(oid)
            if obj is not None and obj.owner_holds and holder == obj.owner:
                self._owner_let_go(oid, obj, now)
            else:
                self.refs.remove(oid, holder, now)

    def _owner_let_go(self, oid: bytes, obj: _Object, now: float) -> None:
        obj.owner_holds = False
        self.refs.expire(oid, now)

    def free_now(self, holder: bytes, ids: Sequence[bytes], now: float) -> list[Action]:
        """The owner drops objects it never shared: freed at once."""
        out: list[Action] = []
        for oid in ids:
            if self.refs.free_now(oid, holder):
                out += self._free(oid, now)
        return out

    def next_due(self) -> float | None:
        """When the next object's grace period ends (for ``free_due``)."""
        return self.refs.next_due()

    def free_due(self, now: float) -> list[Action]:
        """Free what nobody holds any more; of an object its owner elsewhere still holds,
        only let its home go (this node's holders did)."""
        out: list[Action] = []
        for oid in self.refs.due(now):
            obj = self._objects.get(oid)
            out += (
                self._unborrow(oid) if obj is not None and obj.owner_holds else self._free(oid, now)
            )
        return out

    def _unborrow(self, oid: bytes) -> list[Action]:
        home = self._borrowed.pop(oid, None)
        return [DecRef(home, oid)] if home is not None else []

    def holder_gone(self, client_id: bytes, now: float) -> list[Action]:
        """A process ended: its refs go (after the grace period) and the waits for objects
        it owned fail."""
        self.refs.holder_gone(client_id, now)
        self._owners_gone(lambda owner: owner == client_id, now)
        out: list[Action] = []
        for oid, waiting in list(self._waiters.items()):
            if self._waiting_owner.get(oid) == client_id:
                out += [Failed(w, ErrorKind.OWNER_DIED, OWNER_EXITED) for w in waiting]
                del self._waiters[oid]
        return out

    def node_died(self, node_id: bytes, reason: str, now: float) -> None:
        """Its processes' refs go; objects that lived only there are lost."""
        home_of = self.lookups.home_of
        self.refs.holders_gone(lambda h: isinstance(h, bytes) and home_of(h) == node_id, now)
        self._owners_gone(lambda owner: home_of(owner) == node_id, now)
        for oid, where in list(self._located.items()):
            if where[0] == node_id:
                del self._located[oid]
                self._lost[oid] = f"the node that held it died ({reason})"
                self._freed[oid] = None

    def _owners_gone(self, gone: Callable[[bytes], bool], now: float) -> None:
        for oid, obj in self._objects.items():
            if obj.owner_holds and gone(obj.owner):
                self._owner_let_go(oid, obj, now)

    def _free(self, oid: bytes, now: float) -> list[Action]:
        out: list[Action] = []
        for held in self._contains.pop(oid, ()):
            self.refs.remove(held, ("in", oid), now)
        out += self._unborrow(oid)  # no holder is left here: let the owner's node know
        self._freed[oid] = None
        if len(self._freed) > _FREED_KEPT:
            old, _ = self._freed.popitem(last=False)
            self._lost.pop(old, None)
        obj = self._objects.pop(oid, None)
        if obj is not None and obj.in_shm and obj.inline is None:
            # Freed files stay allocated for reuse, for a while (they count as taken): new
            # tmpfs pages cost far more than overwriting old ones (for a pulled copy as for a
            # put). (An owner has pooled an object only it knew already.)
            out.append(DeleteFile(oid, recycle=True))
        elif (obj is None or obj.inline is None) and oid not in self._actors:
            out.append(DeleteFile(oid, recycle=False))
        where = self._located.pop(oid, None)
        if where is not None:
            out.append(DropOwner(where[0], oid, where[1]))
        if oid in self._actors:
            self._freed.pop(oid, None)  # (an actor's id, not an object's)
            out.append(ActorUnreferenced(oid))
        return out
