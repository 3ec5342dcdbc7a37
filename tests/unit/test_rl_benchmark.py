"""benchmarks/rl.py: its schedules, budgets, medians and report, with plain values (no training)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests._helpers import load_benchmark

bench = load_benchmark("rl.py")


def _run(framework: str, seed: int, curve: list[tuple[int, float, float]], **kw: Any) -> Any:
    result = bench.RunResult(framework, "PPO", seed, budget=100_000, **kw)
    result.curve = [bench.Evaluation(*point) for point in curve]
    return result


def test_zoo_linear_schedule_is_in_absolute_env_steps() -> None:
    lr = bench._zoo_linear(0.001, horizon=100_000, budget=10_000)
    assert lr(1.0) == pytest.approx(0.001)
    assert lr(0.0) == pytest.approx(0.001 * 0.9)  # 10k of the zoo's 100k steps done
    full = bench._zoo_linear(0.2, horizon=100_000, budget=100_000)
    assert full(0.5) == pytest.approx(0.1)
    assert full(0.0) == 0.0


def test_sb3_kwargs_keep_the_zoo_exploration_in_env_steps() -> None:
    kwargs = bench._sb3_kwargs("DQN", 100_000, {})
    # the zoo: epsilon falls over 0.16 x 50,000 = 8,000 steps, whatever the budget
    assert kwargs["exploration_fraction"] * 100_000 == pytest.approx(8_000)
    assert "n_timesteps" not in kwargs and "n_envs" not in kwargs
    ppo = bench._sb3_kwargs("PPO", 100_000, {"n_epochs": 10})
    assert ppo["n_epochs"] == 10 and callable(ppo["learning_rate"])


def test_budget_parsing() -> None:
    assert bench._parse_budget(None, ["PPO", "DQN"]) == {"PPO": 100_000, "DQN": 100_000}
    assert bench._parse_budget("1e4", ["PPO"]) == {"PPO": 10_000}
    assert bench._parse_budget("dqn=5000", ["PPO", "DQN"]) == {"PPO": 100_000, "DQN": 5000}


def test_override_needs_framework_and_algorithm() -> None:
    out = bench._parse_overrides(['rllib.ppo={"training": {"lr": 0.001}}'])
    assert out == {("rllib", "PPO"): {"training": {"lr": 0.001}}}
    with pytest.raises(SystemExit, match="FRAMEWORK.ALGO=JSON"):
        bench._parse_overrides(['torch.PPO={"lr": 1}'])


def test_medians_count_a_missed_seed_as_infinitely_slow() -> None:
    results = [
        _run("ember", 0, [(5000, 2.0, 200.0), (10000, 4.0, 480.0)]),
        _run("ember", 1, [(5000, 3.0, 490.0), (10000, 6.0, 500.0)]),
        _run("ember", 2, [(5000, 2.5, 100.0), (10000, 5.0, 300.0)]),
        _run("sb3", 0, [(5000, 10.0, 100.0)], status="timeout"),
        _run("rllib", 0, [], status="skipped", note="cannot import ray"),
    ]
    summary = bench.summarize(results)
    ember = summary[("PPO", "ember")]
    assert (ember["ran"], ember["reached"]) == (3, 2)
    assert ember["steps"] == 10000 and ember["seconds"] == 4.0
    assert ember["final"] == 480.0
    sb3 = summary[("PPO", "sb3")]
    assert sb3["ran"] == 1 and math.isinf(sb3["seconds"]) and sb3["final"] is None
    assert summary[("PPO", "rllib")]["ran"] == 0


def test_report_has_ratios_and_notes() -> None:
    results = [
        _run("ember", 0, [(5000, 4.0, 500.0)]),
        _run("sb3", 0, [(5000, 8.0, 500.0)]),
        _run("rllib", 0, [(5000, 6.0, 490.0)]),
    ]
    report = bench.markdown_report(results, 5000, 10)
    assert "| PPO | Ember/SB3 | 0.50 | <= 1.0 | pass |" in report
    assert "| PPO | Ember/RLlib | 0.67 | <= 0.5 | miss |" in report
    skipped = bench.markdown_report(
        [_run("ember", 0, [], status="skipped", note="cannot import ember.rllib")], 5000, 10
    )
    assert (
        "| PPO | CartPole-v1 (475) | Ember | skipped |" in skipped
        and "cannot import ember.rllib" in skipped
    )


def test_greedy_returns_with_a_fixed_policy() -> None:
    pytest.importorskip("gymnasium")
    returns = bench.greedy_returns(lambda obs: [0] * len(obs), "CartPole-v1", episodes=3)
    assert len(returns) == 3 and all(5 <= r < 100 for r in returns)
    assert returns == bench.greedy_returns(lambda obs: [0] * len(obs), "CartPole-v1", 3)
    # A Box action space: a batch of (1,) actions; Pendulum's episodes are 200 steps of cost.
    pendulum = bench.greedy_returns(lambda obs: [[0.0]] * len(obs), "Pendulum-v1", episodes=2)
    assert all(-2000 < r < 0 for r in pendulum)


def test_recorder_keeps_evaluations_off_the_clock() -> None:
    pytest.importorskip("gymnasium")
    result = bench.RunResult("sb3", "PPO", 0)
    seen: list[int] = []
    rec = bench.Recorder(result, every=5000, episodes=2, on_evaluation=lambda r: seen.append(1))
    rec.built(lambda obs: [1] * len(obs))
    for steps in (2000, 4000, 6000, 8000, 12000):
        rec.progress(steps)
    rec.finish(12000)
    assert [e.env_steps for e in result.curve] == [6000, 12000]
    assert len(seen) == 2 and result.env_steps == 12000
    assert result.eval_seconds > 0  # measured, and taken off the training clock


def test_a3c_compares_with_sb3s_a2c_and_is_skipped_on_rllib() -> None:
    assert bench.WORKLOADS["A3C"].budget == 500_000
    assert bench.SB3_CLASSES["A3C"] == "A2C"
    assert bench._sb3_kwargs("A3C", 500_000, {}) == {"policy": "MlpPolicy", "ent_coef": 0.0}
    result = bench.run_training("rllib", "A3C", 0, 500_000)
    assert result.status == "skipped" and "no A3C" in result.note


def test_workloads_name_their_env_and_threshold() -> None:
    assert bench._workload("ppo-pendulum") == "PPO-Pendulum"
    with pytest.raises(SystemExit, match="unknown algorithm 'SAC'"):
        bench._workload("SAC")
    assert bench._parse_budget("ppo-pendulum=5000", ["PPO-Pendulum"]) == {"PPO-Pendulum": 5000}
    pendulum = bench.RunResult("ember", "PPO-Pendulum", 0)
    pendulum.curve = [bench.Evaluation(5000, 1.0, -900.0), bench.Evaluation(10000, 2.0, -180.0)]
    reached = pendulum.first_reaching()
    assert reached is not None and reached.env_steps == 10000
    report = bench.markdown_report([pendulum], 5000, 10)
    assert "| PPO | Pendulum-v1 (-200) | Ember | 1/1 | 10,000 |" in report
    assert bench.run_training("sb3", "ES", 0, 1000).note.startswith("Stable-Baselines3 has no")


def test_scaling_report_compares_with_one() -> None:
    scaling = load_benchmark("rl_scaling.py")
    rows = [
        {"framework": "ember", "nodes": 1, "status": "ok", "rate": 40.0},
        {"framework": "ember", "nodes": 2, "status": "ok", "rate": 66.0},
        {"framework": "ember", "nodes": 4, "status": "timeout", "note": "killed"},
    ]
    report = scaling.report(rows, "nodes", "ES episodes/s", "one per node")
    assert "| Ember | 2 | 66 | 1.65 |" in report
    assert "| Ember | 4 | timeout | |" in report and "Ember, nodes 4: killed" in report
