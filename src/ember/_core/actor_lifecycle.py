"""An actor's life on the node that manages it: pending → alive → restarting → dead.

Theory of operation: the actor manager feeds one ``ActorLifecycle`` per actor the events of
its life (its arguments are ready, a worker was granted, the process started or died, a kill)
and carries out every action it returns (ask the scheduler or another node for a worker,
start the actor on it, end its process, free its name, answer the callers waiting to learn
where it is: ``answer_for`` says what each is told). Which event a state takes, and what it
does there, is the table ``_TABLE`` at the end of this module; an event that a state does not
list is ignored (a stale answer for an incarnation that is gone, anything that happens to a
dead actor).

A process that ends (a crash, a kill with ``no_restart=False``, the death of its node)
restarts the actor while ``max_restarts`` allows (-1: no limit) and ``no_restart`` is not
set; each restart is a new *incarnation*, so answers about an older one are told apart.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from ember._protocol.records import record


class ActorState(enum.Enum):
    PENDING = "pending"  # waiting for its arguments, a worker, or its constructor
    ALIVE = "alive"
    RESTARTING = "restarting"  # its process ended; a new one is being placed and started
    DEAD = "dead"


# -- events ---------------------------------------------------------------------------------


@record
class SpecReady:
    """Its class and constructor arguments are known: it can be placed."""


@record
class SpecFailed:
    """An argument of its constructor failed: it never runs."""

    reason: str
    cause: bytes | None


@record
class Granted:
    """A dedicated worker was granted for ``incarnation`` (here or on another node)."""

    incarnation: int


@record
class GrantFailed:
    """The worker granted for ``incarnation`` could not be reached: place it again."""

    incarnation: int


@record
class SpilledTo:
    """The scheduler sends its placement to another node: ask that node for a worker."""

    node_id: bytes


@record
class Unplaceable:
    """No worker can ever be had for it (no node can host it; workers fail to start; its
    placement group was removed: ``cause``, the error its callers get, pickled)."""

    reason: str
    cause: bytes | None = None


@record
class Started:
    """Its constructor returned in ``incarnation``; callers reach it at ``addr``."""

    incarnation: int
    addr: str


@record
class StartFailed:
    """Its constructor raised in ``incarnation``: it stays dead (as Ray's actors do)."""

    incarnation: int
    reason: str
    cause: bytes | None


@record
class ProcessDied:
    """Its process ended (crash, kill, its node's death); ``why`` says how."""

    why: str


@record
class Kill:
    """``ember.kill()``, its end by its owner, or all refs to it dropped."""

    no_restart: bool
    reason: str


Event = (
    SpecReady
    | SpecFailed
    | Granted
    | GrantFailed
    | SpilledTo
    | Unplaceable
    | Started
    | StartFailed
    | ProcessDied
    | Kill
)


# -- actions --------------------------------------------------------------------------------


@record
class RequestWorker:
    """Ask the lease scheduler for a dedicated worker."""


@record
class RequestRemoteWorker:
    """Ask node ``node_id`` for a dedicated worker for ``incarnation``."""

    node_id: bytes
    incarnation: int


@record
class CancelRequest:
    """Withdraw the request for a worker."""


@record
class StartProcess:
    """Start the actor (run its constructor) on the worker just granted."""

    incarnation: int


@record
class ReturnWorker:
    """Hand the worker just granted back: nobody needs it any more."""


@record
class EndProcess:
    """Stop the actor's process."""


@record
class Unregister:
    """Tell the control store it is gone (its name is free again)."""


@record
class AnswerCallers:
    """Its state changed: answer the callers waiting to learn where it is or how it ended."""


Action = (
    RequestWorker
    | RequestRemoteWorker
    | CancelRequest
    | StartProcess
    | ReturnWorker
    | EndProcess
    | Unregister
    | AnswerCallers
)


# -- answers to a caller that asks where it is (see ``ActorLifecycle.answer_for``) ----------


@record
class IsDead:
    reason: str
    cause: bytes | None


@record
class HasEnded:
    """The incarnation the caller used has ended; ``how`` says how (and that it restarted)."""

    how: str


@record
class IsAt:
    addr: str
    incarnation: int


Answer = IsDead | HasEnded | IsAt


class ActorLifecycle:
    def __init__(self, max_restarts: int) -> None:
        self.max_restarts = max_restarts
        self.state = ActorState.PENDING
        self.incarnation = 0
        self.restarts = 0
        self.addr = ""  # where the alive incarnation listens
        self.no_restart = False
        self.reason = ""  # why it died (or, once killed for good, why it will)
        self.cause: bytes | None = None  # the error that killed it, pickled
        self.last_end = ""  # how its last process ended, and that it was restarted
        self._has_process = False  # a worker is granted to it and has not died
        self._killing = ""  # why its process is being ended, when it may restart
        self._unregistered = False

    def handle(self, event: Event) -> list[Action]:
        step = _TABLE.get((self.state, type(event)))
        return [] if step is None else step(self, event)

    def answer_for(self, min_incarnation: int, ended: bool) -> Answer | None:
        """What a caller waiting for incarnation ``min_incarnation`` (or, with ``ended``, for
        the end of the one before it) is told now; None: it waits on."""
        if self.state is ActorState.DEAD:
            return IsDead(self.reason, self.cause)
        if self.incarnation < min_incarnation:
            return None
        if ended:
            return HasEnded(self.last_end)
        if self.state is ActorState.ALIVE:
            return IsAt(self.addr, self.incarnation)
        return None

    # -- transitions (see _TABLE) -----------------------------------------------------------

    def _spec_ready(self, _: Event) -> list[Action]:
        return [RequestWorker()]

    def _spec_failed(self, event: Event) -> list[Action]:
        assert isinstance(event, SpecFailed)
        return self._fail(event.reason, event.cause)

    def _granted(self, event: Event) -> list[Action]:
        assert isinstance(event, Granted)
        if event.incarnation != self.incarnation or self._has_process:
            return [ReturnWorker()]
        self._has_process = True
        return [StartProcess(self.incarnation)]

    def _return_worker(self, _: Event) -> list[Action]:
        return [ReturnWorker()]

    def _grant_failed(self, event: Event) -> list[Action]:
        assert isinstance(event, GrantFailed)
        if event.incarnation != self.incarnation:
            return []
        self._has_process = False
        return [RequestWorker()]

    def _spilled_to(self, event: Event) -> list[Action]:
        assert isinstance(event, SpilledTo)
        return [RequestRemoteWorker(event.node_id, self.incarnation)]

    def _unplaceable(self, event: Event) -> list[Action]:
        assert isinstance(event, Unplaceable)
        return self._fail(event.reason, event.cause)

    def _started(self, event: Event) -> list[Action]:
        assert isinstance(event, Started)
        if event.incarnation != self.incarnation:
            return []
        self.state = ActorState.ALIVE
        self.addr = event.addr
        return [AnswerCallers()]

    def _start_failed(self, event: Event) -> list[Action]:
        assert isinstance(event, StartFailed)
        if event.incarnation != self.incarnation:
            return []
        return self._fail(event.reason, event.cause)

    def may_restart(self) -> bool:
        """Whether the actor is restarted if its process dies now."""
        return not self.no_restart and (self.max_restarts < 0 or self.restarts < self.max_restarts)

    def _process_died(self, event: Event) -> list[Action]:
        assert isinstance(event, ProcessDied)
        self._has_process = False
        why, self._killing = self._killing or event.why, ""
        if self.may_restart():
            self.restarts += 1
            self.incarnation += 1
            self.state = ActorState.RESTARTING
            self.last_end = f"{why}. It was restarted ({self._restarts_used()})"
            return [AnswerCallers(), RequestWorker()]
        return self._die(self.reason or self._stays_dead(why), None)

    def _kill(self, event: Event) -> list[Action]:
        assert isinstance(event, Kill)
        if event.no_restart:
            self.no_restart = True
            self.reason = event.reason
            actions: list[Action] = self._unregister()  # its name is free again at once
            if self._has_process:
                return [*actions, EndProcess()]  # it dies when its process has ended
            return [*actions, CancelRequest(), *self._die(event.reason, None)]
        if self._has_process:
            # Only a process ends here: an actor without one (restarting, not placed yet)
            # is not restarted by this kill, and its next real end must not be blamed on it.
            self._killing = f"{event.reason} (with no_restart=False)"
            return [EndProcess()]
        return []

    def _fail(self, reason: str, cause: bytes | None) -> list[Action]:
        """It dies for good, and a process it has (granted, maybe still starting) ends."""
        self.no_restart = True
        actions = self._die(reason, cause)
        return [*actions, EndProcess()] if self._has_process else actions

    def _die(self, reason: str, cause: bytes | None) -> list[Action]:
        self.state = ActorState.DEAD
        self.reason = reason
        self.cause = cause
        return [*self._unregister(), AnswerCallers()]

    def _unregister(self) -> list[Action]:
        if self._unregistered:
            return []
        self._unregistered = True
        return [Unregister()]

    def _restarts_used(self) -> str:
        if self.max_restarts < 0:
            return f"restart {self.restarts}, max_restarts=-1 sets no limit"
        return f"{self.restarts} of {self.max_restarts} restarts used"

    def _stays_dead(self, why: str) -> str:
        """Why an actor whose process ended is not restarted, and what to do about it."""
        if self.max_restarts == 0:
            return (
                f"{why}. It stays dead because max_restarts is 0: create the actor with "
                "max_restarts > 0 if it should survive crashes (and max_task_retries > 0 to "
                "retry the calls they interrupt)."
            )
        return (
            f"{why}. It stays dead: {self._restarts_used()}. Raise max_restarts (-1 for no "
            "limit) if it should survive more crashes."
        )


_Step = Callable[[ActorLifecycle, Event], list[Action]]
_LIVING = (ActorState.PENDING, ActorState.ALIVE, ActorState.RESTARTING)
_PLACING = (ActorState.PENDING, ActorState.RESTARTING)

# (state, event) -> what happens; a pair that is not here is ignored.
_TABLE: dict[tuple[ActorState, type], _Step] = {
    (ActorState.PENDING, SpecReady): ActorLifecycle._spec_ready,
    (ActorState.PENDING, SpecFailed): ActorLifecycle._spec_failed,
    **{(s, Granted): ActorLifecycle._granted for s in _PLACING},
    (ActorState.ALIVE, Granted): ActorLifecycle._return_worker,
    (ActorState.DEAD, Granted): ActorLifecycle._return_worker,
    **{(s, GrantFailed): ActorLifecycle._grant_failed for s in _PLACING},
    **{(s, SpilledTo): ActorLifecycle._spilled_to for s in _PLACING},
    **{(s, Unplaceable): ActorLifecycle._unplaceable for s in _PLACING},
    **{(s, Started): ActorLifecycle._started for s in _PLACING},
    **{(s, StartFailed): ActorLifecycle._start_failed for s in _PLACING},
    **{(s, ProcessDied): ActorLifecycle._process_died for s in _LIVING},
    **{(s, Kill): ActorLifecycle._kill for s in _LIVING},
}
