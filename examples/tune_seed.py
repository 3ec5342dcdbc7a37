"""The seed's Tune snippet: a function trainable reporting through a `reporter` callback,
registered by name and run as a grid of 3 x 2 configurations with `run_experiments`.

Each trial's results land in `~/ember_results/my_experiment/<trial>/` (or under
`$TUNE_RESULT_DIR`) as `result.json` (JSON lines), `progress.csv` and TensorBoard event files
(`tensorboard --logdir ~/ember_results`). The table of trials is printed while they run.
"""

import ember as ray
from ember.tune import grid_search, register_trainable, run_experiments


# The function to optimize. The hyperparameters are in the config
# argument.
def my_func(config, reporter):
    import time

    i = 0
    while True:
        reporter(timesteps_total=i, mean_accuracy=(i ** config["alpha"]))
        i += config["beta"]
        time.sleep(0.01)


ray.init(num_cpus=2)
register_trainable("my_func", my_func)

trials = run_experiments(
    {
        "my_experiment": {
            "run": "my_func",
            "resources": {"cpu": 1, "gpu": 0},
            # The seed stops at mean_accuracy 100 only; with alpha = 0.2 that takes 10**10
            # steps, so a step limit is added for the example to end.
            "stop": {"mean_accuracy": 100, "training_iteration": 100},
            "config": {
                "alpha": grid_search([0.2, 0.4, 0.6]),
                "beta": grid_search([1, 2]),
            },
        }
    }
)

best = max(trials, key=lambda t: t.last_result["mean_accuracy"])
print(f"best: {best.config} -> mean_accuracy {best.last_result['mean_accuracy']:.2f}")
assert len(trials) == 6 and all(t.status == "TERMINATED" for t in trials)
assert best.config == {"alpha": 0.6, "beta": 2}
assert all(t.last_result["training_iteration"] == 100 for t in trials)
ray.shutdown()
