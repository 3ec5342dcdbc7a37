"""Optuna as a Tune searcher (``pip install 'ember[optuna]'``)."""

from ember.tune.search.optuna.optuna_search import OptunaSearch

__all__ = ["OptunaSearch"]
