"""The joblib backend behind ``register_ray()``: joblib's own multiprocessing backend with
``ember.util.multiprocessing.Pool`` as its pool. joblib hands batches of calls to the pool's
``apply_async`` and, from the callback of each finished batch, dispatches the next, so the
work spreads over the pool's actors (on every node of a cluster) as it would over
processes."""

from __future__ import annotations

from typing import Any

from joblib._parallel_backends import (
    FallbackToBackend,
    MultiprocessingBackend,
    SequentialBackend,
)

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
        self.parallel = parallel
        return n_jobs
