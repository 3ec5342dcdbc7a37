"""``register_ray()``: a joblib parallel backend named ``"ray"`` that runs on Ember, as Ray's
``ray.util.joblib``, so that ``with joblib.parallel_backend("ray"):`` sends scikit-learn's
``n_jobs`` work to Ember actors. joblib is imported only when the backend is registered."""

from __future__ import annotations


def register_ray() -> None:
    """Make ``"ray"`` a joblib backend name (``joblib.parallel_backend("ray")``)."""
    try:
        from joblib.parallel import register_parallel_backend
    except ImportError:
        raise ImportError(
            "ember.util.joblib needs joblib: `pip install joblib` (scikit-learn brings it)."
        ) from None
    from ember.util.joblib.ray_backend import RayBackend

    register_parallel_backend("ray", RayBackend)


__all__ = ["register_ray"]
