"""A3C and A2C without a cluster: the actor-critic loss and its gradients against a hand-worked
case, a runner's gradients applied by the learner against the learner's own step, config
validation, and seeded in-process runs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gym = pytest.importorskip("gymnasium")

from ember.rllib.algorithms.a2c import A2C, A2CConfig  # noqa: E402
from ember.rllib.algorithms.a3c import A3C, A3CConfig  # noqa: E402
from ember.rllib.algorithms.a3c.torch.a3c_torch_learner import (  # noqa: E402
    A3CTorchLearner,
    a3c_loss,
    postprocess,
)
from ember.rllib.algorithms.registry import get_algorithm_class  # noqa: E402


def local(config: A3CConfig, seed: int = 0) -> A3CConfig:
    return (
        config.environment("CartPole-v1")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=2, rollout_fragment_length=10)
        .training(train_batch_size=100)
        .debugging(seed=seed)
    )


def test_loss_and_gradients_match_a_hand_worked_case() -> None:
    # Two steps, two actions, uniform policy (logits 0): log p = log 1/2, entropy log 2.
    logits = torch.zeros(2, 2, requires_grad=True)
    values = torch.tensor([1.0, 0.0], requires_grad=True)
    batch = {
        "actions": torch.tensor([0, 1]),
        "advantages": torch.tensor([2.0, -1.0]),
        "targets": torch.tensor([0.5, 1.0]),
    }
    dist = torch.distributions.Categorical(logits=logits)
    loss, stats = a3c_loss(dist, values, batch, vf_loss_coeff=0.5, entropy_coeff=0.01)
    # policy: -(2 log 1/2 - log 1/2) / 2 = log(2) / 2;  value: (0.5^2 + 1^2) / 2 = 0.625
    assert stats["policy_loss"] == pytest.approx(math.log(2) / 2)
    assert stats["vf_loss"] == pytest.approx(0.625)
    assert stats["entropy"] == pytest.approx(math.log(2))
    expected = math.log(2) / 2 + 0.5 * 0.625 - 0.01 * math.log(2)
    assert stats["total_loss"] == pytest.approx(expected) and loss.item() == pytest.approx(expected)
    loss.backward()
    # d/dlogits of -A log p(a) / N is -A (onehot(a) - p) / N; the entropy's is 0 at uniform.
    np.testing.assert_allclose(logits.grad.numpy(), [[-0.5, 0.5], [-0.25, 0.25]], atol=1e-6)
    # d/dv of 0.5 * mean((v - target)^2) is (v - target) / N.
    np.testing.assert_allclose(values.grad.numpy(), [0.25, -0.5], atol=1e-6)


def test_postprocess_flattens_each_env_with_its_advantages() -> None:
    # [T=2, num_envs=2]; gamma 1, lambda 1; env 1 terminates at its first step.
    fragment = {
        "obs": np.arange(4, dtype=np.float32).reshape(2, 2, 1),
        "actions": np.array([[0, 1], [1, 0]]),
        "rewards": np.ones((2, 2), dtype=np.float32),
        "vf_preds": np.zeros((2, 2), dtype=np.float32),
        "next_vf_preds": np.zeros((2, 2), dtype=np.float32),
        "terminateds": np.array([[False, True], [False, False]]),
        "truncateds": np.zeros((2, 2), dtype=bool),
    }
    out = postprocess([fragment], {"gamma": 1.0, "lambda": 1.0, "use_gae": True})
    np.testing.assert_array_equal(out["obs"].ravel(), [0, 2, 1, 3])  # each env's steps together
    np.testing.assert_allclose(out["advantages"], [2.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(out["targets"], out["advantages"])


def test_a_runners_gradients_step_the_learner_as_its_own_loss_does() -> None:
    from ember.rllib.algorithms.a3c.a3c_env_runner import A3CEnvRunner
    from ember.rllib.env.utils import env_creator

    config = local(A3CConfig()).to_dict()
    creator = env_creator("CartPole-v1")
    env = creator({})
    spaces = (env.observation_space, env.action_space)
    learners = [A3CTorchLearner(config, *spaces) for _ in range(2)]
    weights = learners[0].get_weights()
    learners[1].set_weights(weights)
    runners = [A3CEnvRunner(config, creator, worker_index=1) for _ in range(2)]
    result = runners[0].compute_gradients(weights, version=0, num_steps=10)
    fragment = runners[1].sample(weights, 10)  # the same seed: the same steps
    assert result["num_env_steps"] == 20 and result["version"] == 0
    learners[0].apply(result["gradients"], timestep=0)
    learners[1].update([fragment], timestep=0)
    for name, value in learners[0].get_weights().items():
        np.testing.assert_allclose(value, learners[1].get_weights()[name], rtol=1e-5, atol=1e-7)
    for runner in runners:
        runner.stop()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"entropy_coeff": -0.1}, "entropy_coeff must be a number >= 0"),
        ({"vf_loss_coeff": "big"}, "vf_loss_coeff must be a number >= 0"),
        ({"lambda_": 1.5}, "lambda must be within"),
        ({"grad_clip": 0}, "grad_clip must be > 0"),
        ({"use_gae": "yes"}, "use_gae"),
    ],
)
def test_bad_training_settings_are_named_at_build(change: dict[str, Any], message: str) -> None:
    for config_class in (A3CConfig, A2CConfig):
        with pytest.raises(ValueError, match=message):
            local(config_class()).training(**change).build_algo()


def test_an_unknown_key_and_an_unsupported_space_are_named_at_build() -> None:
    with pytest.raises(ValueError, match="did you mean 'entropy_coeff'"):
        local(A3CConfig()).update_from_dict({"entropy_coef": 0.01}).build_algo()
    with pytest.raises(ValueError, match="A3C supports Discrete and Box action spaces"):
        A3CConfig().environment(MultiDiscreteEnv).build_algo()


class MultiDiscreteEnv(gym.Env):  # type: ignore[misc]
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.MultiDiscrete([2, 2])

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        pass


def test_a3c_in_process_is_seeded_and_equals_a2c_with_one_runner() -> None:
    results = []
    for config in (A3CConfig(), A3CConfig(), A2CConfig()):
        algo = local(config, seed=5).build_algo()
        try:
            results.append([algo.train() for _ in range(2)])
        finally:
            algo.stop()
    a3c, again, a2c = results
    for key in ("policy_loss", "vf_loss", "entropy", "gradients_default_optimizer_global_norm"):
        values = [r["learners"]["default_policy"][key] for r in a3c]
        assert values == [r["learners"]["default_policy"][key] for r in again]
        assert values == pytest.approx([r["learners"]["default_policy"][key] for r in a2c])
    last = a3c[-1]
    assert last["num_env_steps_sampled_lifetime"] == 200 and last["training_iteration"] == 2
    assert last["learners"]["default_policy"]["num_gradients_applied"] == 5  # 5 x 2 envs x 10
    assert last["learners"]["default_policy"]["max_weights_staleness"] == 0


def test_registered_and_runs_on_a_box_action_space() -> None:
    assert get_algorithm_class("A3C") is A3C and get_algorithm_class("A2C") is A2C
    algo = local(A3CConfig()).environment("Pendulum-v1").build_algo()
    try:
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled"] == 100
        assert np.shape(algo.compute_single_action(np.zeros(3))) == (1,)
    finally:
        algo.stop()


def test_observation_statistics_gather_every_sampled_step() -> None:
    # A3C merges each gradient's statistics; A2C's go through Algorithm.sample().
    for config in (A3CConfig(), A2CConfig()):
        algo = local(config).env_runners(observation_filter="MeanStdFilter").build_algo()
        try:
            algo.train()
            result = algo.train()
            assert algo.obs_filter is not None
            assert algo.obs_filter.count == result["num_env_steps_sampled_lifetime"] == 200
            runner_stat = algo.env_runner.filter.stat  # synced, then updated while sampling
            assert runner_stat.count == 200
            np.testing.assert_allclose(runner_stat.mean, algo.obs_filter.mean)
        finally:
            algo.stop()
