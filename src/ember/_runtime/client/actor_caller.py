"""The client's actor caller: creation, ordered method calls, restarts and deaths; the
decisions about calls are ``_core.actor_calls``'s, carried out here."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from ember import exceptions as exc
from ember._core.actor_calls import (
    Action,
    Actor,
    ActorCalls,
    AskHowLost,
    CancelCall,
    Resolve,
    SendCall,
    SendRelease,
    died,
)
from ember._core.labels import parse_selector
from ember._core.placement import strategy_on_wire
from ember._core.resources import Shape, shape_dict
from ember._core.task_events import ACTOR_CREATION_TASK, ENDED, PUSHED, STARTED, SUBMITTED
from ember._core.task_leases import Fail, Finish
from ember._protocol import ids
from ember._protocol import messages as m
from ember._protocol.messages import ERROR
from ember._runtime import serialization
from ember._runtime.client.records import (
    _Actor,
    _Obj,
    _retryable,
    _Task,
)
from ember._runtime.object_ref import ObjectRef
from ember._transport.reactor import Connection
from ember._transport.rpc import RemoteError

if TYPE_CHECKING:
    from ember._runtime.client.core_client import CoreClient
    from ember._runtime.client.object_table import ObjectTable
    from ember._runtime.client.task_submitter import TaskSubmitter


class ActorCaller:
    """The actors this process created or calls: each one's queue of calls, sent in order
    to its process once the node says where it lives.

    Shares the client's lock: methods named "under lock" expect the caller to hold it."""

    def __init__(self, client: CoreClient, objects: ObjectTable, tasks: TaskSubmitter) -> None:
        self._client = client
        self._lock = client.lock
        self._objects = objects
        self._tasks = tasks
        self._machine = ActorCalls()

    def create_actor(
        self,
        fn_id: bytes,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        class_name: str,
        shape: Shape,
        options: dict[str, Any],
        handle_meta: bytes,
        runtime_env: str = "",
        capture_child_tasks: bool = False,
    ) -> tuple[bytes, bool]:
        """Start an actor: (its id, True), or (an existing one's id, False) for
        ``get_if_exists``. The node learns of it at once; the constructor's arguments follow
        when they are ready, and calls wait for the actor meanwhile."""
        events = bool(options.get("enable_task_events", True))
        task = self._tasks.new_task(fn_id, args, kwargs, 0, class_name, events)
        actor_id = ids.new_actor_id()
        name = options.get("name")
        namespace = options.get("namespace") or self._client.current_namespace()
        job_id = self._client.current_job()
        detached = options.get("lifetime") == "detached"

        def spec(task: _Task) -> m.ActorSpec:
            return m.ActorSpec(
                fn_id=fn_id,
                blob=task.blob,
                deps=task.deps,
                args_ref=task.args_ref,
                class_name=class_name,
                max_concurrency=options.get("max_concurrency"),
                job_id=job_id,
                namespace=namespace,
                owner_id=self._client.client_id,
                runtime_env=runtime_env,
                handle_meta=handle_meta,
            )

        def args_ready(task: _Task, near: bytes) -> None:
            self._client.node.send(m.ActorArgs(actor_id=actor_id, spec=spec(task), error=None))

        def args_failed(task: _Task, error: bytes) -> None:
            self._client.node.send(m.ActorArgs(actor_id=actor_id, spec=None, error=error))

        with self._lock:
            self._objects.drain_decs()
            ready_now = not task.dep_refs
            done = self._client.calls.future(
                self._client.node,
                lambda rid: m.CreateActor(
                    rid=rid,
                    actor_id=actor_id,
                    spec=spec(task) if ready_now else None,
                    shape=shape_dict(shape),
                    owner_id=self._client.client_id,
                    job_id=job_id,
                    name=name,
                    namespace=namespace,
                    detached=detached,
                    get_if_exists=bool(options.get("get_if_exists")),
                    max_restarts=int(options.get("max_restarts") or 0),
                    handle_meta=handle_meta,
                    class_name=class_name,
                    strategy=strategy_on_wire(
                        options.get("scheduling_strategy"),
                        parse_selector(options.get("label_selector")),
                    ),
                    capture_child_tasks=capture_child_tasks,
                ),
            )
            if not ready_now:
                self._tasks.resolve_deps(task, args_ready, args_failed)
            actor = _Actor(actor_id, class_name, int(options.get("max_task_retries") or 0))
            actor.pins = task.pins
            if task.task_events:
                actor.creation = task.task_id
                self._tasks.record(
                    (
                        SUBMITTED,
                        task.task_id,
                        time.time(),
                        ACTOR_CREATION_TASK,
                        class_name,
                        class_name,
                        actor_id,
                        job_id,
                        task.parent,
                        shape,
                        [ref._id for ref in task.dep_refs] if task.dep_refs else (),
                    )
                )
            self._machine.add(actor)
        if name is not None:  # a name can be taken: find out now, as Ray does
            try:
                registered: m.ActorRegistered = done.result(timeout=60)
            except RemoteError as e:
                with self._lock:
                    self._machine.forget(actor_id)
                raise exc.ActorAlreadyExistsError(str(e)) from None
            if registered.actor_id != actor_id:
                with self._lock:
                    self._machine.forget(actor_id)
                return registered.actor_id, False
        if task.task_events:  # its record ends when the actor is up (or dead)
            self._client.calls.call(
                self._client.node,
                lambda rid: m.ResolveActor(rid=rid, actor_id=actor_id),
                lambda answer: self._created(actor, answer),
            )
        self._objects.add_actor(actor_id, detached, shared=name is not None)
        return actor_id, True

    def release(self, actor_id: bytes, obj: _Obj) -> None:
        """Under lock: no handle to this actor is left in this process. Its calls already
        submitted still run; then the node learns (and ends the actor if nobody else has it)."""
        if obj.owned and obj.detached:
            msg: m.Message | None = None
        elif obj.owned and not obj.shared:
            msg = m.KillActor(
                actor_id=actor_id, no_restart=True, reason="all references to it were dropped"
            )
        else:
            msg = m.DecRef(ids=[actor_id])
        self._run(self._machine.release(actor_id, msg))

    def actor_handle_meta(self, name: str, namespace: str | None) -> tuple[bytes, bytes, bytes]:
        """A named actor's id, handle metadata, and where its holders are counted: the node
        that manages it (its id starts with that node's tag, as an owner's does)."""
        named: m.NamedActor = self._client.control_request(
            lambda rid: m.GetNamedActor(
                rid=rid, name=name, namespace=namespace or self._client.current_namespace()
            )
        )
        return named.actor_id, named.handle_meta, named.home

    def named_actors(self, all_namespaces: bool) -> list[m.NamedActorEntry]:
        namespace = None if all_namespaces else self._client.current_namespace()
        named: m.NamedActors = self._client.control_request(
            lambda rid: m.ListNamedActors(rid=rid, namespace=namespace)
        )
        return named.actors

    def submit_actor_task(
        self,
        actor_id: bytes,
        class_name: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        num_returns: int,
        max_task_retries: int | None,
        retry_exceptions: Any,
        max_pending_calls: int = -1,
        enable_task_events: bool = True,
        backpressure: int = -1,
        concurrency_group: str = "",
    ) -> list[ObjectRef]:
        task = self._tasks.new_task(
            method.encode(), args, kwargs, num_returns, method, enable_task_events
        )
        task.retry_exceptions = retry_exceptions
        task.concurrency_group = concurrency_group
        with self._lock:
            machine = self._machine
            if max_pending_calls >= 0 and not machine.has_room(
                machine.get(actor_id), max_pending_calls
            ):  # (checked under the lock the call is queued under: two threads cannot both pass)
                raise exc.PendingCallsLimitExceeded(
                    f"{class_name}.{method} could not be submitted to actor {actor_id.hex()}: "
                    f"{max_pending_calls} calls to it are pending already (its "
                    "max_pending_calls). Wait for some results first (ember.wait), or raise "
                    "max_pending_calls in the actor's options."
                )
            self._objects.drain_decs()
            actor = machine.get(actor_id) or machine.add(_Actor(actor_id, class_name, 0))
            task.retries_left = (
                actor.max_task_retries if max_task_retries is None else max_task_retries
            )
            task.handler = self
            task.actor = actor
            refs = self._tasks.register(task, backpressure)
            machine.submit(actor, task)
            self._tasks.resolve_deps(task, self._args_ready, self._args_failed)
        self._objects.pool_dropped()
        return refs

    def _args_ready(self, task: _Task, near: bytes) -> None:
        """Under lock: send the calls whose turn it is (see ``ActorCalls.flush``)."""
        assert task.actor is not None
        self._run(self._machine.flush(task.actor))

    def _args_failed(self, task: _Task, error: bytes) -> None:
        assert task.actor is not None
        results = [m.ReturnValue(ERROR, error)] * max(1, task.num_returns)
        self._run(self._machine.args_failed(task, task.actor, results))

    def _run(self, actions: list[Action]) -> None:
        """Under lock: carry out the call machine's actions, every one, in order. (Its
        tasks are this client's ``_Task`` records, handed back: hence the ignores.)"""
        for action in actions:
            if isinstance(action, SendCall):
                actor, task = cast(_Actor, action.actor), cast(_Task, action.task)
                msg = self._tasks.push_message(task, 0, [], actor.actor_id, None)
                # It runs at once if the actor has room beside this process's calls ahead.
                task.started = not actor.waiting and actor.running < actor.limit
                if task.started:
                    actor.running += 1
                else:
                    actor.waiting.append(task)
                if task.task_events:
                    node = actor.peer.node or self._client.node_id
                    self._tasks.record((PUSHED, task.task_id, time.time(), node, b"", task.started))
                actor.peer.send(msg)
            elif isinstance(action, Finish):
                self._tasks.finish(action.task, action.results)  # type: ignore[arg-type]
            elif isinstance(action, Fail):
                self._tasks.fail(action.task, action.error)  # type: ignore[arg-type]
            elif isinstance(action, Resolve):
                self._resolve(action.actor, action.incarnation)
            elif isinstance(action, AskHowLost):
                self._ask_how_lost(action)
            elif isinstance(action, CancelCall):
                action.actor.peer.send(
                    m.CancelTask(
                        task_id=action.task.task_id, force=False, recursive=action.recursive
                    )
                )
            elif isinstance(action, SendRelease):
                if not self._client.closed:
                    self._client.node.send(action.message)
            else:
                raise AssertionError(f"unknown action {action!r}")

    def task_done(self, task: _Task, results: Sequence[m.ReturnValue]) -> None:
        """Under lock: the actor answered the call ``task``."""
        actor = cast(_Actor, task.actor)
        retryable = bool(results) and results[0].kind == ERROR and _retryable(task, results)
        if task.started:
            task.started = False
            actor.running -= 1
        self._run(self._machine.call_done(task, actor, results, retryable))
        waiting = actor.waiting
        while waiting and actor.running < actor.limit:  # the calls behind it run now
            behind = waiting.popleft()
            if actor.inflight.get(behind.task_id) is behind:  # (else answered or lost)
                behind.started = True
                actor.running += 1
                if behind.task_events:
                    self._tasks.record((STARTED, behind.task_id, time.time()))

    def cancel_task(self, task: _Task, force: bool, recursive: bool) -> None:
        """Under lock."""
        assert task.actor is not None
        if force:
            raise ValueError(
                "force=True is not supported for actor tasks; use ember.kill(actor) to "
                "end the actor, or cancel without force."
            )
        self._run(self._machine.cancel(task, task.actor, recursive))

    def peer_lost(self, conn: Connection) -> None:
        """Under lock: a connection closed; the calls sent over it are lost."""
        for actor in self._machine.on_peer(conn):
            if isinstance(actor, _Actor):  # (its calls sent there are over there)
                actor.running = 0
                actor.waiting.clear()
            self._run(self._machine.connection_lost(actor))

    def _resolve(self, actor: Actor, incarnation: int) -> None:
        if self._client.closed:
            return
        self._client.calls.call(
            self._client.node,
            lambda rid: m.ResolveActor(
                rid=rid, actor_id=actor.actor_id, min_incarnation=incarnation
            ),
            lambda reply: self._on_resolved(actor, reply),
        )

    def _on_resolved(self, actor: Actor, answer: m.Answer) -> None:
        """Reactor thread: the node said where the actor lives, or that it is dead."""
        if not isinstance(answer, m.ActorAlive):
            error = _death(actor, answer)
            with self._lock:
                self._run(self._machine.died(actor, error))
            return
        if isinstance(actor, _Actor):
            actor.limit = answer.max_concurrency
        try:
            conn = self._client.peer(answer.addr, answer.node_id)
        except OSError:
            with self._lock:
                self._run(self._machine.unreachable(actor, answer.incarnation))
            return
        with self._lock:
            self._run(self._machine.resolved(actor, answer.incarnation, conn))

    def _created(self, actor: _Actor, answer: m.Answer) -> None:
        """Reactor thread: the node said that the actor this process created is up (where,
        and when its ``__init__`` ran) or dead: its creation task is over."""
        if isinstance(answer, m.Reply) and answer.kind is m.ErrorKind.CONNECTION_LOST:
            return  # (this process is closing: nobody learns more of it here)
        now = time.time()
        with self._lock:
            task_id, actor.creation = actor.creation, b""
            if not task_id:
                return
            if not isinstance(answer, m.ActorAlive):
                error = _death(actor, answer)
                cause = error.cause if isinstance(error, exc.ActorDiedError) else None
                init_error = cause if isinstance(cause, BaseException) else error
                self._tasks.record((ENDED, task_id, now, None, init_error))
                return
            ran = answer.ran or None
            start, worker_id = (ran[0], ran[3]) if ran else (now, b"")
            self._tasks.record((PUSHED, task_id, start, answer.node_id, worker_id, False))
            self._tasks.record((ENDED, task_id, now, ran, None))

    def _ask_how_lost(self, ask: AskHowLost) -> None:
        """Ask the node how the process running the call ended (once it knows: it may hear of
        it after this process did), so the error says so; fail the call when it answers."""
        task, actor = ask.task, ask.actor

        def answered(answer: m.Answer) -> None:
            error: exc.RayError
            if not isinstance(answer, m.ActorEnded):
                error = _death(actor, answer)
            else:
                retries = actor.max_task_retries
                error = died(
                    actor,
                    f"{answer.how}, but this call was not retried because "
                    + (
                        "max_task_retries is 0: set max_task_retries > 0 (-1 for no limit) to "
                        "retry calls after a restart."
                        if retries == 0
                        else f"it had used its retries (max_task_retries={retries})."
                    ),
                )
            with self._lock:
                self._run(self._machine.lost_call_failed(task, actor, error))

        self._client.calls.call(
            self._client.node,
            lambda rid: m.ResolveActor(
                rid=rid, actor_id=actor.actor_id, min_incarnation=ask.incarnation + 1, ended=True
            ),
            answered,
        )

    def kill_actor(self, actor_id: bytes, no_restart: bool, class_name: str = "") -> None:
        """As Ray's ``kill``: returns once the node has begun ending the actor and, with
        ``no_restart``, the control store has freed its name; from then on every call to
        it from this process fails, even one the node could still have delivered."""
        done = self._client.calls.future(
            self._client.node,
            lambda rid: m.KillActor(rid=rid, actor_id=actor_id, no_restart=no_restart),
        )
        try:
            done.result(timeout=60)
        except RemoteError:  # the node is gone, and the actor with it
            pass
        except TimeoutError:  # the control store is unreachable: the name is freed later
            pass
        if no_restart:
            with self._lock:
                machine = self._machine
                actor = machine.get(actor_id) or machine.add(_Actor(actor_id, class_name, 0))
                self._run(machine.died(actor, died(actor, "it was killed by ember.kill()")))


def _death(actor: Actor, answer: m.Answer) -> exc.RayError:
    """The error for calls to an actor the node reports dead, with the constructor's
    exception as the cause when that is why; a runtime env that failed to set up, or a
    removed placement group, is raised as itself, and OutOfMemoryError when the memory
    monitor killed it, as in Ray."""
    if not isinstance(answer, m.Reply) or answer.error is None:
        return died(actor, f"dead (unexpected answer {answer!r:.100})")
    reason = answer.error[1]
    if answer.kind is m.ErrorKind.OUT_OF_MEMORY:
        return exc.OutOfMemoryError(reason)
    cause: Any = reason
    if isinstance(answer.value, bytes):
        try:
            cause = serialization.loads(answer.value)
        except Exception:  # keep the node's text
            pass
        if isinstance(cause, (exc.RuntimeEnvSetupError, exc.ActorPlacementGroupRemoved)):
            return cause
        if reason.startswith(m.ARGUMENT_FAILED):  # __init__ never ran: say what did fail
            cause = f"{reason}:\n{cause}"
    return died(actor, cause)
