"""ember.rllib without a cluster: config building and validation, GAE against a hand-worked
example, schedules and the model builder (test_layering checks that importing it stays light)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ember.rllib.utils.postprocessing import compute_gae
from ember.rllib.utils.schedules import Scheduler

torch = pytest.importorskip("torch")
gym = pytest.importorskip("gymnasium")

from ember.rllib.algorithms.ppo import PPO, PPOConfig  # noqa: E402
from ember.rllib.core.rl_module.torch_rl_module import TorchRLModule  # noqa: E402

# ----------------------------------------------------------------------------- GAE


def test_gae_matches_a_hand_computed_example() -> None:
    # gamma 0.5, lambda 0.5; steps 0-1 are one episode ending by termination at step 1, step 2
    # starts another that the fragment cuts off (bootstrapped from next value 4).
    rewards = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    values = np.array([1.0, 1.0, 2.0], dtype=np.float32)
    next_values = np.array([1.0, 0.0, 4.0], dtype=np.float32)
    dones = np.array([False, True, False])
    adv, targets = compute_gae(rewards, values, next_values, dones, gamma=0.5, lambda_=0.5)
    # deltas: 1 + 0.5*1 - 1 = 0.5;  2 + 0 - 1 = 1;  3 + 0.5*4 - 2 = 3
    # A2 = 3;  A1 = 1 (episode ends);  A0 = 0.5 + 0.25 * 1 = 0.75
    np.testing.assert_allclose(adv, [0.75, 1.0, 3.0])
    np.testing.assert_allclose(targets, [1.75, 2.0, 5.0])


def test_gae_works_per_env_column() -> None:
    rewards = np.ones((2, 2), dtype=np.float32)
    zeros = np.zeros((2, 2), dtype=np.float32)
    dones = np.array([[False, True], [True, True]])
    adv, _ = compute_gae(rewards, zeros, zeros, dones, gamma=1.0, lambda_=1.0)
    np.testing.assert_allclose(adv, [[2.0, 1.0], [1.0, 1.0]])


def test_schedule_interpolates_and_holds() -> None:
    s = Scheduler([[0, 1.0], [100, 0.0]])
    assert [s.value(t) for t in (0, 50, 100, 1000)] == [1.0, 0.5, 0.0, 0.0]
    assert Scheduler(0.3).value(10**6) == 0.3
    with pytest.raises(ValueError, match="timestep 0"):
        Scheduler([[10, 1.0]])


def test_running_stats_merge_like_one_pass() -> None:
    from ember.rllib.utils.filter import MeanStdFilter, RunningStat

    data = np.random.default_rng(0).normal(3.0, 2.0, size=(100, 3))
    parts = [RunningStat((3,)) for _ in range(3)]
    for part, chunk in zip(parts, np.array_split(data, 3), strict=True):
        part.push(chunk[:10])
        part.push(chunk[10:])
    merged = RunningStat((3,))
    for part in parts:
        merged.merge(RunningStat.from_state(part.get_state()))
    assert merged.count == 100
    np.testing.assert_allclose(merged.mean, data.mean(axis=0))
    np.testing.assert_allclose(merged.std, data.std(axis=0, ddof=1))
    obs_filter = MeanStdFilter((3,))
    obs_filter.sync(merged)
    out = obs_filter(data, update=False)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-6)
    assert obs_filter.buffer.count == 0 and obs_filter.stat.count == 100


# ----------------------------------------------------------------------------- config


def cartpole() -> PPOConfig:
    return PPOConfig().environment("CartPole-v1")


def test_builders_chain_and_round_trip_through_a_dict() -> None:
    config = (
        cartpole()
        .env_runners(num_env_runners=2, num_envs_per_env_runner=4, rollout_fragment_length=50)
        .training(lr=1e-3, lambda_=0.9, model={"fcnet_hiddens": [32]})
        .debugging(seed=7)
    )
    d = config.to_dict()
    assert d["lambda"] == 0.9 and d["num_env_runners"] == 2 and d["seed"] == 7
    assert d["model"]["fcnet_hiddens"] == [32] and d["model"]["fcnet_activation"] == "tanh"
    again = PPOConfig().update_from_dict(d)
    assert again.to_dict() == d
    copy = config.copy().training(lr=0.5)
    assert config.lr == 1e-3 and copy.lr == 0.5
    assert PPO.get_default_config().to_dict() == PPOConfig().to_dict()
    assert PPOConfig().training(train_batch_size_per_learner=256).train_batch_size == 256
    assert PPOConfig().update_from_dict({"train_batch_size_per_learner": 64}).train_batch_size == 64


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (lambda: PPOConfig().environment("CartPole-v2"), "did you mean 'CartPole-v1'"),
        (lambda: PPOConfig().environment(None), "no environment"),
        (lambda: cartpole().update_from_dict({"learning_rate": 1}), "unknown config key"),
        (lambda: cartpole().update_from_dict({"train_batch_sise": 1}), "'train_batch_size'"),
        (lambda: cartpole().training(model={"fcnet_hidden": [8]}), "'fcnet_hiddens'"),
        (lambda: cartpole().training(minibatch_size=500, train_batch_size=100), "minibatch"),
        (
            lambda: cartpole().env_runners(rollout_fragment_length=10).training(minibatch_size=64),
            "fewer than minibatch_size",
        ),
        (lambda: cartpole().env_runners(num_envs_per_env_runner=0), "num_envs_per_env_runner"),
        (lambda: cartpole().framework("tf2"), "framework"),
        (lambda: cartpole().training(grad_clip=-1.0), "grad_clip must be > 0"),
        (lambda: cartpole().training(gamma=1.5), "gamma must be within"),
        (lambda: cartpole().training(lambda_=-0.1), "lambda must be within"),
        (lambda: cartpole().training(lr=[[0, 0.0], [100, 1e-3]]), "lr must start above 0"),
        (lambda: cartpole().training(lr=-1e-3), "lr must start above 0"),
        (lambda: cartpole().training(lr=[[5, 1e-3]]), "lr schedule must start"),
        (lambda: cartpole().env_runners(observation_filter="Mean"), "observation_filter"),
        (lambda: PPOConfig().environment("FrozenLake-v1"), "Box observation"),
        (lambda: PPOConfig().environment(NotAnEnv), "not a gymnasium.Env"),
    ],
)
def test_build_algo_rejects_bad_configs_before_starting(config: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config().build_algo()


class NotAnEnv:
    pass


def test_a_registered_env_and_an_env_class_validate() -> None:
    from ember.tune import register_env

    register_env("my_cartpole", lambda cfg: gym.make("CartPole-v1"))
    PPOConfig().environment("my_cartpole").validate()
    from_dict = PPOConfig().update_from_dict({"env": "my_cartpole"})
    assert from_dict.to_dict()["env_creator"] is not None  # it travels to Tune's trials
    PPOConfig().environment(_Corridor, env_config={"length": 3}).validate()


class _Corridor(gym.Env):  # type: ignore[misc]
    def __init__(self, config: dict[str, Any]) -> None:
        self.length = config["length"]
        self.observation_space = gym.spaces.Box(0.0, 10.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)


# ----------------------------------------------------------------------------- models


def test_model_builder_discrete_and_box() -> None:
    obs = torch.zeros((5, 4))
    module = TorchRLModule(
        gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(3), {"fcnet_hiddens": [16, 16]}
    )
    dist, value = module.forward_train(obs)
    assert dist.sample().shape == (5,) and value.shape == (5,)
    assert module.forward_inference(obs).shape == (5,)
    linears = [m for m in module.net.pi if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [16, 16, 3]
    box = TorchRLModule(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Box(-2, 2, (2,)), None)
    actions, logp, value = box.forward_exploration(obs)
    assert actions.shape == (5, 2) and logp.shape == (5,) and value.shape == (5,)
    assert box.forward_inference(obs).shape == (5, 2)
    shared = TorchRLModule(
        gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), {"vf_share_layers": True}
    )
    assert shared.forward_train(obs)[1].shape == (5,)


class TinyNet(torch.nn.Module):
    def __init__(self, observation_space: Any, action_space: Any, width: int) -> None:
        super().__init__()
        self.body = torch.nn.Linear(observation_space.shape[0], width)
        self.pi = torch.nn.Linear(width, action_space.n)
        self.vf = torch.nn.Linear(width, 1)

    def forward(self, obs: Any) -> tuple[Any, Any]:
        h = torch.relu(self.body(obs))
        return self.pi(h), self.vf(h).squeeze(-1)


def test_model_builder_takes_a_users_module() -> None:
    module = TorchRLModule(
        gym.spaces.Box(-1, 1, (4,)),
        gym.spaces.Discrete(2),
        {"custom_model": TinyNet, "custom_model_config": {"width": 8}},
    )
    assert isinstance(module.net, TinyNet) and module.net.body.out_features == 8
    assert module.forward_inference(torch.zeros((3, 4))).shape == (3,)


def test_unknown_activation_is_named() -> None:
    with pytest.raises(ValueError, match="fcnet_activation 'gelu2'"):
        TorchRLModule(
            gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), {"fcnet_activation": "gelu2"}
        )


# ----------------------------------------------------------------------------- in-process runs


def test_ppo_runs_in_process_on_a_box_action_space() -> None:
    # Pendulum's episodes end by truncation at 200 steps: the runner bootstraps from them.
    algo = (
        PPOConfig()
        .environment("Pendulum-v1")
        .training(train_batch_size=400, minibatch_size=100, num_epochs=2)
        .evaluation(evaluation_interval=1, evaluation_duration=1)
        .debugging(seed=0)
        .build_algo()
    )
    try:
        result = algo.train()
        assert result["env_runners"]["num_episodes"] == 2
        assert result["env_runners"]["episode_len_mean"] == 200
        assert result["evaluation"]["env_runners"]["episode_len_mean"] == 200
        action = algo.compute_single_action(np.zeros(3, dtype=np.float32))
        assert action.shape == (1,)
    finally:
        algo.stop()


def test_a_gpu_learner_where_torch_sees_one() -> None:
    from ember.rllib.core.learner.torch_learner import TorchLearner

    config = PPOConfig().learners(num_gpus_per_learner=1).to_dict()
    space = gym.spaces.Box(-1, 1, (4,))
    if torch.cuda.is_available():
        learner = TorchLearner(config, space, gym.spaces.Discrete(2))
        assert learner.device.type == "cuda"
        assert next(learner.module.parameters()).is_cuda
    else:
        with pytest.warns(UserWarning, match="no GPU"):
            learner = TorchLearner(config, space, gym.spaces.Discrete(2))
        assert learner.device.type == "cpu"
