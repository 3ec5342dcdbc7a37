"""The client's decisions about its calls to actors.

Theory of operation: calls to one actor queue in submission order and go, in that order, to
the actor's process once their arguments are ready and the node has said where the actor
lives (*resolving*: the client asks for the next incarnation it has not seen). An actor is
``PENDING`` (being resolved), ``ALIVE`` (calls go straight to its process) or ``DEAD`` (every
call fails with why). When the connection to its process closes, the calls sent there are
sent again after the restart while they have retries (``max_task_retries``); a call without
one fails with what the node says of how the process ended. Releasing the last handle waits
for the calls already submitted.

Like ``task_leases``, this class decides and nothing else: the client feeds it events and
carries out every action it returns, in order; ``Actor.peer`` is the client's handle for the
actor's process, and the message sent on release its own, both opaque here.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Sequence
from typing import Any

from ember import exceptions as exc
from ember._core.task_leases import Fail, Finish, Task
from ember._protocol.messages import ReturnValue
from ember._protocol.records import record


class State(enum.Enum):
    PENDING = "pending"
    ALIVE = "alive"
    DEAD = "dead"


class Actor:
    __slots__ = (
        "actor_id",
        "class_name",
        "max_task_retries",
        "state",
        "peer",
        "incarnation",
        "resolving",
        "error",
        "queue",
        "inflight",
        "on_idle",
    )

    def __init__(self, actor_id: bytes, class_name: str, max_task_retries: int) -> None:
        self.actor_id = actor_id
        self.class_name = class_name
        self.max_task_retries = max_task_retries
        self.state = State.PENDING
        self.peer: Any = None  # its process, while ALIVE
        self.incarnation = -1  # the last one resolved
        self.resolving = False
        self.error: BaseException | None = None  # why it is DEAD
        self.queue: collections.deque[Task] = collections.deque()  # not sent yet, in order
        self.inflight: dict[bytes, Task] = {}  # sent, not answered
        self.on_idle: Any = None  # a release to send once the last call is done


# -- actions (besides task_leases' Fail and Finish) ----------------------------------------


@record
class SendCall:
    task: Task
    actor: Actor


@record
class Resolve:
    """Ask the node where incarnation ``incarnation`` of the actor lives; answer with
    ``resolved``, ``unreachable`` or ``died``."""

    actor: Actor
    incarnation: int


@record
class AskHowLost:
    """The call ``task`` was lost with incarnation ``incarnation`` and has no retry left: ask
    the node how that process ended, then answer with ``lost_call_failed``."""

    task: Task
    actor: Actor
    incarnation: int


@record
class CancelCall:
    task: Task
    actor: Actor
    recursive: bool


@record
class SendRelease:
    """No handle is left here and no call is pending: send the release deferred till now."""

    message: Any


Action = SendCall | Resolve | AskHowLost | CancelCall | SendRelease | Fail | Finish
_NONE: list[Action] = []  # returned when there is nothing to do; never appended to


def died(actor: Actor, reason: Any) -> exc.ActorDiedError:
    return exc.ActorDiedError(reason, actor_id=actor.actor_id.hex(), class_name=actor.class_name)


class ActorCalls:
    def __init__(self) -> None:
        self._actors: dict[bytes, Actor] = {}

    # -- queries ------------------------------------------------------------------------------

    def get(self, actor_id: bytes) -> Actor | None:
        return self._actors.get(actor_id)

    def on_peer(self, peer: Any) -> list[Actor]:
        return [a for a in self._actors.values() if a.peer is peer]

    # -- events -------------------------------------------------------------------------------

    def add(self, actor: Actor) -> Actor:
        """Track ``actor``, unless one with its id is tracked already (then that one)."""
        return self._actors.setdefault(actor.actor_id, actor)

    def forget(self, actor_id: bytes) -> None:
        """The actor was never made here after all (its name was taken)."""
        self._actors.pop(actor_id, None)

    def submit(self, actor: Actor, task: Task) -> None:
        """Queue a call; it goes once it is ready (``flush``)."""
        actor.queue.append(task)

    @staticmethod
    def has_room(actor: Actor | None, max_pending_calls: int) -> bool:
        """May another call be submitted under the actor's ``max_pending_calls`` (-1: no
        limit)? Calls are pending from submission until answered (or failed)."""
        if max_pending_calls < 0 or actor is None:
            return True
        return len(actor.queue) + len(actor.inflight) < max_pending_calls

    def flush(self, actor: Actor) -> list[Action]:
        """A call may have become ready, or the actor's state changed: send what can go."""
        if actor.state is State.DEAD:
            out: list[Action] = []
            error = actor.error or died(actor, "dead")
            while actor.queue:
                out.append(Fail(actor.queue.popleft(), error))
            self._idle(actor, out)
            return out
        if actor.state is State.PENDING:
            return self._resolve(actor)
        queue = actor.queue
        if not queue or not queue[0].ready:
            return _NONE
        out = []
        while queue and queue[0].ready:
            task = queue.popleft()
            if task.cancelled:
                continue
            actor.inflight[task.task_id] = task
            out.append(SendCall(task, actor))
        return out

    def resolved(self, actor: Actor, incarnation: int, peer: Any) -> list[Action]:
        actor.resolving = False
        if actor.state is State.DEAD:  # killed here while the node was being asked
            return _NONE
        actor.incarnation = incarnation
        actor.state = State.ALIVE
        actor.peer = peer
        return self.flush(actor)

    def unreachable(self, actor: Actor, incarnation: int) -> list[Action]:
        """The node named a process this client cannot reach: ask for the next one."""
        actor.resolving = False
        actor.incarnation = incarnation
        return _NONE if actor.state is State.DEAD else self._resolve(actor)

    def died(self, actor: Actor, error: BaseException) -> list[Action]:
        actor.resolving = False
        actor.state = State.DEAD
        actor.error = error
        return self.flush(actor)

    def call_done(
        self, task: Task, actor: Actor, results: Sequence[ReturnValue], retryable: bool
    ) -> list[Action]:
        """The actor answered ``task``; ``retryable``: it failed with an error that counts for
        a retry (one of its ``retry_exceptions``)."""
        actor.inflight.pop(task.task_id, None)
        out: list[Action] = []
        if retryable and task.use_retry():
            actor.queue.appendleft(task)
            out += self.flush(actor)
        else:
            self._idle(actor, out)
            out.append(Finish(task, results))
        return out

    def args_failed(self, task: Task, actor: Actor, results: Any) -> list[Action]:
        """An argument of the call ``task`` failed: it is never sent, and finishes with
        ``results`` (that error); the calls queued behind it go on."""
        if task not in actor.queue:  # (failed already: the actor died meanwhile)
            return _NONE
        actor.queue.remove(task)
        out: list[Action] = [Finish(task, results)]
        out += self.flush(actor)
        self._idle(actor, out)
        return out

    def cancel(self, task: Task, actor: Actor, recursive: bool) -> list[Action]:
        """A call not sent yet fails at once; a sent one is interrupted by the actor."""
        task.cancelled = True
        if task in actor.queue:
            actor.queue.remove(task)
            out: list[Action] = [Fail(task, exc.TaskCancelledError(task.task_id.hex()))]
            if actor.state is State.ALIVE:  # (the calls queued behind it may go now)
                out += self.flush(actor)
            self._idle(actor, out)
            return out
        if task.task_id in actor.inflight and actor.peer is not None:
            return [CancelCall(task, actor, recursive)]
        return _NONE

    def connection_lost(self, actor: Actor) -> list[Action]:
        """The connection to the actor's process closed: the calls sent there are sent again
        after the restart, or fail. (The actor may be known dead already: then there is no
        restart to wait for, and they fail with why it died.)"""
        dead = actor.state is State.DEAD
        if not dead:
            actor.state = State.PENDING
        actor.peer = None
        lost = sorted(actor.inflight.values(), key=lambda t: t.task_id)
        actor.inflight.clear()
        out: list[Action] = []
        asking = False  # how a call was lost (then a release waits for its answer)
        for task in reversed(lost):
            if task.cancelled:
                out.append(Fail(task, exc.TaskCancelledError(task.task_id.hex())))
            elif dead:
                out.append(Fail(task, actor.error or died(actor, "dead")))
            elif task.use_retry():
                actor.queue.appendleft(task)
            else:
                out.append(AskHowLost(task, actor, actor.incarnation))
                asking = True
        if (asking or not self._idle(actor, out)) and not dead:
            out += self._resolve(actor)
        return out

    def lost_call_failed(self, task: Task, actor: Actor, error: BaseException) -> list[Action]:
        out: list[Action] = [Fail(task, error)]
        self._idle(actor, out)
        return out

    def release(self, actor_id: bytes, message: Any) -> list[Action]:
        """No handle to the actor is left here; ``message`` (if not None) tells the node, once
        the calls already submitted are done."""
        actor = self._actors.get(actor_id)
        if actor is not None and (actor.queue or actor.inflight):
            actor.on_idle = message
            return _NONE
        self._actors.pop(actor_id, None)
        return _NONE if message is None else [SendRelease(message)]

    # -- decisions ----------------------------------------------------------------------------

    def _resolve(self, actor: Actor) -> list[Action]:
        if actor.resolving:
            return _NONE
        actor.resolving = True
        return [Resolve(actor, actor.incarnation + 1)]

    def _idle(self, actor: Actor, out: list[Action]) -> bool:
        """Send the release deferred till the actor's calls are done, if they are now (True:
        then the actor is forgotten here)."""
        if actor.on_idle is not None and not actor.queue and not actor.inflight:
            message, actor.on_idle = actor.on_idle, None
            self._actors.pop(actor.actor_id, None)
            out.append(SendRelease(message))
            return True
        return False
