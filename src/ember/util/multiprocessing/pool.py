"""``Pool``: the standard library's ``multiprocessing.Pool`` over Ember actors, as Ray's
``ray.util.multiprocessing.Pool``, so that a program using a process pool runs on a cluster
by changing one import.

Each "process" is an actor (``num_cpus`` 0, spread over the nodes) that runs the pool's
initializer once and then batches of calls: ``map`` cuts its input into chunks (about four
per actor unless ``chunksize`` is given) and each chunk is one actor call, whose answer is a
list of ``(ok, value)`` per item, so one failing item does not lose its neighbours. A chunk
goes to the actor with the fewest chunks outstanding. ``imap`` and ``imap_unordered`` keep
one chunk per actor in flight and submit the next as the caller takes results, so a long or
endless iterable is read only as fast as it is consumed.

Results come back on one thread per pool, as in the standard library: each chunk's
``ObjectRef.future()`` hands its answer to that thread (the runtime's own thread only queues
it), which fills the ``AsyncResult`` or iterator and runs the user's callbacks, so a
callback may itself submit to the pool."""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
import traceback
import types
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from multiprocessing import TimeoutError
from typing import Any

import ember

# What one item of a chunk gave: (True, value) or (False, exception).
Outcome = tuple[bool, Any]
Chunk = list[tuple[tuple[Any, ...], dict[str, Any]]]


class _PoolActor:
    """One worker "process" of a pool.

    Functions of the driver's main script arrive by value, each pickle with its own copy of
    their globals, so a global that the initializer sets would not be seen by the mapped
    function (a limitation Ray's pool has). Here they run in one namespace per actor, as
    they would in a forked process: ``initializer`` may set globals for the work."""

    def __init__(self, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
        self._globals: dict[str, Any] = {}
        if initializer is not None:
            self._shared(initializer)(*initargs)

    def _shared(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        if not isinstance(fn, types.FunctionType):
            return fn
        module = sys.modules.get(fn.__module__)
        if module is not None and fn.__globals__ is vars(module):
            return fn  # imported by reference: its module is its namespace
        for name, value in fn.__globals__.items():
            self._globals.setdefault(name, value)
        shared = types.FunctionType(
            fn.__code__, self._globals, fn.__name__, fn.__defaults__, fn.__closure__
        )
        shared.__kwdefaults__ = fn.__kwdefaults__
        shared.__dict__.update(fn.__dict__)
        return shared

    def ready(self) -> None:
        """Answered once the initializer has run."""

    def run_batch(self, func: Callable[..., Any], batch: Chunk) -> list[Outcome]:
        func = self._shared(func)
        out: list[Outcome] = []
        for args, kwargs in batch:
            try:
                out.append((True, func(*args, **kwargs)))
            except Exception as e:  # given back to the caller, item by item
                out.append((False, _Raised(e)))
        return out


class RemoteTraceback(Exception):
    """The ``__cause__`` of an exception raised by the pool's work: the traceback it had in
    the actor, as the standard library's pool shows it."""

    def __str__(self) -> str:
        return str(self.args[0])


class _Raised:
    """An exception on its way back from an actor: it arrives as itself, with its traceback
    there as its ``__cause__``."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.text = "".join(traceback.format_exception(error))

    def __reduce__(self) -> tuple[Any, tuple[Exception, str]]:
        return _with_remote_traceback, (self.error, self.text)


def _with_remote_traceback(error: Exception, text: str) -> Exception:
    error.__cause__ = RemoteTraceback(f'\n"""\n{text}"""')
    return error


class _ResultThread:
    """The thread that turns a pool's finished chunks into results and runs the callbacks.
    It runs while chunks are outstanding and ends when none is, so an idle or forgotten pool
    holds no thread."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[Future[Any]], None], Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Condition()
        self._outstanding = 0
        self._running = False

    def watch(self, ref: Any, on_done: Callable[[Future[Any]], None]) -> None:
        """Call ``on_done(future)`` on this thread once ``ref`` is ready. The runtime's own
        thread only queues it: what runs here may block, or submit to the pool."""
        with self._lock:
            self._outstanding += 1
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="ember-pool-results", daemon=True).start()
        ref.future().add_done_callback(lambda fut: self._queue.put((on_done, fut)))

    def _run(self) -> None:
        while True:
            on_done, fut = self._queue.get()
            try:
                on_done(fut)
            except Exception:  # a user's callback failed: say so, and go on
                traceback.print_exc()
            with self._lock:
                self._outstanding -= 1
                if not self._outstanding:
                    self._running = False
                    self._lock.notify_all()
                    return

    def wait_idle(self) -> None:
        """Wait until every watched ref has been delivered (and its callbacks have run)."""
        with self._lock:
            self._lock.wait_for(lambda: not self._outstanding)


class AsyncResult:
    """The future result of ``apply_async``, ``map_async`` or ``starmap_async``."""

    def __init__(
        self,
        n_chunks: int,
        single: bool,
        callback: Callable[[Any], Any] | None,
        error_callback: Callable[[BaseException], Any] | None,
    ) -> None:
        self._chunks: list[list[Outcome] | None] = [None] * n_chunks
        self._left = n_chunks
        self._single = single
        self._callback = callback
        self._error_callback = error_callback
        self._error: BaseException | None = None
        self._event = threading.Event()
        if not n_chunks:  # a map over nothing: done at once, as the standard library's
            self._event.set()

    def _deliver(self, index: int, outcomes: list[Outcome]) -> None:
        if self._event.is_set():
            return  # an earlier chunk failed: the result is settled
        self._chunks[index] = outcomes
        self._left -= 1
        errors = [value for ok, value in outcomes if not ok]
        if not errors and self._left:
            return
        try:
            if errors:
                self._error = errors[0]
                if self._error_callback is not None:
                    self._error_callback(errors[0])
            elif self._callback is not None:
                self._callback(self._value())
        finally:
            self._event.set()

    def _value(self) -> Any:
        values = [value for chunk in self._chunks for _, value in chunk or ()]
        return values[0] if self._single else values

    def ready(self) -> bool:
        """Whether the call has finished (or failed)."""
        return self._event.is_set()

    def successful(self) -> bool:
        """Whether the call finished without an error; ``ValueError`` if not finished yet."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._error is None

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the result is ready or ``timeout`` seconds pass."""
        self._event.wait(timeout)

    def get(self, timeout: float | None = None) -> Any:
        """The result; the call's exception if it raised one; ``multiprocessing.TimeoutError``
        if it is not ready within ``timeout`` seconds."""
        if not self._event.wait(timeout):
            raise TimeoutError
        if self._error is not None:
            raise self._error
        return self._value()


class IMapIterator:
    """The results of ``imap`` (in order) or ``imap_unordered`` (as they finish). A failed
    item raises its exception when reached; ``next(timeout)`` raises
    ``multiprocessing.TimeoutError`` when no result comes in time."""

    def __init__(
        self,
        pool: Pool,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int,
        ordered: bool,
    ) -> None:
        pool._check_running()
        _check_chunksize(chunksize)
        self._pool = pool
        self._func = func
        self._items = iter(iterable)
        self._chunksize = chunksize
        self._ordered = ordered
        self._cond = threading.Condition()
        self._chunk_lens: list[int] = []
        self._exhausted = False
        self._arrived: dict[int, list[Outcome]] = {}  # finished chunks not yet taken
        self._next_chunk = 0  # ordered: the chunk whose items come next
        self._taken = 0  # chunks whose items went to the buffer
        self._buffer: deque[Outcome] = deque()
        with self._cond:
            for _ in range(len(pool._slots)):
                self._submit_next()

    def _submit_next(self) -> None:
        if self._exhausted:
            return
        batch: Chunk = [((item,), {}) for item in itertools.islice(self._items, self._chunksize)]
        if len(batch) < self._chunksize:
            self._exhausted = True
        if batch:
            self._chunk_lens.append(len(batch))
            self._pool._submit(self._func, batch, self, len(self._chunk_lens) - 1)

    def _deliver(self, index: int, outcomes: list[Outcome]) -> None:
        with self._cond:
            self._arrived[index] = outcomes
            self._cond.notify_all()

    def _take_chunk(self) -> bool:
        """Move a finished chunk (the next in order, if ordered) into the buffer."""
        if self._ordered:
            index = self._next_chunk
            if index not in self._arrived:
                return False
            self._next_chunk += 1
        elif self._arrived:
            index = next(iter(self._arrived))
        else:
            return False
        self._buffer.extend(self._arrived.pop(index))
        self._taken += 1
        self._submit_next()
        return True

    def __iter__(self) -> IMapIterator:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        with self._cond:
            while not self._buffer:
                if self._exhausted and self._taken == len(self._chunk_lens):
                    raise StopIteration
                if not self._take_chunk() and not self._cond.wait_for(self._take_chunk, timeout):
                    raise TimeoutError
            ok, value = self._buffer.popleft()
        if not ok:
            raise value
        return value


class Pool:
    """A pool of ``processes`` actors (default: the cluster's CPUs), with the standard
    library's ``multiprocessing.Pool`` methods.

    Not started yet, Ember is started by the pool: on ``ray_address`` (or ``EMBER_ADDRESS``)
    if given, else on this machine with ``processes`` CPUs. ``maxtasksperchild`` replaces an
    actor after that many chunks; ``ray_remote_args`` are the actors' options. ``context``
    (the standard library's start method) has no meaning for actors: as in Ray, it is
    ignored with a warning."""

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] | None = None,
        maxtasksperchild: int | None = None,
        context: Any = None,
        ray_address: str | None = None,
        ray_remote_args: dict[str, Any] | None = None,
    ) -> None:
        if processes is not None and (
            isinstance(processes, bool) or not isinstance(processes, int) or processes < 1
        ):
            raise ValueError(f"Number of processes must be at least 1, got {processes!r}")
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be a callable, got {initializer!r}")
        if maxtasksperchild is not None and (
            isinstance(maxtasksperchild, bool)
            or not isinstance(maxtasksperchild, int)
            or maxtasksperchild < 1
        ):
            raise ValueError(
                f"maxtasksperchild must be a positive int or None, got {maxtasksperchild!r}"
            )
        if context is not None:
            warnings.warn(
                "Pool(context=...) is ignored: the pool's processes are Ember actors, started "
                "by Ember (as in Ray).",
                stacklevel=2,
            )
        processes = _start_ember(processes, ray_address)
        self._initializer = initializer
        self._initargs = tuple(initargs or ())
        self._maxtasksperchild = maxtasksperchild
        self._actor_class = ember.remote(_PoolActor).options(
            **{"num_cpus": 0, "scheduling_strategy": "SPREAD", **(ray_remote_args or {})}
        )
        self._lock = threading.Lock()
        self._closed = False
        self._terminated = False
        # Per slot: [actor, chunks it was given, chunks outstanding].
        self._slots: list[list[Any]] = [[self._new_actor(), 0, 0] for _ in range(processes)]
        self._retired: list[Any] = []  # refs that settle when replaced actors have exited
        self._results = _ResultThread()
        ember.get([slot[0].ready.remote() for slot in self._slots])

    def _new_actor(self) -> Any:
        return self._actor_class.remote(self._initializer, self._initargs)

    def __repr__(self) -> str:
        state = "terminated" if self._terminated else "closed" if self._closed else "running"
        return f"<ember.util.multiprocessing.Pool state={state} pool_size={len(self._slots)}>"

    # ------------------------------------------------------------------ submitting

    def _check_running(self) -> None:
        if self._closed:
            raise ValueError("Pool not running")

    def _submit(self, func: Callable[..., Any], batch: Chunk, sink: Any, index: int) -> None:
        with self._lock:
            slot = min(self._slots, key=lambda s: s[2])
            actor = slot[0]
            ref = actor.run_batch.remote(func, batch)
            slot[1] += 1
            slot[2] += 1
            if self._maxtasksperchild is not None and slot[1] >= self._maxtasksperchild:
                self._retired.append(actor.__ray_terminate__.remote())  # after its queue
                slot[:] = [self._new_actor(), 0, 0]

        def on_done(fut: Future[Any]) -> None:
            with self._lock:
                if slot[0] is actor:
                    slot[2] -= 1
            try:
                outcomes = fut.result()
            except Exception as e:  # the actor died, or its answer could not be read
                outcomes = [(False, e)] * len(batch)
            sink._deliver(index, outcomes)

        self._results.watch(ref, on_done)

    def _map_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None,
        star: bool,
        callback: Callable[[Any], Any] | None,
        error_callback: Callable[[BaseException], Any] | None,
    ) -> AsyncResult:
        self._check_running()
        items = iterable if isinstance(iterable, (list, tuple)) else list(iterable)
        if chunksize is None:
            chunksize = max(1, -(-len(items) // (len(self._slots) * 4)))
        _check_chunksize(chunksize)
        chunks: list[Chunk] = [
            [((tuple(item) if star else (item,)), {}) for item in items[i : i + chunksize]]
            for i in range(0, len(items), chunksize)
        ]
        result = AsyncResult(len(chunks), False, callback, error_callback)
        for index, chunk in enumerate(chunks):
            self._submit(func, chunk, result, index)
        return result

    # ------------------------------------------------------------------ the Pool API

    def apply(
        self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: dict[str, Any] | None = None
    ) -> Any:
        """``func(*args, **kwds)`` on one of the actors; its result."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(
        self,
        func: Callable[..., Any],
        args: Iterable[Any] = (),
        kwds: dict[str, Any] | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        """``apply`` without waiting: ``callback(result)`` or ``error_callback(exception)``
        runs on the pool's result thread when it finishes."""
        self._check_running()
        result = AsyncResult(1, True, callback, error_callback)
        self._submit(func, [(tuple(args or ()), dict(kwds or {}))], result, 0)
        return result

    def map(
        self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None = None
    ) -> list[Any]:
        """``[func(x) for x in iterable]``, computed by the actors in chunks."""
        values: list[Any] = self._map_async(func, iterable, chunksize, False, None, None).get()
        return values

    def map_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        """``map`` without waiting: ``callback`` gets the whole list; ``error_callback`` the
        first exception, which settles the result."""
        return self._map_async(func, iterable, chunksize, False, callback, error_callback)

    def starmap(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
    ) -> list[Any]:
        """``[func(*args) for args in iterable]``."""
        values: list[Any] = self._map_async(func, iterable, chunksize, True, None, None).get()
        return values

    def starmap_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        """``starmap`` without waiting, as ``map_async``."""
        return self._map_async(func, iterable, chunksize, True, callback, error_callback)

    def imap(
        self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int = 1
    ) -> IMapIterator:
        """``map`` as an iterator, in order, reading ``iterable`` as results are taken."""
        return IMapIterator(self, func, iterable, chunksize, ordered=True)

    def imap_unordered(
        self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int = 1
    ) -> IMapIterator:
        """``imap``, each result as soon as it is ready."""
        return IMapIterator(self, func, iterable, chunksize, ordered=False)

    def close(self) -> None:
        """Take no more work; the actors exit once what was submitted has finished."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._retired += [slot[0].__ray_terminate__.remote() for slot in self._slots]

    def terminate(self) -> None:
        """Stop the actors now; outstanding results fail with the actors' death."""
        self._closed = True
        self._terminated = True
        for slot in self._slots:
            ember.kill(slot[0])

    def join(self) -> None:
        """Wait for the actors of a closed pool to exit (after their work, unless
        terminated)."""
        if not self._closed:
            raise ValueError("Pool is still running")
        with self._lock:
            retired = list(self._retired)
        if retired:
            ember.wait(retired, num_returns=len(retired))
        self._results.wait_idle()

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.terminate()  # as the standard library's Pool does


def _check_chunksize(chunksize: Any) -> None:
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive int, got {chunksize!r}")


def _start_ember(processes: int | None, address: str | None) -> int:
    """Start or join Ember as Ray's Pool does; the number of actors to start."""
    if not ember.is_initialized():
        address = address or os.environ.get("EMBER_ADDRESS")
        if address in (None, "local"):
            ember.init(address=address, num_cpus=processes)
        else:
            ember.init(address=address)
    cpus = int(ember.cluster_resources().get("CPU", 0))
    if processes is None:
        processes = max(cpus, 1)
    elif processes > cpus:
        raise ValueError(
            f"Tried to start a pool with {processes} processes on a cluster with only {cpus} "
            "CPUs; ask for fewer processes, or add nodes."
        )
    return processes
