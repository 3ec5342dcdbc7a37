"""Tests for ember._core.object_index.ObjectIndex, driven with plain events and values."""

from __future__ import annotations

from ember._core.object_index import (
    ActorUnreferenced,
    DecRef,
    DeleteFile,
    DropOwner,
    Failed,
    Found,
    FoundAt,
    IncRef,
    Locate,
    ObjectIndex,
    Pull,
    Waiter,
)
from ember._protocol.messages import ErrorKind

HERE = b"AAAA" + b"\0" * 12
OTHER = b"BBBB" + b"\0" * 12
THIRD = b"CCCC" + b"\0" * 12
OWNER = b"AAAA" + b"owner..."  # a process on this node
REMOTE_OWNER = b"BBBB" + b"owner..."  # a process on the other node
READER = b"AAAA" + b"reader.."


class World:
    """What the index asks of the node, as plain sets."""

    def __init__(self) -> None:
        self.connected = {OWNER, READER}
        self.alive = {HERE, OTHER, THIRD}
        self.shm: set[bytes] = set()
        self.spill: set[bytes] = set()

    def home_of(self, client_id: bytes) -> bytes | None:
        return {b"AAAA": HERE, b"BBBB": OTHER, b"CCCC": THIRD}.get(client_id[:4])

    def is_connected(self, client_id: bytes) -> bool:
        return client_id in self.connected

    def is_alive(self, node_id: bytes) -> bool:
        return node_id in self.alive

    def stored(self, oid: bytes) -> bool:
        return oid in self.shm or oid in self.spill

    def in_shm(self, oid: bytes) -> bool | None:
        return True if oid in self.shm else False if oid in self.spill else None


def make(grace: float = 1.0) -> tuple[ObjectIndex, World]:
    world = World()
    return ObjectIndex(HERE, world, grace), world


def store(index: ObjectIndex, world: World, oid: bytes, size: int = 100) -> None:
    world.shm.add(oid)
    assert index.created(oid, OWNER, size, []) == []


# ----------------------------------------------------------------------------- finding here


def test_a_stored_object_is_found_at_once() -> None:
    index, world = make()
    store(index, world, b"o1", 500)
    w = Waiter("w")
    assert index.find(w, b"o1", OWNER) == [Found(w, 500)]


def test_a_wait_for_an_object_not_made_yet_is_answered_when_it_is() -> None:
    index, world = make()
    w1, w2 = Waiter("w1"), Waiter("w2", fetch=False)
    assert index.find(w1, b"o1", OWNER) == []
    assert index.find(w2, b"o1", OWNER) == []
    world.shm.add(b"o1")
    assert index.created(b"o1", OWNER, 7, []) == [Found(w1, 7), Found(w2, 7)]


def test_a_small_value_put_inline_wakes_its_waiters_with_the_value() -> None:
    index, _ = make()
    w = Waiter("w")
    index.find(w, b"o1", OWNER)
    assert index.put_inline(b"o1", OWNER, [0, b"data"], []) == [Found(w, 0, [0, b"data"])]
    w2 = Waiter("w2")
    assert index.find(w2, b"o1", OWNER) == [Found(w2, 0, [0, b"data"])]


def test_a_ref_without_owner_finds_what_the_node_has_and_fails_clearly_otherwise() -> None:
    index, world = make()
    store(index, world, b"o1", 500)
    index.put_inline(b"o2", OWNER, [0, b"data"], [])
    w1, w2, w3 = Waiter("w1"), Waiter("w2"), Waiter("w3")
    assert index.find(w1, b"o1", b"") == [Found(w1, 500)]
    assert index.find(w2, b"o2", b"") == [Found(w2, 0, [0, b"data"])]
    (failed,) = index.find(w3, b"o3", b"")  # not here, and nobody to ask: no wait for ever
    assert isinstance(failed, Failed) and failed.kind is ErrorKind.OBJECT_LOST
    assert "owner is unknown" in failed.text and "ember.cloudpickle" in failed.text


def test_a_notice_for_an_object_freed_meanwhile_is_ignored() -> None:
    index, _ = make()
    assert index.created(b"o1", OWNER, 7, []) == []  # no file: freed before the notice came
    assert not index.owned_by(OWNER)


def test_waits_fail_when_the_owner_is_gone() -> None:
    index, world = make()
    w = Waiter("w")
    index.find(w, b"o1", OWNER)
    assert index.holder_gone(OWNER, now=0.0) == [
        Failed(w, ErrorKind.OWNER_DIED, "the process that owned this object has exited")
    ]
    world.connected.discard(OWNER)
    late = Waiter("late")
    assert index.find(late, b"o2", OWNER) == [
        Failed(late, ErrorKind.OWNER_DIED, "the process that owned this object has exited")
    ]


def test_the_owner_asking_for_an_object_never_made_here_is_told_it_is_lost() -> None:
    index, _ = make()
    w = Waiter("w")
    out = index.find(w, b"o1", OWNER, asker_is_owner=True)
    assert out == [Failed(w, ErrorKind.OBJECT_LOST, "the object was freed: no ref to it was left")]


# ----------------------------------------------------------------------------- other nodes


def test_an_object_owned_elsewhere_is_located_once_then_pulled_once() -> None:
    index, _ = make()
    w1, w2, w3 = Waiter("w1"), Waiter("w2"), Waiter("w3", fetch=False)
    assert index.find(w1, b"o1", REMOTE_OWNER) == [Locate(b"o1", REMOTE_OWNER, OTHER)]
    assert index.find(w2, b"o1", REMOTE_OWNER) == []
    assert index.find(w3, b"o1", REMOTE_OWNER) == []
    out = index.located_reply(b"o1", node_id=THIRD)
    assert out == [Pull(b"o1", THIRD), Found(w3, 0)]  # one pull for both fetching waiters
    assert index.pull_finished(b"o1", 900) == [Found(w1, 900), Found(w2, 900)]
    w4 = Waiter("w4")
    assert index.find(w4, b"o1", REMOTE_OWNER) == [Found(w4, 900)]  # the copy is here now


def test_a_small_remote_object_comes_with_the_answer() -> None:
    index, _ = make()
    w = Waiter("w")
    index.find(w, b"o1", REMOTE_OWNER)
    assert index.located_reply(b"o1", inline=[0, b"x"]) == [Found(w, 0, [0, b"x"])]


def test_a_home_that_went_away_means_the_owner_died() -> None:
    index, _ = make()
    w = Waiter("w")
    index.find(w, b"o1", REMOTE_OWNER)
    out = index.located_reply(b"o1", (ErrorKind.CONNECTION_LOST, "closed"))
    assert out == [Failed(w, ErrorKind.OWNER_DIED, "the process that owned this object has exited")]
    w2 = Waiter("w2")
    index.find(w2, b"o2", REMOTE_OWNER)
    out = index.located_reply(b"o2", (ErrorKind.OBJECT_LOST, "the node that held it died"))
    assert out == [Failed(w2, ErrorKind.OBJECT_LOST, "the node that held it died")]


def test_a_failed_pull_fails_its_waiters() -> None:
    index, _ = make()
    w = Waiter("w")
    index.find(w, b"o1", REMOTE_OWNER)
    index.located_reply(b"o1", node_id=OTHER)
    assert index.pull_finished(b"o1", None) == [
        Failed(w, ErrorKind.OBJECT_LOST, "the transfer from the node that holds it failed")
    ]


def test_a_pull_refused_by_the_holder_fails_its_waiters_with_its_error() -> None:
    index, _ = make()
    w1, w2 = Waiter("w1"), Waiter("w2")
    index.find(w1, b"o1", REMOTE_OWNER)
    index.find(w2, b"o1", REMOTE_OWNER)
    assert index.located_reply(b"o1", node_id=OTHER) == [Pull(b"o1", OTHER)]
    gone = (ErrorKind.OBJECT_LOST, "the object is no longer on the node that held it")
    assert index.pull_finished(b"o1", None, gone) == [
        Failed(w1, ErrorKind.OBJECT_LOST, gone[1]),
        Failed(w2, ErrorKind.OBJECT_LOST, gone[1]),
    ]
    w3 = Waiter("w3")  # a later wait asks the home again
    assert index.find(w3, b"o1", REMOTE_OWNER) == [Locate(b"o1", REMOTE_OWNER, OTHER)]


def test_the_home_asked_for_a_freed_object_says_it_was_freed() -> None:
    index, world = make(grace=0.0)
    store(index, world, b"o1")
    index.dec_refs(OWNER, [b"o1"], now=0.0)
    assert index.free_due(now=1.0) == [DeleteFile(b"o1", recycle=True)]
    world.shm.discard(b"o1")
    w = Waiter("w", where_only=True)
    assert index.locate(w, b"o1", OWNER) == [
        Failed(w, ErrorKind.OBJECT_LOST, "the object was freed: no ref to it was left")
    ]


def test_the_home_answers_another_node_with_where_the_object_is() -> None:
    index, world = make()
    # Stored here: the asker pulls it from this node.
    store(index, world, b"here")
    w = Waiter("w", where_only=True)
    assert index.locate(w, b"here", OWNER) == [Found(w, 100)]
    # Stored on another node, reported by its owner: the asker is told which.
    assert index.located(b"there", THIRD, OWNER) == []
    w2 = Waiter("w2", where_only=True)
    assert index.locate(w2, b"there", OWNER) == [FoundAt(w2, THIRD)]
    # Not made yet: told once the owner reports it.
    w3, w4 = Waiter("w3", where_only=True), Waiter("w4")
    assert index.locate(w3, b"later", OWNER) == []
    assert index.find(w4, b"later", OWNER) == []
    assert index.located(b"later", OTHER, OWNER) == [FoundAt(w3, OTHER), Pull(b"later", OTHER)]


def test_an_object_reported_on_a_dead_node_is_lost() -> None:
    index, world = make()
    w = Waiter("w")
    index.find(w, b"o1", OWNER)
    world.alive.discard(OTHER)
    assert index.located(b"o1", OTHER, OWNER) == [
        Failed(w, ErrorKind.OBJECT_LOST, "the node that held it died")
    ]


def test_objects_on_a_node_that_dies_are_lost() -> None:
    index, _ = make()
    index.located(b"o1", OTHER, OWNER)
    index.node_died(OTHER, "no heartbeat", now=0.0)
    w = Waiter("w")
    out = index.find(w, b"o1", OWNER)
    assert out == [Failed(w, ErrorKind.OBJECT_LOST, "the node that held it died (no heartbeat)")]


def test_a_node_death_drops_the_refs_its_processes_held() -> None:
    index, world = make(grace=0.5)
    store(index, world, b"o1")
    index.add_refs(REMOTE_OWNER, [b"o1"], [OWNER])
    index.dec_refs(OWNER, [b"o1"], now=0.0)
    assert index.free_due(now=10.0) == []  # the other node's process still holds it
    index.node_died(OTHER, "gone", now=10.0)
    assert index.free_due(now=11.0) == [DeleteFile(b"o1", recycle=True)]


# ----------------------------------------------------------------------------- refs, freeing


def test_dropped_refs_free_an_object_after_the_grace_period() -> None:
    index, world = make(grace=1.0)
    store(index, world, b"o1")
    index.dec_refs(OWNER, [b"o1"], now=5.0)
    assert index.next_due() == 6.0
    assert index.free_due(now=5.5) == []
    assert index.free_due(now=6.0) == [DeleteFile(b"o1", recycle=True)]
    w = Waiter("w")
    world.shm.discard(b"o1")
    out = index.find(w, b"o1", OWNER)
    assert out == [Failed(w, ErrorKind.OBJECT_LOST, "the object was freed: no ref to it was left")]


def test_a_ref_taken_within_the_grace_period_keeps_the_object() -> None:
    index, world = make(grace=1.0)
    store(index, world, b"o1")
    index.dec_refs(OWNER, [b"o1"], now=0.0)
    index.add_refs(READER, [b"o1"], [OWNER])
    assert index.free_due(now=2.0) == []


def test_an_object_never_shared_is_freed_at_once() -> None:
    index, world = make()
    store(index, world, b"o1")
    assert index.free_now(OWNER, [b"o1"], now=0.0) == [DeleteFile(b"o1", recycle=True)]


def test_spilled_and_inline_objects_are_deleted_not_recycled() -> None:
    index, world = make()
    store(index, world, b"big")
    index.spilled(b"big")
    index.put_inline(b"small", OWNER, [0, b"x"], [])
    assert index.free_now(OWNER, [b"big"], now=0.0) == [DeleteFile(b"big", recycle=False)]
    assert index.free_now(OWNER, [b"small"], now=0.0) == []  # nothing on disk


def test_refs_inside_an_object_are_held_until_it_is_freed() -> None:
    index, world = make(grace=0.0)
    store(index, world, b"inner")
    world.shm.add(b"outer")
    index.created(b"outer", OWNER, 10, [[b"inner", OWNER]])
    index.dec_refs(OWNER, [b"inner"], now=0.0)
    assert index.free_due(now=1.0) == []  # the outer object holds it
    index.dec_refs(OWNER, [b"outer"], now=1.0)
    assert index.free_due(now=2.0) == [DeleteFile(b"outer", recycle=True)]
    assert index.free_due(now=3.0) == [DeleteFile(b"inner", recycle=True)]


def test_an_object_owned_elsewhere_is_held_at_its_home_once() -> None:
    index, _ = make(grace=0.0)
    out = index.add_refs(READER, [b"o1"], [REMOTE_OWNER])
    assert out == [IncRef(OTHER, b"o1")]
    assert index.add_refs(OWNER, [b"o1"], [REMOTE_OWNER]) == []  # once for all holders here
    index.dec_refs(READER, [b"o1"], now=0.0)
    index.dec_refs(OWNER, [b"o1"], now=0.0)
    assert index.free_due(now=1.0) == [DecRef(OTHER, b"o1"), DeleteFile(b"o1", recycle=False)]


def test_the_home_tells_the_node_holding_the_primary_copy_when_the_owner_lets_go() -> None:
    index, _ = make(grace=0.0)
    index.located(b"o1", THIRD, OWNER)
    index.dec_refs(OWNER, [b"o1"], now=0.0)
    out = index.free_due(now=1.0)
    assert DropOwner(THIRD, b"o1", OWNER) in out


def test_a_copy_made_here_for_an_owner_elsewhere_lets_its_home_go_with_its_readers() -> None:
    """A task here stored an object for an owner on another node, and a task here read it:
    once the reader let go, this node lets the home go although the owner still holds the
    copy (it used to count the owner here too, and so held the home, which held the owner's
    hold here, for ever); the copy goes when the home says the owner let go."""
    index, world = make(grace=0.5)
    world.shm.add(b"o1")
    assert index.created(b"o1", REMOTE_OWNER, 100, []) == []
    assert index.add_refs(READER, [b"o1"], [REMOTE_OWNER]) == [IncRef(OTHER, b"o1")]
    index.dec_refs(READER, [b"o1"], now=0.0)
    assert index.free_due(now=1.0) == [DecRef(OTHER, b"o1")]  # the copy stays: its owner's
    assert [(r.oid, r.holder) for r in index.references()] == [(b"o1", REMOTE_OWNER)]
    index.dec_refs(REMOTE_OWNER, [b"o1"], now=2.0)  # DropOwner from the home
    assert index.free_due(now=2.1) == []
    assert index.free_due(now=2.5) == [DeleteFile(b"o1", recycle=True)]


def test_a_copy_made_for_an_owner_elsewhere_goes_when_that_owner_s_node_dies() -> None:
    index, world = make(grace=0.0)
    world.shm.add(b"o1")
    index.created(b"o1", REMOTE_OWNER, 100, [])
    index.add_refs(READER, [b"o1"], [REMOTE_OWNER])
    index.node_died(OTHER, "gone", now=0.0)
    assert index.free_due(now=1.0) == []  # a reader here still holds it
    index.dec_refs(READER, [b"o1"], now=1.0)
    assert index.free_due(now=2.0) == [DecRef(OTHER, b"o1"), DeleteFile(b"o1", recycle=True)]


def test_a_copy_that_arrives_after_every_holder_let_go_is_not_wanted() -> None:
    index, _ = make(grace=0.0)
    index.add_refs(READER, [b"o1"], [REMOTE_OWNER])
    w = Waiter("w")
    index.find(w, b"o1", REMOTE_OWNER)
    index.located_reply(b"o1", node_id=OTHER)
    assert index.pull_wanted(b"o1")
    index.dec_refs(READER, [b"o1"], now=0.0)
    index.free_due(now=1.0)
    assert not index.pull_wanted(b"o1")


def test_a_borrowed_object_freed_here_and_wanted_again_is_asked_of_its_home() -> None:
    """Its last holder here let go (a task that failed as its copy was lost), then a new one
    asks (that task run again once its owner made it again): freed here means only that this
    node's holders let go; its home knows whether it lives."""
    index, _ = make(grace=0.0)
    index.add_refs(READER, [b"o1"], [REMOTE_OWNER])
    index.dec_refs(READER, [b"o1"], now=0.0)
    index.free_due(now=1.0)
    assert index.add_refs(READER, [b"o1"], [REMOTE_OWNER]) == [IncRef(OTHER, b"o1")]
    w = Waiter("w")
    assert index.find(w, b"o1", REMOTE_OWNER) == [Locate(b"o1", REMOTE_OWNER, OTHER)]
    assert index.located_reply(b"o1", node_id=THIRD) == [Pull(b"o1", THIRD)]
    assert index.pull_wanted(b"o1")


def test_an_actor_whose_refs_are_dropped_is_reported() -> None:
    index, _ = make(grace=0.0)
    index.hold_actor(b"actor", OWNER)
    index.dec_refs(OWNER, [b"actor"], now=0.0)
    out = index.free_due(now=1.0)
    assert out == [ActorUnreferenced(b"actor")]  # (an actor has no file to delete)


# ----------------------------------------------------------------------------- spilling


def test_spill_order_is_oldest_first_and_skips_spilled_and_inline_objects() -> None:
    index, world = make()
    for oid in (b"a", b"b", b"c"):
        store(index, world, oid)
    index.put_inline(b"small", OWNER, [0, b"x"], [])
    index.spilled(b"b")
    assert list(index.spill_order()) == [b"a", b"c"]
    assert index.owned_by(OWNER) and not index.owned_by(READER)


def test_references_name_each_holder_of_each_object_and_actor() -> None:
    index, world = make()
    store(index, world, b"obj", size=300)
    index.add_refs(READER, [b"obj"], [OWNER])
    index.put_inline(b"small", OWNER, [0, b"abcd"], [])
    index.hold_actor(b"actor", OWNER)
    refs = sorted((r.oid, r.size, r.holder, r.actor, r.in_shm) for r in index.references())
    assert refs == [
        (b"actor", -1, OWNER, True, True),
        (b"obj", 300, OWNER, False, True),
        (b"obj", 300, READER, False, True),
        (b"small", 4, OWNER, False, True),
    ]
