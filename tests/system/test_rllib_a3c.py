"""A3C and A2C on runner actors: A3C learns CartPole with two runners, applying each runner's
gradients as they come (from weights a few updates old, put once per update), A2C repeats
itself with a seed, checkpoints round-trip with calls in flight, and Tune runs A3C by name.
Bounded by iterations, never by time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.ember_only

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from ember.rllib.algorithms.a2c import A2CConfig  # noqa: E402
from ember.rllib.algorithms.a3c import A3C, A3CConfig  # noqa: E402
from ember.rllib.algorithms.algorithm import Algorithm  # noqa: E402


def cartpole(config: A3CConfig, num_env_runners: int = 2, seed: int = 1) -> A3CConfig:
    return (
        config.environment("CartPole-v1")
        .env_runners(num_env_runners=num_env_runners)
        .debugging(seed=seed)
    )


def test_a3c_learns_cartpole_with_two_env_runners(ray: Any) -> None:
    algo = cartpole(A3CConfig()).build_algo()
    try:
        first = algo.train()["env_runners"]["episode_return_mean"]
        assert first < 50
        for _ in range(40):  # at most 80,000 env steps; it gets there in 20,000-40,000
            result = algo.train()
            if result["env_runners"]["episode_return_mean"] >= 150:
                break
        assert result["env_runners"]["episode_return_mean"] >= 150, result
        stats = result["learners"]["default_policy"]
        assert {"policy_loss", "vf_loss", "entropy", "weights_staleness"} <= set(stats)
        assert result["num_env_steps_sampled_lifetime"] >= 2000 * result["training_iteration"]
    finally:
        algo.stop()
    assert not algo._pending  # stop() dropped the calls in flight with the runners


def test_gradients_are_applied_as_they_arrive(puts: list[Any]) -> None:
    algo = cartpole(A3CConfig()).training(train_batch_size=1600).build_algo()
    try:
        results = [algo.train() for _ in range(3)]
    finally:
        algo.stop()
    stats = [r["learners"]["default_policy"] for r in results]
    applied = sum(s["num_gradients_applied"] for s in stats)
    assert applied == 3 * 1600 // (8 * 50) == stats[-1]["weights_version"]
    # Both runners start from version 0: whichever finishes second computed its gradients
    # with weights that the first one's update has since replaced, and they are applied.
    assert max(s["max_weights_staleness"] for s in stats) >= 1
    # The weights are put once at the start and once per gradient applied.
    assert len(puts) == 1 + applied and all(isinstance(p, dict) for p in puts)


def test_a2c_with_a_seed_repeats_itself(ray: Any) -> None:
    runs = []
    for _ in range(2):
        algo = cartpole(A2CConfig(), seed=3).training(train_batch_size=800).build_algo()
        try:
            runs.append([algo.train() for _ in range(2)])
        finally:
            algo.stop()
    first, second = runs
    assert [r["learners"] for r in first] == [r["learners"] for r in second]
    assert [r["env_runners"]["episode_return_mean"] for r in first] == [
        r["env_runners"]["episode_return_mean"] for r in second
    ]
    assert first[-1]["num_env_steps_sampled_lifetime"] == 2 * 800


def test_save_and_restore_with_calls_in_flight(ray: Any, tmp_path: Path) -> None:
    algo = cartpole(A3CConfig()).training(train_batch_size=640).build_algo()
    observations = np.random.default_rng(0).uniform(-0.2, 0.2, size=(64, 4))
    try:
        algo.train()
        version = algo.train()["learners"]["default_policy"]["weights_version"]
        path = algo.save(str(tmp_path / "checkpoint"))
        actions = [algo.compute_single_action(o) for o in observations]
        steps = algo.train()["num_env_steps_sampled_lifetime"]
        algo.restore(path)  # drops the gradients of the weights it replaces
        assert [algo.compute_single_action(o) for o in observations] == actions
        assert algo.train()["num_env_steps_sampled_lifetime"] == steps
    finally:
        algo.stop()
    restored = Algorithm.from_checkpoint(path)
    try:
        assert isinstance(restored, A3C) and restored.iteration == 2
        assert [restored.compute_single_action(o) for o in observations] == actions
        result = restored.train()
        assert result["training_iteration"] == 3
        # The weights' version goes on from the checkpoint's (staleness is measured from it).
        assert result["learners"]["default_policy"]["weights_version"] > version
    finally:
        restored.stop()


def test_tuner_runs_a3c_by_name(ray: Any, tmp_path: Path) -> None:
    from ember.tune import RunConfig, Tuner

    config = cartpole(A3CConfig(), num_env_runners=1).training(train_batch_size=400)
    grid = Tuner(
        "A3C",
        param_space=config,
        run_config=RunConfig(stop={"training_iteration": 2}, storage_path=str(tmp_path)),
    ).fit()
    assert not grid.errors
    result = grid[0].metrics
    assert result["training_iteration"] == 2
    assert result["num_env_steps_sampled_lifetime"] == 800
    assert result["learners"]["default_policy"]["num_gradients_applied"] == 1
