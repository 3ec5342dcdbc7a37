"""HyperOpt as a Tune searcher (``pip install 'ember[hyperopt]'``)."""

from ember.tune.search.hyperopt.hyperopt_search import HyperOptSearch

__all__ = ["HyperOptSearch"]
