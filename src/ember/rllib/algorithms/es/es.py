"""Evolution Strategies (Salimans, Ho, Chen, Sidor and Sutskever 2017), as their Algorithm 2:

    put theta in the object store
    every runner, in parallel:   eps_i = noise[index_i]
                                 F+_i, F-_i = F(theta + sigma*eps_i), F(theta - sigma*eps_i)
    send back index_i, F+_i, F-_i
    theta += Adam(sum_i (rank(F+_i) - rank(F-_i)) * eps_i / 2n  -  l2_coeff * theta)

The noise table is made once from a seed and put in the object store once; every runner maps
the same copy and names a perturbation by its index, so only weights go out (one put per
iteration, shared by all runners) and only indices and returns come back. The driver hands a
runner its next task as soon as it returns one (``ember.wait``), so no runner waits for the
others within an iteration.

Settings keep Ray RLlib's ES names; the defaults that differ from Ray's (a smaller batch and
noise table) are sized for CartPole-like problems on a few cores."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import ember
from ember.rllib.algorithms.algorithm import Algorithm, _episode_stats
from ember.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ember.rllib.algorithms.es.utils import (
    Adam,
    SharedNoiseTable,
    batched_weighted_sum,
    compute_centered_ranks,
    create_shared_noise,
)
from ember.rllib.utils import metrics as M

_FILTERS = ("NoFilter", "MeanStdFilter")


class ESConfig(AlgorithmConfig):
    """``ESConfig().environment("CartPole-v1").env_runners(num_env_runners=2)
    .training(episodes_per_batch=40, noise_stdev=0.02).build_algo()``.

    An iteration evaluates at least ``episodes_per_batch`` perturbed episodes and at least
    ``train_batch_size`` of their env steps. Each runner steps one environment, a whole
    episode at a time (``num_envs_per_env_runner`` does not apply)."""

    def __init__(self, algo_class: type[Algorithm] | None = None) -> None:
        super().__init__(algo_class=algo_class or ES)
        self.action_noise_std = 0.01
        self.l2_coeff = 0.005
        self.noise_stdev = 0.02
        self.episodes_per_batch = 40
        self.train_batch_size = 1000
        self.eval_prob = 0.03
        self.stepsize = 0.01
        self.noise_size = 25_000_000
        self.report_length = 10
        self.observation_filter = "MeanStdFilter"

    def env_runners(self, *, observation_filter: str = NotProvided, **kwargs: Any) -> ESConfig:
        """The shared settings, and ``observation_filter``: "MeanStdFilter" normalizes
        observations by the running mean and std of those seen, "NoFilter" does not."""
        super().env_runners(**kwargs)
        if observation_filter is not NotProvided:
            self.observation_filter = observation_filter
        return self

    def training(
        self,
        *,
        gamma: float = NotProvided,
        lr: float | list[list[float]] = NotProvided,
        train_batch_size: int = NotProvided,
        train_batch_size_per_learner: int = NotProvided,
        grad_clip: float | None = NotProvided,
        model: dict[str, Any] = NotProvided,
        action_noise_std: float = NotProvided,
        l2_coeff: float = NotProvided,
        noise_stdev: float = NotProvided,
        episodes_per_batch: int = NotProvided,
        eval_prob: float = NotProvided,
        stepsize: float = NotProvided,
        noise_size: int = NotProvided,
        report_length: int = NotProvided,
    ) -> ESConfig:
        """ES's settings: ``noise_stdev`` is sigma; ``stepsize`` Adam's learning rate (``lr``
        is not used); ``l2_coeff`` the weight decay; ``action_noise_std`` Gaussian noise on
        Box actions of perturbed episodes; ``noise_size`` the table's length in float32s;
        ``eval_prob`` the chance that a runner plays theta itself instead of a pair, and the
        reported return is the mean of those episodes over the last ``report_length``
        iterations."""
        self._set_training(locals())
        return self

    def validate(self) -> None:
        super().validate()
        for name in ("noise_stdev", "stepsize"):
            if not _number(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a number > 0, not {getattr(self, name)!r}")
        for name in ("l2_coeff", "action_noise_std"):
            if not _number(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a number >= 0, not {getattr(self, name)!r}")
        if not _number(self.eval_prob) or not 0 <= self.eval_prob < 1:
            raise ValueError(f"eval_prob must be within [0, 1), not {self.eval_prob!r}")
        for name in ("episodes_per_batch", "noise_size", "report_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, not {value!r}")
        if self.observation_filter not in _FILTERS:
            raise ValueError(
                f"observation_filter must be one of {list(_FILTERS)}, not "
                f"{self.observation_filter!r}"
            )


class ES(Algorithm):
    algo_config: ESConfig

    @classmethod
    def get_default_config(cls) -> ESConfig:
        return ESConfig(algo_class=cls)

    def setup(self, config: dict[str, Any]) -> None:
        import torch

        from ember.rllib.algorithms.es.es_env_runner import ESEnvRunner
        from ember.rllib.algorithms.es.es_torch_policy import ESTorchPolicy

        cfg = self.algo_config
        self._probe_env()
        if cfg.seed is not None:
            torch.manual_seed(cfg.seed)
        self.policy = ESTorchPolicy(self.observation_space, self.action_space, config)
        if cfg.noise_size < self.policy.num_params:
            raise ValueError(
                f"noise_size {cfg.noise_size} is smaller than the policy's "
                f"{self.policy.num_params} parameters: raise noise_size (a few million or more)"
            )
        noise = create_shared_noise(cfg.noise_size, cfg.seed)
        # With runner actors the table is put once: every runner, and this process, maps that
        # one copy. The reference is kept for the algorithm's life, so the table stays in the
        # store while it is read.
        self._noise_ref = ember.put(noise) if cfg.num_env_runners else None
        if self._noise_ref is not None:
            noise = ember.get(self._noise_ref)
        self._start_runners(config, ESEnvRunner, (noise,), (self._noise_ref,))
        self.learner = self.policy  # what checkpoints save, and get_module() reads
        self.obs_filter = None  # ES keeps its observation statistics in the policy's state
        self.optimizer = Adam(self.policy.num_params, cfg.stepsize)
        self.noise = SharedNoiseTable(noise)
        self._eval_env: Any = None
        self._eval_rng = np.random.default_rng(None if cfg.seed is None else [cfg.seed, 999_983])
        # Per iteration, the mean return and length of the episodes played with theta itself.
        self._start_metrics(cfg.report_length)

    def cleanup(self) -> None:
        super().cleanup()
        if self._eval_env is not None:
            self._eval_env.close()

    # ------------------------------------------------------------------ one iteration

    def training_step(self) -> dict[str, Any]:
        cfg = self.algo_config
        params = self.policy.get_params()
        theta = params["weights"]
        results = self._evaluate_perturbations(params)
        indices = np.concatenate([r["noise_indices"] for r in results])
        returns = np.concatenate([r["noisy_returns"] for r in results])  # [n, 2]: F+, F-
        ranks = compute_centered_ranks(returns)
        dim = self.policy.num_params
        eps = (self.noise.get(int(i), dim) for i in indices)
        g = batched_weighted_sum(ranks[:, 0] - ranks[:, 1], eps) / returns.size
        step = self.optimizer.step(-g + cfg.l2_coeff * theta)  # ascend F, decay the weights
        self.policy.set_flat(theta + step)
        for result in results:
            self.policy.obs_stat.merge(result["obs_stat"])
        self.policy.refresh_filter()
        return self._report(results, theta + step, g, step)

    def _evaluate_perturbations(self, params: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """Runner tasks until the batch is full. A task is a share of the batch (about two
        per runner per iteration) and is handed out only while the tasks already running
        cannot fill the batch, so none is wasted; a runner gets its next task as soon as it
        returns one."""
        cfg = self.algo_config
        share = 2 * max(1, cfg.num_env_runners)
        task = (math.ceil(cfg.episodes_per_batch / share), math.ceil(cfg.train_batch_size / share))
        results: list[dict[str, Any]] = []
        counts = [0, 0]  # perturbed episodes and their steps so far

        def short(running: int) -> bool:
            return (
                counts[0] + running * task[0] < cfg.episodes_per_batch
                or counts[1] + running * task[1] < cfg.train_batch_size
            )

        def add(result: dict[str, Any]) -> None:
            results.append(result)
            counts[0] += result["noisy_lengths"].size
            counts[1] += int(result["noisy_lengths"].sum())

        if self.env_runner is not None:
            while short(0):
                add(self.env_runner.do_rollouts(params, *task))
            return results
        params_ref = ember.put(params)  # once per iteration, for every runner
        pending = {r.do_rollouts.remote(params_ref, *task): r for r in self._remote_runners}
        while pending:
            [done], _ = ember.wait(list(pending), num_returns=1)
            runner = pending.pop(done)
            add(ember.get(done))
            if short(len(pending)):
                pending[runner.do_rollouts.remote(params_ref, *task)] = runner
        return results

    def _report(
        self, results: list[dict[str, Any]], theta: np.ndarray, g: np.ndarray, step: np.ndarray
    ) -> dict[str, Any]:
        lengths = np.concatenate([r["noisy_lengths"].ravel() for r in results])
        eval_returns = [x for r in results for x in r["eval_returns"]]
        eval_lengths = [x for r in results for x in r["eval_lengths"]]
        if eval_returns:
            self._recent_returns.append(float(np.mean(eval_returns)))
            self._recent_lens.append(float(np.mean(eval_lengths)))  # type: ignore[arg-type]
        episodes = lengths.size + len(eval_returns)
        steps = int(lengths.sum()) + sum(eval_lengths)
        self._episodes_lifetime += episodes
        self._env_steps_lifetime += steps
        weights_norm = float(np.linalg.norm(theta))
        info = {
            "weights_norm": weights_norm,
            "grad_norm": float(np.linalg.norm(g)),
            "update_ratio": float(np.linalg.norm(step)) / max(weights_norm, 1e-12),
            "episodes_this_iter": int(lengths.size),
            "episodes_so_far": self._episodes_lifetime,
        }
        return {
            **self.env_runner_counts(steps, episodes),
            "episodes_this_iter": int(lengths.size),
            "info": info,
        }

    # ------------------------------------------------------------------ acting and evaluating

    def evaluate(self) -> dict[str, Any]:
        """``evaluation_duration`` episodes of theta in this process, with the filter;
        ``evaluation_config={"explore": True}`` adds the action noise."""
        from ember.rllib.env.utils import make_env

        cfg = self.algo_config
        if self._eval_env is None:
            self._eval_env = make_env(self._creator, cfg.env_config)
        noise = cfg.action_noise_std if cfg.evaluation_config.get("explore", False) else 0.0
        episodes = [
            self.policy.rollout(
                self._eval_env, int(self._eval_rng.integers(2**31)), noise, self._eval_rng
            )
            for _ in range(cfg.evaluation_duration)
        ]
        stats = _episode_stats([r for r, _ in episodes], [n for _, n in episodes])
        stats[M.NUM_EPISODES] = len(episodes)
        return {M.EVALUATION_RESULTS: {M.ENV_RUNNER_RESULTS: stats}}

    def compute_single_action(self, observation: Any, explore: bool = False) -> Any:
        """Theta's deterministic action (with the action noise of perturbed episodes if
        ``explore``)."""
        noise = self.algo_config.action_noise_std if explore else 0.0
        return self.policy.compute_action(observation, noise, self._eval_rng)

    # ------------------------------------------------------------------ checkpoints

    def get_counters(self) -> dict[str, Any]:
        return {**super().get_counters(), "optimizer": self.optimizer.get_state()}

    def set_counters(self, counters: dict[str, Any]) -> None:
        super().set_counters(counters)
        self.optimizer.set_state(counters["optimizer"])


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
