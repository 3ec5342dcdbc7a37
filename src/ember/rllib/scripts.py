"""``ember rllib train`` and ``ember rllib evaluate``: the seeds' "example training scripts".

``train`` runs one algorithm through ``ember.tune`` (Tune's live table, results, TensorBoard
logs, checkpoints) and ends by printing the checkpoint to evaluate; ``evaluate`` loads one and
plays greedy episodes. Every mistake the arguments can hold (an unknown algorithm, bad JSON, an
unknown config key or env) is reported before any actor starts. Nothing heavy is imported until
a command runs, so ``ember --help`` stays fast."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

# Tune's table for an algorithm: Ray's RLlib columns (the iteration and time are always shown).
_METRIC_COLUMNS = {
    "num_env_steps_sampled_lifetime": "ts",
    "env_runners/episode_return_mean": "reward",
    "env_runners/episode_len_mean": "episode_len",
}


def add_commands(commands: Any) -> Callable[[argparse.Namespace], int]:
    """Add ``rllib train`` and ``rllib evaluate`` to the ``ember`` command's subparsers; the
    function that runs them (the ``ember.commands`` entry point of ``pyproject.toml``)."""
    rllib = commands.add_parser(
        "rllib",
        help="train an RLlib algorithm, or evaluate a checkpoint",
        description="Train an ember.rllib algorithm through ember.tune, or evaluate a "
        "checkpoint it saved.",
    )
    sub = rllib.add_subparsers(dest="rllib_command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train an algorithm on an environment until --stop is met",
        description="Train an algorithm with ember.tune, showing Tune's table, and save a "
        "checkpoint at the end. Example: ember rllib train --algo PPO --env CartPole-v1 "
        "--stop '{\"env_runners/episode_return_mean\": 475}'",
    )
    train.add_argument("--algo", "--run", required=True, help="the algorithm, e.g. PPO")
    train.add_argument("--env", help="a Gymnasium id or a name given to tune.register_env")
    train.add_argument(
        "--config",
        type=_json_object("--config"),
        default={},
        metavar="JSON",
        help="the algorithm's settings as Ray's flat keys, e.g. '{\"num_env_runners\": 2}'",
    )
    train.add_argument(
        "--stop",
        type=_json_object("--stop"),
        default={},
        metavar="JSON",
        help="when to stop, e.g. '{\"training_iteration\": 20}' (default: never)",
    )
    train.add_argument(
        "--checkpoint-dir",
        "--storage-path",
        dest="storage_path",
        metavar="DIR",
        help="where results and checkpoints go (default: ~/ember_results)",
    )
    train.add_argument("--name", help="the experiment's name (default: the algorithm's and date)")
    train.add_argument(
        "--checkpoint-freq", type=int, default=0, metavar="N", help="checkpoint every N iterations"
    )
    train.add_argument(
        "--checkpoint-at-end",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="checkpoint when training stops (default: yes)",
    )
    train.add_argument(
        "--keep-checkpoints-num", type=int, metavar="N", help="keep only the latest N checkpoints"
    )
    train.add_argument("--num-samples", type=int, default=1, help="trials to run (default 1)")
    train.add_argument("--seed", type=int, help="the algorithm's seed")
    train.add_argument(
        "-v", "--verbose", type=int, default=1, choices=(0, 1, 2, 3), help="Tune's verbosity"
    )
    _add_cluster_arguments(train)

    evaluate = sub.add_parser(
        "evaluate",
        help="play greedy episodes with a checkpoint's policy",
        description="Load a checkpoint that `ember rllib train` (or algo.save) wrote and play "
        "episodes with its policy, greedily unless --explore.",
    )
    evaluate.add_argument(
        "checkpoint",
        help="a checkpoint folder, or a trial or experiment folder (its latest checkpoint)",
    )
    evaluate.add_argument("--episodes", type=int, default=10, help="episodes (default 10)")
    evaluate.add_argument("--env", help="play in this env instead of the one trained on")
    evaluate.add_argument("--explore", action="store_true", help="sample actions")
    evaluate.add_argument("--render", action="store_true", help="show the env in a window")
    evaluate.add_argument("--seed", type=int, help="reset the first episode with this seed")
    _add_cluster_arguments(evaluate)
    return run


def _add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address", help="a running cluster's HOST:PORT (default: start one on this machine)"
    )
    parser.add_argument("--num-cpus", type=int, help="CPUs of the machine's own Ember")


def _json_object(flag: str) -> Any:
    def parse(text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise argparse.ArgumentTypeError(f"{flag} is not valid JSON ({e}): {text!r}") from e
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"{flag} must be a JSON object, not {text!r}")
        return value

    return parse


def run(args: argparse.Namespace) -> int:
    command = train if args.rllib_command == "train" else evaluate
    return command(args)


def _algorithm_class(name: str) -> Any:
    from ember.rllib.algorithms.registry import ALGORITHMS, get_algorithm_class
    from ember.rllib.utils import did_you_mean

    algo_class = get_algorithm_class(name)
    if algo_class is None:
        hint = did_you_mean(name.upper(), ALGORITHMS)
        raise ValueError(f"unknown algorithm {name!r}{hint}; choose one of {sorted(ALGORITHMS)}")
    return algo_class


def _init(args: argparse.Namespace) -> None:
    import ember

    if args.address:
        ember.init(address=args.address)
    else:
        ember.init(num_cpus=args.num_cpus)


def train(args: argparse.Namespace) -> int:
    import ember
    from ember import tune

    algo_class = _algorithm_class(args.algo)
    config = algo_class.get_default_config()
    if args.env is not None:
        config.environment(args.env)
    config.update_from_dict(args.config)
    if args.seed is not None:
        config.debugging(seed=args.seed)
    if config.env is None:
        raise ValueError("no environment: pass --env (or 'env' in --config)")
    config.validate()  # every mistake before any process starts
    checkpoints = tune.CheckpointConfig(
        num_to_keep=args.keep_checkpoints_num,
        checkpoint_frequency=args.checkpoint_freq,
        checkpoint_at_end=args.checkpoint_at_end,
    )
    run_config = tune.RunConfig(
        name=args.name,
        storage_path=args.storage_path,
        stop=args.stop,
        checkpoint_config=checkpoints,
        verbose=args.verbose,
        progress_reporter=tune.CLIReporter(metric_columns=_METRIC_COLUMNS),
    )
    _init(args)
    try:
        tuner = tune.Tuner(
            algo_class,
            param_space=config.to_dict(),
            tune_config=tune.TuneConfig(num_samples=args.num_samples),
            run_config=run_config,
        )
        results = tuner.fit()
    finally:
        ember.shutdown()
    for result in results:
        if result.error is not None:
            print(f"a trial failed: {result.error}")
    saved = [(r.checkpoint.path, r.metrics or {}) for r in results if r.checkpoint is not None]
    if saved:
        path = max(saved, key=lambda s: _return(s[1]))[0]
        print(f"\nCheckpoint: {path}")
        print(f"Evaluate it with: ember rllib evaluate {path}")
    return 1 if results.num_errors else 0


def _return(metrics: dict[str, Any]) -> float:
    value = metrics.get("env_runners", {}).get("episode_return_mean")
    return float("-inf") if value is None or value != value else float(value)


def evaluate(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import ember
    from ember.rllib.algorithms.algorithm import checkpoint_state
    from ember.rllib.env.utils import env_creator, make_env

    if args.episodes < 1:
        raise ValueError(f"--episodes must be at least 1, not {args.episodes}")
    path = latest_checkpoint(args.checkpoint)
    state = checkpoint_state(path)
    config = dict(state["config"])
    config["num_env_runners"] = 0  # play here: no runner actors to start
    env_name = args.env or config["env"]
    env_config = dict(config["env_config"])
    if args.render:
        if not isinstance(env_name, str):
            raise ValueError("--render needs a Gymnasium id as the env")
        env_config["render_mode"] = "human"
    env = make_env(
        env_creator(env_name, None if args.env else config.get("env_creator")), env_config
    )
    _init(args)
    try:
        algo = state["algorithm_class"](config=config)
        algo.restore(path)
        returns = []
        for episode in range(args.episodes):
            seed = None if args.seed is None else args.seed + episode
            obs, _ = env.reset(seed=seed)
            total, steps, done = 0.0, 0, False
            while not done:
                action = algo.compute_single_action(obs, explore=args.explore)
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                steps += 1
                done = terminated or truncated
            returns.append(total)
            print(f"episode {episode + 1}: return {total:.1f}, {steps} steps")
        algo.stop()
    except gym.error.DependencyNotInstalled as e:
        raise ValueError(f"cannot render {env_name!r}: {e}") from e
    finally:
        env.close()
        ember.shutdown()
    mean = sum(returns) / len(returns)
    print(f"mean return over {len(returns)} episodes: {mean:.1f}")
    return 0


def latest_checkpoint(path: str) -> str:
    """``path`` if it is a checkpoint; else the newest ``checkpoint_*`` folder under it (a
    trial's or an experiment's folder)."""
    from ember.rllib.algorithms.algorithm import STATE_FILE

    if not os.path.isdir(path):
        raise ValueError(f"no such folder: {path!r}")
    if os.path.exists(os.path.join(path, STATE_FILE)):
        return path
    found = [
        os.path.join(root, d)
        for root, dirs, _ in os.walk(path)
        for d in dirs
        if d.startswith("checkpoint_") and os.path.exists(os.path.join(root, d, STATE_FILE))
    ]
    if not found:
        raise ValueError(f"{path!r} holds no algorithm checkpoint (no {STATE_FILE} under it)")
    return max(found, key=os.path.getmtime)
