"""Today's Tune API: `Tuner` searching learning rate and momentum of a small model trained by
SGD, with the ASHA scheduler stopping the poor trials early and a live table of the trials.

The trainable reports its loss after every epoch with `tune.report`, and a checkpoint (the
weights) every 5 epochs; the best trial's checkpoint is read back at the end.
"""

import json
import os
import tempfile

import numpy as np

import ember as ray
from ember import tune
from ember.tune.schedulers import ASHAScheduler


def train_model(config):
    """Linear regression on fixed synthetic data, by minibatch SGD with momentum."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8))
    y = x @ np.arange(1.0, 9.0) + rng.normal(scale=0.1, size=512)
    w, velocity = np.zeros(8), np.zeros(8)
    for epoch in range(1, 51):
        for batch in np.array_split(rng.permutation(512), 16):
            grad = 2 * x[batch].T @ (x[batch] @ w - y[batch]) / len(batch)
            velocity = config["momentum"] * velocity - config["lr"] * grad
            w = w + velocity
        loss = float(np.mean((x @ w - y) ** 2))
        if not np.isfinite(loss):
            loss = 1e9  # diverged: a loss ASHA will stop
        checkpoint = None
        if epoch % 5 == 0:
            folder = tempfile.mkdtemp()
            with open(os.path.join(folder, "weights.json"), "w") as f:
                json.dump(w.tolist(), f)
            checkpoint = tune.Checkpoint.from_directory(folder)
        tune.report({"loss": loss, "epoch": epoch}, checkpoint=checkpoint)


ray.init(num_cpus=2)
tuner = tune.Tuner(
    train_model,
    param_space={
        "lr": tune.loguniform(1e-4, 1e-1),
        "momentum": tune.uniform(0.0, 0.95),
    },
    tune_config=tune.TuneConfig(
        metric="loss",
        mode="min",
        num_samples=20,
        scheduler=ASHAScheduler(max_t=50, grace_period=5, reduction_factor=3),
    ),
    run_config=tune.RunConfig(name="asha_example", verbose=1),
)
results = tuner.fit()

best = results.get_best_result()
print(f"best config: lr={best.config['lr']:.4g} momentum={best.config['momentum']:.2f}")
print(f"best loss: {best.metrics['loss']:.4f} after {best.metrics['epoch']} epochs")
with best.checkpoint.as_directory() as folder:
    with open(os.path.join(folder, "weights.json")) as f:
        weights = json.load(f)
print("weights:", np.round(weights, 2))
stopped_early = sum(r.metrics["epoch"] < 50 for r in results)
print(f"{stopped_early} of {len(results)} trials stopped early by ASHA")
assert results.num_errors == 0 and len(results) == 20
assert stopped_early > 0
assert best.metrics["loss"] < 0.1
ray.shutdown()
