"""scikit-learn's ``n_jobs`` on Ember: a grid search whose fits run on Ember actors.

``register_ray()`` adds joblib's ``"ray"`` backend; inside ``joblib.parallel_backend("ray")``
every ``n_jobs`` of scikit-learn (here ``GridSearchCV(n_jobs=-1)``: all the cluster's CPUs)
runs its work through ``ember.util.multiprocessing.Pool``. The search is checked against
the same search run sequentially. Needs scikit-learn (``pip install scikit-learn``).

Run:  python examples/joblib_sklearn.py
"""

import joblib
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

import ember as ray
from ember.util.joblib import register_ray


def main():
    ray.init(num_cpus=2)
    register_ray()
    X, y = load_iris(return_X_y=True)
    grid = {"C": [0.1, 1.0, 10.0], "kernel": ["linear", "rbf"]}

    with joblib.parallel_backend("ray"):
        search = GridSearchCV(SVC(), grid, cv=5, n_jobs=-1).fit(X, y)
    print(f"best parameters {search.best_params_}, accuracy {search.best_score_:.3f}")
    for params, score in zip(
        search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
    ):
        print(f"  {params}: {score:.3f}")

    sequential = GridSearchCV(SVC(), grid, cv=5, n_jobs=1).fit(X, y)
    assert search.best_params_ == sequential.best_params_
    assert list(search.cv_results_["mean_test_score"]) == list(
        sequential.cv_results_["mean_test_score"]
    )
    assert search.best_score_ > 0.9
    ray.shutdown()


if __name__ == "__main__":
    main()
