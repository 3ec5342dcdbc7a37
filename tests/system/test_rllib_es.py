"""Evolution Strategies on runner actors: it learns CartPole with two runners, the noise table
goes into the object store once (and the weights once per iteration), checkpoints round-trip,
and Tune runs it by name. Bounded by iterations, never by time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.ember_only

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from ember.rllib.algorithms.algorithm import Algorithm  # noqa: E402
from ember.rllib.algorithms.es import ES, ESConfig  # noqa: E402


def cartpole(num_env_runners: int, seed: int = 1, noise_size: int = 2_000_000) -> ESConfig:
    return (
        ESConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=num_env_runners)
        .training(noise_size=noise_size)
        .debugging(seed=seed)
    )


def test_es_learns_cartpole_with_two_runners(ray: Any) -> None:
    algo = cartpole(2, seed=0).build_algo()
    try:
        before = algo.evaluate()["evaluation"]["env_runners"]["episode_return_mean"]
        assert before < 50  # this seed's initial policy falls over at once
        after = 0.0
        for _ in range(30):  # at most ~300,000 env steps; it gets there in 25,000-100,000
            result = algo.train()
            if result["env_runners"]["episode_return_mean"] >= 200:
                after = algo.evaluate()["evaluation"]["env_runners"]["episode_return_mean"]
                if after >= 200:
                    break
        assert after >= 200, result
        assert result["episodes_this_iter"] >= 40
        assert result["num_env_steps_sampled_lifetime"] >= 1000 * result["training_iteration"]
        assert {"weights_norm", "grad_norm", "update_ratio"} <= set(result["info"])
    finally:
        algo.stop()


def test_noise_table_is_put_once_and_weights_once_per_iteration(puts: list[Any]) -> None:
    algo = cartpole(2, noise_size=1_000_000).build_algo()
    try:
        tables = [v for v in puts if isinstance(v, np.ndarray) and v.size == 1_000_000]
        assert len(tables) == 1 and len(puts) == 1  # one table for both runners
        assert not algo.noise.noise.flags.writeable  # the driver reads the store's copy too
        for _ in range(3):
            algo.train()
        assert puts[0] is tables[0] and len(puts) == 1 + 3
        weights = puts[1:]
        assert all(set(w) == {"weights", "obs_mean", "obs_std"} for w in weights)
        assert all(w["weights"].size == algo.policy.num_params for w in weights)
    finally:
        algo.stop()


def test_save_and_restore_give_the_same_policy_and_optimizer(ray: Any, tmp_path: Path) -> None:
    algo = cartpole(1).build_algo()
    observations = np.random.default_rng(0).uniform(-0.2, 0.2, size=(64, 4))
    try:
        steps = algo.train()["num_env_steps_sampled_lifetime"]
        path = algo.save(str(tmp_path / "checkpoint"))
        actions = [algo.compute_single_action(o) for o in observations]
        theta, obs_std, adam = (
            algo.policy.get_flat(),
            algo.policy.obs_std,
            algo.optimizer.get_state(),
        )
    finally:
        algo.stop()
    restored = Algorithm.from_checkpoint(path)
    try:
        assert isinstance(restored, ES) and restored.iteration == 1
        np.testing.assert_array_equal(restored.policy.get_flat(), theta)
        np.testing.assert_array_equal(restored.policy.obs_std, obs_std)
        assert restored.optimizer.t == adam["t"] == 1
        np.testing.assert_array_equal(restored.optimizer.m, adam["m"])
        assert [restored.compute_single_action(o) for o in observations] == actions
        result = restored.train()
        assert result["training_iteration"] == 2
        sampled = result["env_runners"]["num_env_steps_sampled"]
        assert result["num_env_steps_sampled_lifetime"] == steps + sampled
    finally:
        restored.stop()


def test_tuner_runs_es_by_name(ray: Any, tmp_path: Path) -> None:
    from ember.tune import RunConfig, Tuner

    config = cartpole(0, noise_size=500_000).training(episodes_per_batch=10, train_batch_size=100)
    grid = Tuner(
        "ES",
        param_space=config,
        run_config=RunConfig(stop={"training_iteration": 2}, storage_path=str(tmp_path)),
    ).fit()
    assert not grid.errors
    result = grid[0].metrics
    assert result["training_iteration"] == 2
    assert result["info"]["episodes_so_far"] >= 20
