"""ember.rllib's DQN with a running Ember: it learns CartPole to a greedy 475, checkpoints
round-trip with a remote env runner, and Tune runs it by name. Bounded by env steps, never by
time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.ember_only

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from ember.rllib.algorithms.algorithm import Algorithm  # noqa: E402
from ember.rllib.algorithms.dqn import DQN, DQNConfig  # noqa: E402
from tests._helpers import load_benchmark  # noqa: E402

# The benchmark's settings for CartPole-v1: 256 sampled steps, then 128 gradient steps.
SETTINGS = load_benchmark("rl.py").EMBER_SETTINGS["DQN"]
SEED = 0
MAX_STEPS = 30_720  # it gets there at about 10,000 with this seed


def cartpole(num_env_runners: int, seed: int) -> DQNConfig:
    config = (
        DQNConfig()
        .environment("CartPole-v1")
        .env_runners(**{**SETTINGS["env_runners"], "num_env_runners": num_env_runners})
        .training(**SETTINGS["training"])
        .debugging(seed=seed)
    )
    assert isinstance(config, DQNConfig)
    return config


def test_dqn_learns_cartpole_to_a_greedy_475(ray: Any) -> None:
    algo = cartpole(0, seed=SEED).build_algo()
    try:
        best, steps = 0.0, 0
        while steps < MAX_STEPS:
            steps = algo.train()["num_env_steps_sampled_lifetime"]
            if steps % 5120 == 0:  # every 20 iterations of 256 steps
                evaluation = algo.evaluate()["evaluation"]["env_runners"]
                best = evaluation["episode_return_mean"]
                if best >= 475:
                    break
        assert best >= 475, (steps, best)
    finally:
        algo.stop()


def test_save_and_restore_give_the_same_greedy_actions(ray: Any, tmp_path: Path) -> None:
    config = cartpole(1, seed=4).training(num_steps_sampled_before_learning_starts=256)
    algo = config.build_algo()
    observations = np.random.default_rng(0).uniform(-0.2, 0.2, size=(64, 4))
    try:
        algo.train()
        algo.train()
        path = algo.save(str(tmp_path / "checkpoint"))
        actions = [algo.compute_single_action(o) for o in observations]
    finally:
        algo.stop()
    restored = Algorithm.from_checkpoint(path)
    try:
        assert isinstance(restored, DQN) and restored.iteration == 2
        assert [restored.compute_single_action(o) for o in observations] == actions
        assert restored.train()["num_env_steps_sampled_lifetime"] == 768
    finally:
        restored.stop()


def test_tuner_runs_dqn_by_name(ray: Any, tmp_path: Path) -> None:
    from ember.tune import RunConfig, Tuner

    config = cartpole(0, seed=0).training(num_steps_sampled_before_learning_starts=256)
    grid = Tuner(
        "DQN",
        param_space=config,
        run_config=RunConfig(stop={"training_iteration": 2}, storage_path=str(tmp_path)),
    ).fit()
    assert not grid.errors
    result = grid[0].metrics
    assert result["num_env_steps_sampled_lifetime"] == 512
    assert "qf_loss" in result["learners"]["default_policy"]
