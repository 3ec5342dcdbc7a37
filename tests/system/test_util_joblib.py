"""``ember.util.joblib.register_ray()``: joblib's ``"ray"`` backend runs scikit-learn's
``n_jobs`` work on Ember actors, as Ray's ``ray.util.joblib`` does on Ray."""

from __future__ import annotations

import importlib
import os
from typing import Any

import pytest

joblib = pytest.importorskip("joblib")
pytest.importorskip("sklearn")


@pytest.fixture
def backend(ray: Any) -> str:
    importlib.import_module(f"{ray.__name__}.util.joblib").register_ray()
    return "ray"


def test_grid_search_on_the_backend_matches_a_sequential_one(backend: str) -> None:
    from sklearn.datasets import load_iris
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    X, y = load_iris(return_X_y=True)
    grid = {"C": [0.1, 1.0, 10.0], "kernel": ["linear", "rbf"]}
    sequential = GridSearchCV(SVC(), grid, cv=3, n_jobs=1).fit(X, y)
    with joblib.parallel_backend(backend):
        parallel = GridSearchCV(SVC(), grid, cv=3, n_jobs=-1).fit(X, y)
    assert parallel.best_params_ == sequential.best_params_
    assert list(parallel.cv_results_["mean_test_score"]) == list(
        sequential.cv_results_["mean_test_score"]
    )


def test_parallel_calls_run_in_other_processes(backend: str) -> None:
    with joblib.parallel_backend(backend, n_jobs=2):
        pids = joblib.Parallel()(joblib.delayed(os.getpid)() for _ in range(8))
        squares = joblib.Parallel()(joblib.delayed(pow)(i, 2) for i in range(10))
    assert os.getpid() not in pids
    assert squares == [i * i for i in range(10)]


def test_n_jobs_minus_one_is_every_cpu_of_the_cluster(backend: str) -> None:
    with joblib.parallel_backend(backend, n_jobs=-1) as (chosen, n_jobs):
        assert chosen.effective_n_jobs(n_jobs) == 2


def test_an_error_in_a_call_is_raised_by_parallel(backend: str) -> None:
    def fails(x: int) -> int:
        raise ValueError(f"bad {x}")

    with joblib.parallel_backend(backend, n_jobs=2), pytest.raises(ValueError, match="bad"):
        joblib.Parallel()(joblib.delayed(fails)(i) for i in range(4))


@pytest.mark.ember_only
def test_a_large_argument_is_put_once_for_every_batch(backend: str, puts: list[Any]) -> None:
    """As Ray's backend means to: it needs a joblib name (``SafeFunction``) that joblib 1.6
    no longer has, and without it skips this, so on Ray every batch carries its own copy."""
    import numpy as np

    data = np.arange(100_000, dtype=np.float64)  # 800 kB, given to every call
    with joblib.parallel_backend(backend, n_jobs=2):
        sums = joblib.Parallel(batch_size=1)(joblib.delayed(np.sum)(data) for _ in range(6))
    assert sums == [data.sum()] * 6
    assert sum(1 for value in puts if value is data) == 1
