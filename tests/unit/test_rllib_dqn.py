"""ember.rllib's DQN without a cluster: the replay buffer and n-step transitions against
hand-worked examples, the double-Q target, the dueling head, the epsilon schedule, config
validation, and seeded runs in the algorithm's own process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ember.rllib.utils.replay_buffers import ReplayBuffer, n_step_transitions
from ember.rllib.utils.schedules import Scheduler

torch = pytest.importorskip("torch")
gym = pytest.importorskip("gymnasium")

from ember.rllib.algorithms.algorithm import Algorithm  # noqa: E402
from ember.rllib.algorithms.dqn import DQN, DQNConfig  # noqa: E402
from ember.rllib.algorithms.dqn.torch.default_dqn_torch_rl_module import (  # noqa: E402
    DefaultDQNTorchRLModule,
)
from ember.rllib.algorithms.dqn.torch.dqn_torch_learner import DQNTorchLearner  # noqa: E402

CARTPOLE_SPACES = (
    gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
    gym.spaces.Discrete(2),
)

# ----------------------------------------------------------------------------- replay buffer


def rows(start: int, count: int) -> dict[str, np.ndarray]:
    values = np.arange(start, start + count)
    return {"obs": values[:, None].astype(np.float32), "rewards": values.astype(np.float32)}


def test_replay_buffer_wraps_around_and_keeps_the_newest() -> None:
    buffer = ReplayBuffer(capacity=4, seed=0)
    buffer.add(rows(0, 3))
    assert len(buffer) == 3
    buffer.add(rows(3, 3))  # 3, 4 fill the ring; 5 overwrites the oldest (0), 0-1 are gone
    assert len(buffer) == 4
    assert sorted(buffer.sample(200)["rewards"].tolist())[0] == 2
    assert set(buffer.sample(200)["rewards"].tolist()) == {2.0, 3.0, 4.0, 5.0}
    buffer.add(rows(10, 9))  # more than the capacity at once: the newest 4
    assert set(buffer.sample(200)["rewards"].tolist()) == {15.0, 16.0, 17.0, 18.0}


def test_replay_buffer_sampling_is_seeded() -> None:
    samples = []
    for seed in (7, 7, 8):
        buffer = ReplayBuffer(capacity=100, seed=seed)
        buffer.add(rows(0, 100))
        samples.append(buffer.sample(32)["rewards"])
    np.testing.assert_array_equal(samples[0], samples[1])
    assert not np.array_equal(samples[0], samples[2])


def test_an_empty_buffer_and_a_bad_capacity_are_errors() -> None:
    with pytest.raises(ValueError, match="empty replay buffer"):
        ReplayBuffer(capacity=2).sample(1)
    with pytest.raises(ValueError, match="capacity must be an int >= 1"):
        ReplayBuffer(capacity=0)


def test_n_step_returns_across_an_episode_end_and_a_truncation() -> None:
    # gamma 0.5, n_step 2, two envs over 4 steps. Env 0 terminates at step 1; env 1 is cut off
    # (truncated) at step 1. Observations are numbered so that next_obs can be traced.
    obs = np.arange(8, dtype=np.float32).reshape(4, 2, 1)
    next_obs = 100 + obs
    fragment = {
        "obs": obs,
        "actions": np.zeros((4, 2), dtype=np.int64),
        "rewards": np.array([[1, 1], [2, 2], [3, 3], [4, 4]], dtype=np.float32),
        "next_obs": next_obs,
        "terminateds": np.array([[0, 0], [1, 0], [0, 0], [0, 0]], dtype=bool),
        "truncateds": np.array([[0, 0], [0, 1], [0, 0], [0, 0]], dtype=bool),
    }
    out = n_step_transitions(fragment, n_step=2, gamma=0.5)
    # Rows are each env's steps together: (env0, t0), (env0, t1), ..., (env1, t0), ...
    # t0: 1 + 0.5 * 2 = 2 then the episode ends at t1: env0 terminated (no bootstrap),
    #     env1 truncated (bootstraps from t1's final observation with 0.5**2).
    # t1: 2, ends there.  t2: 3 + 0.5 * 4 = 5, bootstraps from t3's next obs (fragment end).
    # t3: 4, the fragment ends after one step: bootstraps with 0.5.
    np.testing.assert_allclose(out["rewards"], [2, 2, 5, 4] * 2)
    np.testing.assert_allclose(out["discounts"], [0.25, 0.5, 0.25, 0.5] * 2)
    assert out["terminateds"].tolist() == [True, True, False, False] + [False] * 4
    np.testing.assert_array_equal(out["next_obs"][:, 0], [102, 102, 106, 106, 103, 103, 107, 107])
    np.testing.assert_array_equal(out["obs"][:, 0], [0, 2, 4, 6, 1, 3, 5, 7])


def test_one_step_transitions_are_the_fragment_itself() -> None:
    rng = np.random.default_rng(0)
    fragment = {
        "obs": rng.normal(size=(5, 3, 4)).astype(np.float32),
        "actions": rng.integers(0, 2, size=(5, 3)),
        "rewards": rng.normal(size=(5, 3)).astype(np.float32),
        "next_obs": rng.normal(size=(5, 3, 4)).astype(np.float32),
        "terminateds": rng.random((5, 3)) < 0.3,
        "truncateds": np.zeros((5, 3), dtype=bool),
    }
    out = n_step_transitions(fragment, n_step=1, gamma=0.9)
    np.testing.assert_allclose(out["rewards"], fragment["rewards"].T.reshape(-1))
    np.testing.assert_allclose(out["discounts"], 0.9)
    next_obs = np.swapaxes(fragment["next_obs"], 0, 1).reshape(15, 4)  # each env's steps together
    np.testing.assert_array_equal(out["next_obs"], next_obs)


# ----------------------------------------------------------------------------- learner and module


def learner(**training: Any) -> DQNTorchLearner:
    config = DQNConfig().environment("CartPole-v1").training(**training).debugging(seed=0)
    return DQNTorchLearner(config.to_dict(), *CARTPOLE_SPACES)


def test_double_q_target_uses_the_online_argmax_and_the_target_value() -> None:
    rewards = torch.tensor([1.0, 1.0, 2.0])
    discounts = torch.tensor([0.5, 0.5, 0.25])
    terminateds = torch.tensor([0.0, 1.0, 0.0])
    next_q_target = torch.tensor([[1.0, 5.0], [3.0, 2.0], [4.0, 8.0]])
    next_q_online = torch.tensor([[2.0, 1.0], [0.0, 4.0], [0.0, 1.0]])
    dqn = learner()
    double = dqn.td_targets(rewards, discounts, terminateds, next_q_target, next_q_online)
    # online argmax: 0, 1, 1 -> target's 1, 2, 8;  1 + 0.5*1, 1 (terminated), 2 + 0.25*8
    torch.testing.assert_close(double, torch.tensor([1.5, 1.0, 4.0]))
    plain = dqn.td_targets(rewards, discounts, terminateds, next_q_target, None)
    # target's max: 5, 3, 8
    torch.testing.assert_close(plain, torch.tensor([3.5, 1.0, 4.0]))


def test_dueling_head_subtracts_the_mean_advantage() -> None:
    torch.manual_seed(0)
    module = DefaultDQNTorchRLModule(
        *CARTPOLE_SPACES, {"fcnet_hiddens": [16, 8], "fcnet_activation": "relu"}, dueling=True
    )
    obs = torch.randn(5, 4)
    q = module.forward_train(obs)
    assert q.shape == (5, 2)
    net: Any = module.net
    value = net.value(net.body(obs)).squeeze(-1)
    torch.testing.assert_close(q.mean(dim=-1), value)  # the advantages average to zero
    plain = DefaultDQNTorchRLModule(*CARTPOLE_SPACES, {"fcnet_hiddens": [16]}, dueling=False)
    assert plain.forward_train(obs).shape == (5, 2)
    torch.testing.assert_close(plain.forward_inference(obs), plain.forward_train(obs).argmax(-1))


def test_epsilon_greedy_actions_follow_epsilon() -> None:
    module = DefaultDQNTorchRLModule(*CARTPOLE_SPACES, {"fcnet_hiddens": [8]})
    obs = torch.randn(2000, 4)
    greedy = module.forward_inference(obs)
    generator = torch.Generator().manual_seed(0)
    actions, q = module.forward_exploration(obs, generator)
    assert torch.equal(actions, greedy) and q.shape == (2000, 2)  # epsilon 0: greedy
    module.set_epsilon(1.0)
    actions = module.forward_exploration(obs, generator)[0]
    # Uniformly random: about half agree with the greedy action.
    assert 0.4 < float((actions == greedy).float().mean()) < 0.6


def test_epsilon_schedule_interpolates_from_one_to_its_floor() -> None:
    schedule = Scheduler(DQNConfig().epsilon, "epsilon")
    assert schedule.value(0) == 1.0
    assert schedule.value(5_000) == pytest.approx(0.525)
    assert schedule.value(10_000) == schedule.value(1e9) == pytest.approx(0.05)


def test_soft_target_update_moves_tau_of_the_way() -> None:
    dqn = learner(tau=0.25)
    online = next(dqn.module.parameters())
    target = next(dqn.target.parameters())
    with torch.no_grad():
        online.add_(4.0)
    before = target.clone()
    dqn.update_target(0.25)
    torch.testing.assert_close(target, before + 1.0)


# ----------------------------------------------------------------------------- config


def test_dqn_config_has_rays_names_and_round_trips() -> None:
    config = DQNConfig().training(
        replay_buffer_config={"capacity": 1000},
        n_step=3,
        double_q=False,
        epsilon=[[0, 1.0], [500, 0.1]],
        train_batch_size_per_learner=64,
    )
    assert config.replay_buffer_config == {"type": "EpisodeReplayBuffer", "capacity": 1000}
    assert config.train_batch_size == 64
    again = DQNConfig.from_dict(config.to_dict())
    assert again.to_dict() == config.to_dict()
    assert DQNConfig().update_from_dict({"replay_buffer_config": {"capacity": 5}}).to_dict()[
        "replay_buffer_config"
    ] == {"type": "EpisodeReplayBuffer", "capacity": 5}


def test_training_intensity_sets_the_gradient_steps_per_iteration() -> None:
    config = DQNConfig().env_runners(rollout_fragment_length=256)
    assert config.num_gradient_steps() == 1
    config.training(train_batch_size=64, training_intensity=32)
    assert config.num_gradient_steps() == 128  # 32 * 256 / 64


@pytest.mark.parametrize(
    "change, message",
    [
        ({"env": "Pendulum-v1"}, "Discrete action spaces only"),
        ({"n_step": 0}, "n_step must be an int >= 1"),
        (
            {"replay_buffer_config": {"capacity": 500}},
            r"\(1000\) is more than the replay buffer's capacity \(500\)",
        ),
        (
            {"replay_buffer_config": {"type": "PrioritizedEpisodeReplayBuffer"}},
            "replays uniformly",
        ),
        (
            {"replay_buffer_config": {"type": "EpisodeReplayBufer"}},
            "did you mean 'EpisodeReplayBuffer'",
        ),
        ({"replay_buffer_config": {"capacty": 10}}, "did you mean 'capacity'"),
        ({"td_error_loss_fn": "hubber"}, "did you mean 'huber'"),
        ({"target_network_update_frequency": 10}, "did you mean 'target_network_update_freq'"),
        ({"tau": 0.0}, "tau must be within"),
        ({"epsilon": [[0, 1.5]]}, "epsilon values must be within"),
        ({"epsilon": [[10, 1.0]]}, "epsilon schedule must start at timestep 0"),
        ({"training_intensity": 0}, "training_intensity 0 is below 8"),
        # Ray's defaults sample 4 steps per iteration; one minibatch of 32 replays 8 times that.
        ({"training_intensity": 4}, "training_intensity 4 is below 8"),
        ({"observation_filter": "MeanStdFilter"}, "'NoFilter' only"),
        ({"dueling": "false"}, "dueling must be True or False"),
        ({"model": {"custom_model": torch.nn.Linear}}, "set dueling=False"),
    ],
)
def test_build_algo_rejects_configs_that_cannot_work(change: dict[str, Any], message: str) -> None:
    config = DQNConfig().environment("CartPole-v1").update_from_dict(change)
    with pytest.raises(ValueError, match=message):
        config.build_algo()


# ----------------------------------------------------------------------------- in process


def small(seed: int) -> DQNConfig:
    config = (
        DQNConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0, rollout_fragment_length=50)
        .training(
            num_steps_sampled_before_learning_starts=100,
            target_network_update_freq=100,
            training_intensity=4,
            n_step=2,
            model={"fcnet_hiddens": [32]},
        )
        .debugging(seed=seed)
    )
    assert isinstance(config, DQNConfig)
    return config


def test_same_seed_gives_the_same_learning_curve() -> None:
    curves = []
    for seed in (5, 5, 6):
        algo = small(seed).build_algo()
        try:
            curves.append([algo.train()["learners"]["default_policy"] for _ in range(4)])
        finally:
            algo.stop()
    assert curves[0] == curves[1]
    assert curves[0] != curves[2]
    last = curves[0][-1]
    assert last["num_gradient_steps"] == 6  # 4 * 50 / 32, rounded
    assert {"qf_loss", "qf_mean", "td_error_mean", "curr_epsilon"} <= set(last)


def test_acting_checkpoints_and_target_weights_round_trip(tmp_path: Path) -> None:
    algo = small(1).build_algo()
    observations = np.random.default_rng(0).uniform(-0.2, 0.2, size=(32, 4))
    try:
        assert isinstance(algo, DQN)
        for _ in range(3):
            result = algo.train()
        assert result["num_env_steps_sampled_lifetime"] == 150
        assert len(algo.replay_buffer) == 150
        actions = [algo.compute_single_action(o) for o in observations]
        assert set(actions) <= {0, 1} and isinstance(actions[0], int)
        assert algo.compute_single_action(observations[0], explore=True) in (0, 1)
        evaluation = algo.evaluate()["evaluation"]["env_runners"]
        assert evaluation["num_episodes"] == 10
        path = algo.save(str(tmp_path / "checkpoint"))
        state = algo.learner.get_state()
    finally:
        algo.stop()
    restored = Algorithm.from_checkpoint(path)
    try:
        assert isinstance(restored, DQN) and restored.iteration == 3
        assert [restored.compute_single_action(o) for o in observations] == actions
        # Epsilon travels with the weights: the restored module explores as training last did.
        epsilon = result["learners"]["default_policy"]["curr_epsilon"]
        assert float(restored.learner.module.epsilon) == pytest.approx(epsilon)
        again = restored.learner.get_state()
        for key in ("weights", "target_weights"):
            for name, value in state[key].items():
                np.testing.assert_array_equal(again[key][name], value)
        restored.learner.module.set_epsilon(1.0)
        explored = {
            restored.compute_single_action(observations[0], explore=True) for _ in range(64)
        }
        assert explored == {0, 1}
        assert restored._last_target_update == 100  # counters too
        assert len(restored.replay_buffer) == 0  # not saved: refilled before learning
        result = restored.train()
        assert result["num_env_steps_sampled_lifetime"] == 200
        assert "qf_loss" not in result["learners"]["default_policy"]  # 50 < 100 to start
    finally:
        restored.stop()
