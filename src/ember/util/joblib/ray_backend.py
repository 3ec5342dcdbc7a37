"""The joblib backend behind ``register_ray()``: joblib's own multiprocessing backend with
``ember.util.multiprocessing.Pool`` as its pool. joblib hands batches of calls to the pool's
``apply_async`` and, from the callback of each finished batch, dispatches the next, so the
work spreads over the pool's actors (on every node of a cluster) as it would over
processes.

A large argument (a grid search's data, given to every batch) is put in the object store the
first time a batch carries it, and later batches carry only its ref, as Ray's backend does:
one copy in shared memory for the whole ``Parallel`` call instead of one per batch."""

from __future__ import annotations

import sys
from typing import Any

from joblib._parallel_backends import (
    FallbackToBackend,
    MultiprocessingBackend,
    SequentialBackend,
)
from joblib.parallel import BatchedCalls

import ember
from ember.util.multiprocessing import Pool


class RayBackend(MultiprocessingBackend):  # type: ignore[misc]
    """``ray_remote_args`` (here, or given to ``Parallel``) are the pool actors' options.
    ``n_jobs=-1`` means every CPU of the cluster (``-2`` all but one, and so on)."""

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        ray_remote_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.ray_remote_args = ray_remote_args
        super().__init__(
            nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads, **kwargs
        )

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs is not None and n_jobs < 0:
            if not ember.is_initialized():
                ember.init()
            cpus = int(ember.cluster_resources().get("CPU", 1))
            return max(cpus + 1 + n_jobs, 1)
        return super().effective_n_jobs(n_jobs)  # type: ignore[no-any-return]

    def configure(
        self,
        n_jobs: int = 1,
        parallel: Any = None,
        prefer: str | None = None,
        require: str | None = None,
        ray_remote_args: dict[str, Any] | None = None,
        **memmapping_kwargs: Any,
    ) -> int:
        # ``memmapping_kwargs`` (max_nbytes, mmap_mode, temp_folder...) set up joblib's
        # memory-mapped files between processes; Ember's object store shares large arrays
        # between actors instead, so they have nothing to configure here.
        n_jobs = self.effective_n_jobs(n_jobs)
        if n_jobs == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        remote_args = self.ray_remote_args if ray_remote_args is None else ray_remote_args
        self._pool = Pool(n_jobs, ray_remote_args=remote_args)
        self._shared: dict[int, tuple[Any, _Shared]] = {}
        self.parallel = parallel
        return n_jobs

    def submit(self, func: Any, callback: Any = None) -> Any:
        if isinstance(func, BatchedCalls):
            func.items = [
                (fn, [self._share(a) for a in args], {k: self._share(v) for k, v in kw.items()})
                for fn, args, kw in func.items
            ]
            func = _WithSharedArguments(func)
        return super().submit(func, callback)

    def _share(self, value: Any) -> Any:
        size = getattr(value, "nbytes", None)
        if not isinstance(size, int):
            size = sys.getsizeof(value)
        if size < SHARE_ABOVE:
            return value
        entry = self._shared.get(id(value))
        if entry is None or entry[0] is not value:  # (the value is kept, so its id is too)
            entry = self._shared[id(value)] = (value, _Shared(ember.put(value)))
        return entry[1]

    def terminate(self) -> None:
        super().terminate()
        self._shared = {}


SHARE_ABOVE = 100 * 1024  # bytes: what would go to shared memory anyway, once per batch


class _Shared:
    """An argument put in the object store by the backend (not a user's own ObjectRef)."""

    def __init__(self, ref: Any) -> None:
        self.ref = ref


class _WithSharedArguments:
    """A joblib batch whose large arguments are refs: fetched in the actor, then run."""

    def __init__(self, batch: Any) -> None:
        self.batch = batch

    def __call__(self) -> Any:
        self.batch.items = [
            (fn, [_fetch(a) for a in args], {k: _fetch(v) for k, v in kw.items()})
            for fn, args, kw in self.batch.items
        ]
        return self.batch()


def _fetch(value: Any) -> Any:
    return ember.get(value.ref) if isinstance(value, _Shared) else value
