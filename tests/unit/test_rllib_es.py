"""Evolution Strategies without a cluster: centered ranks, the noise table's indexing, the
gradient's weighted sum, the observation statistics and Adam with plain values; the config's
checks; the flat policy vector; and ES in-process (seeds honoured, mirrored pairs)."""

from __future__ import annotations

import numpy as np
import pytest

from ember.rllib.algorithms.es.utils import (
    Adam,
    SharedNoiseTable,
    batched_weighted_sum,
    compute_centered_ranks,
    create_shared_noise,
)

# ---------------------------------------------------------------------- plain values


def test_centered_ranks_are_ranks_scaled_to_minus_half_plus_half() -> None:
    returns = np.array([[3.0, 1.0], [2.0, 5.0]])
    # ranks 2, 0, 1, 3 of 0..3, divided by 3, minus 0.5
    expected = np.array([[2 / 3 - 0.5, -0.5], [1 / 3 - 0.5, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(compute_centered_ranks(returns), expected, rtol=1e-6)
    # Only the order counts: a monotone transformation gives the same ranks.
    np.testing.assert_allclose(
        compute_centered_ranks(returns**3 + 100), compute_centered_ranks(returns)
    )


def test_equal_returns_share_their_average_rank() -> None:
    ranks = compute_centered_ranks(np.array([[500.0, 500.0], [10.0, 20.0]]))
    # 10 and 20 rank 0 and 1; the two 500s share (2 + 3) / 2 = 2.5, all over 3
    np.testing.assert_allclose(ranks, [[1 / 3, 1 / 3], [-0.5, -1 / 6]], rtol=1e-6)
    assert ranks[0, 0] - ranks[0, 1] == 0  # a tied mirrored pair adds nothing to the gradient
    assert compute_centered_ranks(np.array([7.0])).tolist() == [0.0]


def test_noise_table_slices_by_index() -> None:
    table = SharedNoiseTable(np.arange(10, dtype=np.float32))
    assert table.get(3, 4).tolist() == [3.0, 4.0, 5.0, 6.0]
    assert table.get(6, 4).tolist() == [6.0, 7.0, 8.0, 9.0]
    rng = np.random.default_rng(0)
    starts = {table.sample_index(rng, 4) for _ in range(500)}
    assert starts == set(range(7))  # every start whose slice fits, and no other
    assert {table.sample_index(rng, 10) for _ in range(20)} == {0}


def test_noise_table_is_float32_and_made_from_its_seed() -> None:
    first, second = create_shared_noise(1000, seed=5), create_shared_noise(1000, seed=5)
    assert first.dtype == np.float32 and first.shape == (1000,)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, create_shared_noise(1000, seed=6))
    assert abs(float(first.mean())) < 0.1 and abs(float(first.std()) - 1) < 0.1


def test_batched_weighted_sum_equals_the_plain_sum_across_batches() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((7, 5)).astype(np.float32)
    weights = rng.standard_normal(7)
    total = batched_weighted_sum(weights, iter(vectors), batch_size=3)
    np.testing.assert_allclose(total, weights @ vectors, rtol=1e-5)
    assert batched_weighted_sum(np.array([2.0]), [np.array([1.0, -1.0])]).tolist() == [2.0, -2.0]


def test_adam_first_step_is_stepsize_against_the_gradient() -> None:
    adam = Adam(3, stepsize=0.1)
    step = adam.step(np.array([2.0, -0.5, 0.0]))
    np.testing.assert_allclose(step, [-0.1, 0.1, 0.0], atol=1e-6)
    state = adam.get_state()
    again = Adam(3, stepsize=0.1)
    again.set_state(state)
    np.testing.assert_array_equal(again.step(np.ones(3)), adam.step(np.ones(3)))


# ---------------------------------------------------------------------- config and policy

torch = pytest.importorskip("torch")
gym = pytest.importorskip("gymnasium")

from ember.rllib.algorithms.es import ES, ESConfig  # noqa: E402
from ember.rllib.algorithms.es.es_env_runner import ESEnvRunner  # noqa: E402
from ember.rllib.algorithms.es.es_torch_policy import ESTorchPolicy  # noqa: E402
from ember.rllib.algorithms.registry import get_algorithm_class  # noqa: E402


def cartpole(seed: int = 0) -> ESConfig:
    return (
        ESConfig()
        .environment("CartPole-v1")
        .training(noise_size=200_000, episodes_per_batch=10, train_batch_size=100)
        .debugging(seed=seed)
    )


def test_es_is_registered_and_its_config_uses_rays_names() -> None:
    assert get_algorithm_class("ES") is ES
    config = cartpole().env_runners(num_env_runners=2, observation_filter="NoFilter").to_dict()
    for key in (
        "noise_stdev",
        "noise_size",
        "episodes_per_batch",
        "train_batch_size",
        "eval_prob",
        "stepsize",
        "l2_coeff",
        "action_noise_std",
        "report_length",
    ):
        assert key in config
    assert config["num_env_runners"] == 2 and config["observation_filter"] == "NoFilter"
    assert ESConfig.from_dict(config).to_dict() == config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"noise_std": 0.1}, "did you mean 'noise_stdev'"),
        ({"noise_stdev": 0}, "noise_stdev must be a number > 0"),
        ({"eval_prob": 1.0}, "eval_prob must be within [0, 1)"),
        ({"l2_coeff": -1}, "l2_coeff must be a number >= 0"),
        ({"episodes_per_batch": 0}, "episodes_per_batch must be an int >= 1"),
        ({"observation_filter": "ConcurrentMeanStdFilter"}, "observation_filter must be"),
        ({"noise_size": 1000}, "noise_size 1000 is smaller than the policy's 4610 parameters"),
    ],
)
def test_bad_settings_fail_at_build_with_a_clear_message(
    change: dict[str, object], message: str
) -> None:
    config = cartpole().update_from_dict(change)
    with pytest.raises(ValueError) as error:
        config.build_algo()
    assert message in str(error.value)


def test_flat_vector_holds_only_the_parameters_actions_depend_on() -> None:
    model = {**ESConfig().model, "fcnet_hiddens": [8]}
    config = {"model": model, "observation_filter": "NoFilter"}
    discrete = ESTorchPolicy(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2), config)
    assert discrete.num_params == (3 * 8 + 8) + (8 * 2 + 2)  # the policy MLP, not the value one
    box = ESTorchPolicy(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-2, 2, (2,)), config)
    assert box.num_params == (3 * 8 + 8) + (8 * 2 + 2)  # no log-std either
    theta = np.arange(box.num_params, dtype=np.float32) / 100
    box.set_flat(theta)
    np.testing.assert_array_equal(box.get_flat(), theta)
    obs = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    first, second = box.compute_action(obs), box.compute_action(obs)
    assert np.array_equal(first, second) and np.all(np.abs(first) <= 2)  # deterministic, clipped
    noisy = box.compute_action(obs, action_noise_std=0.5, rng=np.random.default_rng(0))
    assert not np.array_equal(noisy, first)


def test_runner_plays_mirrored_pairs_and_returns_only_indices_and_returns() -> None:
    config = cartpole(seed=3).training(eval_prob=0.0).to_dict()
    noise = create_shared_noise(config["noise_size"], seed=0)
    runner = ESEnvRunner(config, lambda env_config: gym.make("CartPole-v1"), noise, 1)
    params = runner.policy.get_params()
    try:
        result = runner.do_rollouts(params, min_episodes=6, min_steps=50)
    finally:
        runner.stop()
    pairs = len(result["noise_indices"])
    assert result["noisy_returns"].shape == result["noisy_lengths"].shape == (pairs, 2)
    assert 2 * pairs >= 6 and result["noisy_lengths"].sum() >= 50
    assert result["eval_returns"] == [] and result["obs_stat"].count == (
        result["noisy_lengths"].sum()
    )
    assert all(0 <= i <= len(noise) - runner.policy.num_params for i in result["noise_indices"])
    big = [k for k, v in result.items() if isinstance(v, np.ndarray) and v.size > 2 * pairs]
    assert big == []  # nothing the size of the parameters goes back


def test_same_seed_gives_the_same_iterations_in_process() -> None:
    runs = []
    for _ in range(2):
        algo = cartpole(seed=4).build_algo()
        try:
            runs.append([algo.train() for _ in range(2)])
            runs[-1].append(algo.policy.get_flat())
        finally:
            algo.stop()
    first, second = runs
    for a, b in zip(first[:2], second[:2], strict=True):
        assert a["info"] == b["info"]
        assert a["num_env_steps_sampled_lifetime"] == b["num_env_steps_sampled_lifetime"]
    np.testing.assert_array_equal(first[2], second[2])
    result = first[1]
    assert result["episodes_this_iter"] >= 10 and result["env_runners"]["num_env_steps_sampled"]
    assert {"weights_norm", "grad_norm", "update_ratio", "episodes_so_far"} <= set(result["info"])


def test_es_runs_box_actions_in_process() -> None:
    algo = (
        ESConfig()
        .environment("Pendulum-v1")
        .training(noise_size=200_000, episodes_per_batch=4, train_batch_size=100)
        .debugging(seed=0)
        .build_algo()
    )
    try:
        for _ in range(2):
            result = algo.train()
        assert result["episodes_this_iter"] == 4  # two mirrored pairs of 200-step episodes
        assert result["env_runners"]["num_env_steps_sampled"] >= 800
        assert np.isfinite(result["info"]["grad_norm"]) and result["info"]["grad_norm"] > 0
        action = algo.compute_single_action(np.array([1.0, 0.0, 0.0]))
        assert action.shape == (1,) and -2 <= action[0] <= 2
    finally:
        algo.stop()
