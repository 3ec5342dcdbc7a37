"""``Algorithm``: the base of every RLlib algorithm, a ``tune.Trainable``.

``setup`` makes the env runners (Ember actors, or one in this process when
``num_env_runners`` is 0) and the learner; each ``step()`` is one training iteration, which
a subclass writes in ``training_step()``. Weights go to the runners through the object store,
put once per iteration. Checkpoints hold the config, the learner's state and the counters."""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Any

import cloudpickle
import numpy as np

import ember
from ember.rllib.algorithms.algorithm_config import AlgorithmConfig
from ember.rllib.utils import metrics as M
from ember.rllib.utils.filter import MeanStdFilter, RunningStat
from ember.tune.trainable.trainable import Trainable

STATE_FILE = "algorithm_state.pkl"


class Algorithm(Trainable):
    """Build with ``config.build_algo()``; ``train()`` one iteration, ``evaluate()``,
    ``save(path)`` / ``restore(path)`` / ``Algorithm.from_checkpoint(path)``, ``stop()``."""

    @classmethod
    def get_default_config(cls) -> AlgorithmConfig:
        return AlgorithmConfig(algo_class=cls)

    @staticmethod
    def _tune_resources(config: dict[str, Any]) -> dict[str, float]:
        """What a Tune trial of an algorithm holds (read by Tune, as ``tune.with_resources``
        sets it): the main process's CPUs and the learner's GPU. Env runners hold their own."""
        return {
            "CPU": float(config.get("num_cpus_for_main_process", 1.0)),
            "GPU": float(config.get("num_gpus_per_learner", 0.0)),
        }

    def __init__(self, config: AlgorithmConfig | dict[str, Any] | None = None, **kwargs: Any):
        if isinstance(config, AlgorithmConfig):
            algo_config = config.copy()
        else:
            algo_config = self.get_default_config().update_from_dict(dict(config or {}))
        algo_config.algo_class = type(self)
        algo_config.validate()  # again under Tune: a trial's config comes as a dict
        self.algo_config = algo_config
        super().__init__(algo_config.to_dict(), **kwargs)

    # ------------------------------------------------------------------ setup and teardown

    def setup(self, config: dict[str, Any]) -> None:
        cfg = self.algo_config
        self._fragment = cfg.get_rollout_fragment_length()
        self._probe_env()
        self._start_runners(config, self.env_runner_class(), (), ())
        self.obs_filter: RunningStat | None = None
        if cfg.observation_filter == "MeanStdFilter":
            self.obs_filter = RunningStat(self.observation_space.shape)
        self.learner = self.build_learner(config)
        self._start_metrics(cfg.metrics_num_episodes_for_smoothing)

    def _probe_env(self) -> None:
        """The env's creator and spaces (from one env, closed again)."""
        from ember.rllib.env.utils import env_creator

        cfg = self.algo_config
        self._creator = env_creator(cfg.env, cfg.env_creator)
        probe = self._creator(dict(cfg.env_config))
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        probe.close()

    def _start_runners(
        self,
        config: dict[str, Any],
        runner_class: type,
        local_args: tuple[Any, ...],
        remote_args: tuple[Any, ...],
    ) -> None:
        """The env runners: one in this process (``num_env_runners`` 0) or Ember actors, each
        made as ``runner_class(config, creator, *args, worker_index=)`` (an algorithm's runners
        may take more, such as ES's noise table)."""
        cfg = self.algo_config
        self.env_runner: Any = None
        self._remote_runners: list[Any] = []
        self._eval_runner: Any = None
        if cfg.num_env_runners == 0:
            self.env_runner = runner_class(config, self._creator, *local_args, worker_index=0)
        else:
            _check_cluster_fits(cfg)
            remote_class: Any = ember.remote(num_cpus=cfg.num_cpus_per_env_runner)(runner_class)
            self._remote_runners = [
                remote_class.remote(config, self._creator, *remote_args, worker_index=i + 1)
                for i in range(cfg.num_env_runners)
            ]
            ember.get([r.ping.remote() for r in self._remote_runners])  # fail here, not later

    def _start_metrics(self, window: int) -> None:
        """The recent episodes' returns and lengths (``window`` of them) and the counters."""
        self._recent_returns: deque[float] = deque(maxlen=window)
        self._recent_lens: deque[int] = deque(maxlen=window)
        self._env_steps_lifetime = 0
        self._episodes_lifetime = 0

    def env_runner_class(self) -> type:
        """The class of this algorithm's env runners (training's and evaluation's): an
        algorithm that acts or samples differently returns its ``EnvRunner`` subclass."""
        from ember.rllib.env.env_runner import EnvRunner

        return EnvRunner

    def build_learner(self, config: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement build_learner()")

    def cleanup(self) -> None:
        for runner in self._remote_runners:
            ember.kill(runner)
        self._remote_runners = []
        for local in (self.env_runner, self._eval_runner):
            if local is not None:
                local.stop()

    # ------------------------------------------------------------------ iterations

    def step(self) -> dict[str, Any]:
        start = time.perf_counter()
        result = self.training_step()
        interval = self.algo_config.evaluation_interval
        if interval and (self.iteration + 1) % interval == 0:
            result.update(self.evaluate())
        result["time_this_iter_s"] = time.perf_counter() - start
        return result

    def training_step(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement training_step()")

    def sample(self) -> list[dict[str, Any]]:
        """One fragment from every env runner, with the learner's current weights (put in the
        object store once for all of them, with the merged observation statistics); updates
        the episode metrics."""
        weights, filter_state = self.learner.get_weights(), self._filter_state()
        if self.env_runner is not None:
            batches = [self.env_runner.sample(weights, self._fragment, filter_state)]
        else:
            ref = ember.put(weights)
            batches = ember.get(
                [r.sample.remote(ref, self._fragment, filter_state) for r in self._remote_runners]
            )
        for batch in batches:
            self._record(batch["episode_returns"], batch["episode_lens"], batch["rewards"].size)
            self._merge_filter(batch["filter_delta"])
        return batches

    def _record(self, returns: list[float], lens: list[int], env_steps: int) -> None:
        """Count a runner's sampled steps and the episodes that ended in them."""
        self._recent_returns.extend(returns)
        self._recent_lens.extend(lens)
        self._episodes_lifetime += len(returns)
        self._env_steps_lifetime += env_steps

    def _merge_filter(self, delta: RunningStat | None) -> None:
        """Add a runner's new observation statistics to the ones all runners start from."""
        if self.obs_filter is not None and delta is not None:
            self.obs_filter.merge(delta)

    def env_runner_results(self, batches: list[dict[str, Any]]) -> dict[str, Any]:
        return self.env_runner_counts(
            sum(b["rewards"].size for b in batches), sum(len(b["episode_returns"]) for b in batches)
        )

    def env_runner_counts(self, steps: int, episodes: int) -> dict[str, Any]:
        """Ray's ``env_runners`` results of an iteration that sampled ``steps`` env steps and
        ended ``episodes`` episodes."""
        return {
            M.ENV_RUNNER_RESULTS: {
                **_episode_stats(list(self._recent_returns), list(self._recent_lens)),
                M.NUM_EPISODES: episodes,
                M.NUM_EPISODES_LIFETIME: self._episodes_lifetime,
                M.NUM_ENV_STEPS_SAMPLED: steps,
                M.NUM_ENV_STEPS_SAMPLED_LIFETIME: self._env_steps_lifetime,
            },
            M.NUM_ENV_STEPS_SAMPLED_LIFETIME: self._env_steps_lifetime,
        }

    def evaluate(self) -> dict[str, Any]:
        """``evaluation_duration`` episodes in this process, greedy unless the evaluation
        config says ``explore``; Ray's ``evaluation/env_runners/...`` keys."""
        cfg = self.algo_config
        if self._eval_runner is None:
            config = dict(self.config)
            if cfg.seed is not None:
                config["seed"] = cfg.seed + 999_983  # its own streams, apart from training's
            self._eval_runner = self.env_runner_class()(
                config, self._creator, worker_index=0, num_envs=1
            )
        episodes = self._eval_runner.sample_episodes(
            self.learner.get_weights(),
            cfg.evaluation_duration,
            explore=bool(cfg.evaluation_config.get("explore", False)),
            filter_state=self._filter_state(),
        )
        stats = _episode_stats(episodes["episode_returns"], episodes["episode_lens"])
        stats[M.NUM_EPISODES] = len(episodes["episode_returns"])
        return {M.EVALUATION_RESULTS: {M.ENV_RUNNER_RESULTS: stats}}

    # ------------------------------------------------------------------ acting

    def compute_single_action(self, observation: Any, explore: bool = False) -> Any:
        """The policy's action for one observation (greedy unless ``explore``)."""
        import torch

        raw = np.asarray(observation, dtype=np.float32)[None]
        if self.obs_filter is not None:
            filter = MeanStdFilter(raw.shape[1:])
            filter.sync(self.obs_filter)
            raw = filter(raw, update=False)
        obs = torch.as_tensor(raw)
        module = self.learner.module
        obs = obs.to(next(module.parameters()).device)
        action = module.forward_exploration(obs)[0] if explore else module.forward_inference(obs)
        value = action.cpu().numpy()[0]
        return int(value) if value.ndim == 0 else value

    def _filter_state(self) -> dict[str, Any] | None:
        return None if self.obs_filter is None else self.obs_filter.get_state()

    def get_module(self) -> Any:
        """The trained ``TorchRLModule`` (``forward_inference`` acts greedily)."""
        return self.learner.module

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        state = {
            "algorithm_class": type(self),
            "config": self.algo_config.to_dict(),
            "learner": self.learner.get_state(),
            "counters": self.get_counters(),
            "iteration": self.iteration,
        }
        with open(os.path.join(checkpoint_dir, STATE_FILE), "wb") as f:
            cloudpickle.dump(state, f)  # a registered env's creator may be a lambda

    def load_checkpoint(self, checkpoint: dict[str, Any] | str) -> None:
        state = checkpoint_state(str(checkpoint))
        self.learner.set_state(state["learner"])
        self.set_counters(state["counters"])
        self._iteration = state["iteration"]

    def get_counters(self) -> dict[str, Any]:
        return {
            "env_steps": self._env_steps_lifetime,
            "episodes": self._episodes_lifetime,
            "returns": list(self._recent_returns),
            "lens": list(self._recent_lens),
            "obs_filter": self._filter_state(),
        }

    def set_counters(self, counters: dict[str, Any]) -> None:
        self._env_steps_lifetime = counters["env_steps"]
        self._episodes_lifetime = counters["episodes"]
        self._recent_returns.clear()
        self._recent_returns.extend(counters["returns"])
        self._recent_lens.clear()
        self._recent_lens.extend(counters["lens"])
        if counters["obs_filter"] is not None:
            self.obs_filter = RunningStat.from_state(counters["obs_filter"])

    @classmethod
    def from_checkpoint(cls, path: str) -> Algorithm:
        """A new algorithm with the saved config, weights, optimizer state and counters."""
        state = checkpoint_state(path)
        algo_class: type[Algorithm] = state["algorithm_class"]
        algo = algo_class(config=state["config"])
        algo.restore(path)
        return algo


def _check_cluster_fits(cfg: AlgorithmConfig) -> None:
    """Env runners that the cluster can never hold would wait for CPUs forever: say so. Under
    Tune this process is a trial's actor and holds CPUs of its own."""
    held = ember.get_runtime_context().get_assigned_resources().get("CPU", 0.0)
    need = cfg.num_env_runners * cfg.num_cpus_per_env_runner
    total = ember.cluster_resources().get("CPU", 0.0)
    if held + need > total:
        where = f" besides the {held:g} this trial holds" if held else ""
        raise ValueError(
            f"{cfg.num_env_runners} env runners x {cfg.num_cpus_per_env_runner:g} CPU need "
            f"{need:g} CPUs{where}, but the cluster has {total:g}: lower num_env_runners or "
            "num_cpus_per_env_runner (fractions are fine), or add CPUs"
        )


def checkpoint_state(path: str) -> dict[str, Any]:
    """What ``save`` wrote in ``path``: the algorithm's class, config, learner state, counters."""
    file = os.path.join(path, STATE_FILE)
    if not os.path.exists(file):
        raise ValueError(f"{path!r} is not an algorithm checkpoint: it has no {STATE_FILE}")
    with open(file, "rb") as f:
        state: dict[str, Any] = cloudpickle.load(f)
    return state


def _episode_stats(returns: list[float], lens: list[int]) -> dict[str, float]:
    if not returns:
        nan = float("nan")
        return {
            M.EPISODE_RETURN_MEAN: nan,
            M.EPISODE_RETURN_MAX: nan,
            M.EPISODE_RETURN_MIN: nan,
            M.EPISODE_LEN_MEAN: nan,
        }
    return {
        M.EPISODE_RETURN_MEAN: float(np.mean(returns)),
        M.EPISODE_RETURN_MAX: float(np.max(returns)),
        M.EPISODE_RETURN_MIN: float(np.min(returns)),
        M.EPISODE_LEN_MEAN: float(np.mean(lens)),
    }
