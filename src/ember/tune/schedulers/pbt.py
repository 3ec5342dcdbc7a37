"""Population Based Training (Ray Tune's ``PopulationBasedTraining``; Jaderberg et al., 2017)
and the replay of one trial's schedule of configurations (``PopulationBasedTrainingReplay``).

Every ``perturbation_interval`` units of ``time_attr`` a trial is ranked among the population by
its latest score. A trial in the top ``quantile_fraction`` is asked for a checkpoint (others may
clone it); a trial in the bottom one *exploits* a random top trial, taking its latest checkpoint
(``trial.restore_from``) and its configuration, which it then *explores* (perturbs). The
scheduler pauses the trial through the controller, which restarts it from ``restore_from``
with the new configuration. With ``synch=True`` trials wait until all reach the interval.

Each exploit is logged in the experiment's folder, as in Ray: ``pbt_global.txt`` gets a line
``[trial tag, donor tag, trial iteration, donor iteration, donor config, new config]`` and
``pbt_policy_{trial_id}.txt`` becomes the donor's policy file plus that line, so that it holds the
whole lineage of configurations the trial's weights went through: what the replay reapplies."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import shutil
from collections.abc import Callable, Sequence
from typing import Any

from ember.tune.experiment.trial import Trial
from ember.tune.result import TRAINING_ITERATION
from ember.tune.schedulers.trial_scheduler import FIFOScheduler, SchedulerContext, TrialScheduler
from ember.tune.schedulers.util import MetricScheduler
from ember.tune.search.sample import Domain, Function

logger = logging.getLogger(__name__)

GLOBAL_POLICY_FILE = "pbt_global.txt"
POLICY_FILE = "pbt_policy_{}.txt"


def _check_mutations(mutations: dict[str, Any], prefix: str = "") -> None:
    for key, value in mutations.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _check_mutations(value, f"{name}.")
        elif isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f"hyperparam_mutations[{name!r}] is an empty list")
        elif isinstance(value, Function):
            raise ValueError(
                f"hyperparam_mutations[{name!r}] is a tune.sample_from(...), which PBT cannot "
                "resample on its own; use tune.uniform, tune.loguniform, tune.choice, ..., a "
                "list of values or a function that takes no argument"
            )
        elif not (isinstance(value, Domain) or callable(value)):
            raise ValueError(
                f"hyperparam_mutations[{name!r}] is a {type(value).__name__}; give a list or "
                "tuple of values, a search space such as tune.uniform(...), a function that "
                "returns a value, or a dict of these for a nested config"
            )


def _sample(space: Any) -> Any:
    return space.sample(None) if isinstance(space, Domain) else space()


def _fill_config(config: dict[str, Any], mutations: dict[str, Any]) -> dict[str, Any]:
    """Sample the mutated hyperparameters a config lacks; what was added."""
    added: dict[str, Any] = {}
    for key, space in mutations.items():
        if isinstance(space, dict):
            nested = config.setdefault(key, {})
            if isinstance(nested, dict):
                inner = _fill_config(nested, space)
                if inner:
                    added[key] = inner
        elif key not in config:
            config[key] = (
                random.choice(space) if isinstance(space, (list, tuple)) else _sample(space)
            )
            added[key] = config[key]
    return added


def explore(
    config: dict[str, Any],
    mutations: dict[str, Any],
    resample_probability: float,
    perturbation_factors: Sequence[float],
    custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A perturbed copy of ``config`` and, per mutated key, what was done to it.

    A value from a list moves to a neighbour (or is resampled, with ``resample_probability``, or
    when it is not in the list); a value from a search space or a function is resampled or
    multiplied by one of ``perturbation_factors`` (kept an ``int`` if it was one)."""
    new_config = copy.deepcopy(config)
    operations: dict[str, Any] = {}
    for key, space in mutations.items():
        if isinstance(space, dict):
            new_config[key], operations[key] = explore(
                config[key], space, resample_probability, perturbation_factors, None
            )
        elif isinstance(space, (list, tuple)):
            if random.random() < resample_probability or config[key] not in space:
                new_config[key] = random.choice(space)
                operations[key] = "resample"
            else:
                old = list(space).index(config[key])
                shift = random.choice((-1, 1))
                new = min(max(old + shift, 0), len(space) - 1)
                new_config[key] = space[new]
                noop = " (noop)" if new == old else ""
                operations[key] = f"shift {'left' if shift < 0 else 'right'}{noop}"
        else:
            if random.random() < resample_probability:
                new_config[key] = _sample(space)
                operations[key] = "resample"
            else:
                factor = random.choice(list(perturbation_factors))
                new_config[key] = config[key] * factor
                operations[key] = f"* {factor}"
            if isinstance(config[key], int) and not isinstance(config[key], bool):
                new_config[key] = int(new_config[key])
    if custom_explore_fn is not None:
        explored = custom_explore_fn(new_config)
        if explored is None:
            raise ValueError("custom_explore_fn must return the new config, and returned None")
        new_config = explored
    return new_config, operations


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _make_experiment_tag(orig_tag: str, config: dict[str, Any], keys: Any) -> str:
    shown = ",".join(f"{k}={_format_value(config[k])}" for k in sorted(keys) if k in config)
    return f"{orig_tag}@perturbed[{shown}]"


def _to_json(value: Any) -> Any:
    """What ``json`` cannot write (numpy numbers, objects) as a number or a string."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return repr(value)


class _TrialState:
    def __init__(self, trial: Trial) -> None:
        self.orig_tag = trial.experiment_tag
        self.last_score: float | None = None
        self.last_perturbation_time = 0.0
        self.last_train_time = 0.0
        self.last_result: dict[str, Any] = {}


def _checkpoint_iteration(donor: Trial, donor_state: _TrialState) -> Any:
    """The iteration the donor's latest checkpoint was saved at, which the trial that clones
    it continues from: as the controller recorded it, else the donor's latest perturbation point
    (where PBT asked for the checkpoint)."""
    if donor.checkpoint_history and donor.checkpoint_history[-1][0] == donor.checkpoint:
        return donor.checkpoint_history[-1][1].get(TRAINING_ITERATION, 0)
    return donor_state.last_result.get(TRAINING_ITERATION, 0)


class PopulationBasedTraining(MetricScheduler):
    """Trains a population whose weak members restart from the strong ones' checkpoints with
    perturbed configurations, so that it finds a schedule of hyperparameters, not one setting.
    More trials than fit at once take turns: the one that trained least runs next."""

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: str | None = None,
        mode: str | None = None,
        perturbation_interval: float = 60.0,
        burn_in_period: float = 0.0,
        hyperparam_mutations: dict[str, Any] | None = None,
        quantile_fraction: float = 0.25,
        resample_probability: float = 0.25,
        perturbation_factors: tuple[float, float] = (1.2, 0.8),
        custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        log_config: bool = True,
        require_attrs: bool = True,
        synch: bool = False,
    ) -> None:
        super().__init__(time_attr, metric, mode)
        mutations = dict(hyperparam_mutations or {})
        if not mutations and custom_explore_fn is None:
            raise ValueError(
                "PopulationBasedTraining needs `hyperparam_mutations` (what to perturb and how) "
                "or `custom_explore_fn`, or both"
            )
        _check_mutations(mutations)
        if not 0 <= quantile_fraction <= 0.5:
            raise ValueError(
                f"quantile_fraction must be between 0 and 0.5, not {quantile_fraction!r}"
            )
        if perturbation_interval <= 0:
            raise ValueError(
                f"perturbation_interval must be positive, not {perturbation_interval!r}"
            )
        if not 0 <= resample_probability <= 1:
            raise ValueError(
                f"resample_probability must be between 0 and 1, not {resample_probability!r}"
            )
        if not perturbation_factors:
            raise ValueError("perturbation_factors must hold at least one factor")
        self._perturbation_interval = perturbation_interval
        self._burn_in_period = burn_in_period
        self._hyperparam_mutations = mutations
        self._quantile_fraction = quantile_fraction
        self._resample_probability = resample_probability
        self._perturbation_factors = tuple(perturbation_factors)
        self._custom_explore_fn = custom_explore_fn
        self._log_config = log_config
        self._require_attrs = require_attrs
        self._synch = synch
        self._next_perturbation_sync = max(perturbation_interval, burn_in_period)
        self._state: dict[Trial, _TrialState] = {}
        self._warned_missing = False
        self._num_checkpoints = 0
        self._num_perturbations = 0

    def on_trial_add(self, tune_controller: SchedulerContext, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)
        self._state_of(trial)

    def _state_of(self, trial: Trial) -> _TrialState:
        """A trial's state, made when the trial is first met: when added, or at its first
        result after ``Tuner.restore`` (the population then starts afresh)."""
        state = self._state.get(trial)
        if state is None:
            state = self._state[trial] = _TrialState(trial)
            trial.evaluated_params.update(_fill_config(trial.config, self._hyperparam_mutations))
        return state

    def on_trial_result(
        self, tune_controller: SchedulerContext, trial: Trial, result: dict[str, Any]
    ) -> str:
        if not self._require_attrs and not self.has_keys(result):
            if not self._warned_missing:
                self._warned_missing = True
                logger.warning(
                    "PopulationBasedTraining: a result of %s lacks %r or %r; such results "
                    "are ignored (require_attrs=False)",
                    trial,
                    self._time_attr,
                    self._metric,
                )
            return TrialScheduler.CONTINUE
        time, score = self.read(result)
        state = self._state_of(trial)
        if time < self._burn_in_period:
            return TrialScheduler.CONTINUE
        if time - state.last_perturbation_time < self._perturbation_interval:
            return TrialScheduler.CONTINUE
        state.last_score = score
        state.last_train_time = time
        state.last_result = result
        if self._synch:
            paused = self._maybe_synchronize(tune_controller, trial)
            return TrialScheduler.NOOP if paused else TrialScheduler.PAUSE
        state.last_perturbation_time = time
        lower, upper = self._quantiles()
        # Time sharing: a trial at its interval yields to one that waits for resources.
        waiting = any(
            t.status in (Trial.PENDING, Trial.PAUSED) and t is not trial
            for t in tune_controller.get_trials()
        )
        if self._checkpoint_or_exploit(tune_controller, trial, upper, lower):
            return TrialScheduler.NOOP
        return TrialScheduler.PAUSE if waiting else TrialScheduler.CONTINUE

    def on_trial_complete(
        self, tune_controller: SchedulerContext, trial: Trial, result: dict[str, Any]
    ) -> None:
        if self._synch:
            self._maybe_synchronize(tune_controller, None)

    def on_trial_error(self, tune_controller: SchedulerContext, trial: Trial) -> None:
        if self._synch:
            self._maybe_synchronize(tune_controller, None)

    def on_trial_remove(self, tune_controller: SchedulerContext, trial: Trial) -> None:
        if self._synch:
            self._maybe_synchronize(tune_controller, None)

    def _maybe_synchronize(self, tune_controller: SchedulerContext, in_hand: Trial | None) -> bool:
        """In synchronous mode, perturb the whole population once every live trial reached the
        interval (a trial that ends early is not waited for) and the population is complete (the
        search is finished); whether ``in_hand`` was paused."""
        live = [t for t in tune_controller.get_trials() if not t.is_finished()]
        if (
            not tune_controller.search_finished()
            or not live
            or any(
                self._state_of(t).last_train_time < self._next_perturbation_sync
                for t in live
                if t is not in_hand
            )
        ):
            return False
        lower, upper = self._quantiles()
        middle = [t for t in live if t not in lower and t not in upper]
        paused = False
        # The strong first: their checkpoints are asked for before the weak clone them.
        for t in upper + middle + lower:
            self._state[t].last_perturbation_time = self._state[t].last_train_time
            if self._checkpoint_or_exploit(tune_controller, t, upper, lower) and t is in_hand:
                paused = True
        self._next_perturbation_sync = max(
            self._next_perturbation_sync + self._perturbation_interval,
            max(self._state[t].last_train_time for t in live),
        )
        return paused

    def _checkpoint_or_exploit(
        self,
        tune_controller: SchedulerContext,
        trial: Trial,
        upper: list[Trial],
        lower: list[Trial],
    ) -> bool:
        """Ask a top trial for a checkpoint; make a bottom one clone a top one. Whether the
        trial was paused for its restart."""
        if trial in upper and trial.status == Trial.RUNNING:
            tune_controller.request_checkpoint(trial)
            self._num_checkpoints += 1
        if trial not in lower:
            return False
        donor = random.choice(upper)
        if donor.checkpoint is None:
            logger.info("[pbt] %s has no checkpoint yet: %s does not exploit it", donor, trial)
            return False
        return self._exploit(tune_controller, trial, donor)

    def _exploit(self, tune_controller: SchedulerContext, trial: Trial, donor: Trial) -> bool:
        state, donor_state = self._state[trial], self._state[donor]
        new_config, operations = explore(
            donor.config,
            self._hyperparam_mutations,
            self._resample_probability,
            self._perturbation_factors,
            self._custom_explore_fn,
        )
        logger.info(
            "[pbt] %s (score %s) exploits %s (score %s); explore: %s",
            trial,
            state.last_score,
            donor,
            donor_state.last_score,
            operations,
        )
        if self._log_config:
            self._log_config_on_step(state, donor_state, trial, donor, new_config)
        paused = trial.status != Trial.PAUSED
        if paused:  # a waiting trial (synchronous mode) is paused already
            tune_controller.pause_trial(trial, should_checkpoint=False)
        trial.set_experiment_tag(
            _make_experiment_tag(state.orig_tag, new_config, self._hyperparam_mutations)
        )
        trial.set_config(new_config)
        trial.restore_from = donor.checkpoint
        self._num_perturbations += 1
        state.last_perturbation_time = donor_state.last_perturbation_time
        state.last_train_time = donor_state.last_train_time
        return paused

    def _log_config_on_step(
        self,
        state: _TrialState,
        donor_state: _TrialState,
        trial: Trial,
        donor: Trial,
        new_config: dict[str, Any],
    ) -> None:
        if trial.path is None:
            return
        folder = os.path.dirname(os.path.normpath(trial.path))
        line = json.dumps(
            [
                state.orig_tag,
                donor_state.orig_tag,
                state.last_result.get(TRAINING_ITERATION, 0),
                _checkpoint_iteration(donor, donor_state),
                donor.config,
                new_config,
            ],
            default=_to_json,
        )
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, GLOBAL_POLICY_FILE), "a") as f:
            f.write(line + "\n")
        own = os.path.join(folder, POLICY_FILE.format(trial.trial_id))
        donor_file = os.path.join(folder, POLICY_FILE.format(donor.trial_id))
        if os.path.exists(donor_file):
            shutil.copyfile(donor_file, own)
        elif os.path.exists(own):
            os.remove(own)  # the trial's own lineage ends here
        with open(own, "a") as f:
            f.write(line + "\n")

    def _quantiles(self) -> tuple[list[Trial], list[Trial]]:
        """The bottom and the top ``quantile_fraction`` of the live trials with a score."""
        ranked = [
            t for t, s in self._state.items() if s.last_score is not None and not t.is_finished()
        ]
        if len(ranked) <= 1:
            return [], []
        ranked.sort(key=lambda t: self._state[t].last_score or 0.0)
        count = min(math.ceil(len(ranked) * self._quantile_fraction), len(ranked) // 2)
        return ranked[:count], ranked[len(ranked) - count :]

    def choose_trial_to_run(self, tune_controller: SchedulerContext) -> Trial | None:
        """The waiting trial that trained least (in synchronous mode, of those short of the
        next synchronization point), so that the population advances together.

        In synchronous mode, when every trial waits at the interval, the population is
        perturbed as soon as it is complete: the search may finish with no trial to report."""
        chosen = self._least_trained(tune_controller)
        if chosen is None and self._synch:
            self._maybe_synchronize(tune_controller, None)
            chosen = self._least_trained(tune_controller)
        return chosen

    def _least_trained(self, tune_controller: SchedulerContext) -> Trial | None:
        candidates = [
            t
            for t in tune_controller.get_trials()
            if t.status in (Trial.PENDING, Trial.PAUSED)
            and (
                not self._synch or self._state_of(t).last_train_time < self._next_perturbation_sync
            )
        ]
        return min(candidates, key=lambda t: self._state_of(t).last_train_time, default=None)

    def debug_string(self) -> str:
        return (
            f"PopulationBasedTraining: {self._num_checkpoints} checkpoints, "
            f"{self._num_perturbations} perturbs"
        )


def load_policy(policy_file: str) -> tuple[dict[str, Any] | None, list[tuple[int, dict[str, Any]]]]:
    """A policy file's initial config and its changes ``(iteration, new config)`` in order.

    Read backwards, the lines form a chain (each line's donor is the trial of the line before);
    lines before a break in the chain are an older lineage the trial left, and are ignored."""
    rows = []
    with open(policy_file) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                old_tag, new_tag, _, new_step, old_config, new_config = row
            except (json.JSONDecodeError, ValueError, TypeError):
                raise ValueError(
                    f"{policy_file}:{number} is not a line of a PBT policy file "
                    "(a JSON list [trial tag, donor tag, trial iteration, donor iteration, "
                    "donor config, new config])"
                ) from None
            rows.append((old_tag, new_tag, int(new_step), old_config, new_config))
    changes: list[tuple[int, dict[str, Any]]] = []
    initial: dict[str, Any] | None = None
    donor_tag: str | None = None
    for old_tag, new_tag, step, old_config, new_config in reversed(rows):
        if donor_tag is not None and old_tag != donor_tag:
            break
        donor_tag = new_tag
        initial = old_config
        changes.append((step, new_config))
    return initial, changes[::-1]


class PopulationBasedTrainingReplay(FIFOScheduler):
    """Replays the schedule of configurations a PBT trial went through, from its policy file
    (``pbt_policy_{trial_id}.txt``), on one trial: it starts with the lineage's first config
    and, at each recorded iteration, checkpoints, pauses and resumes from its own checkpoint
    with the next config."""

    needs_every_decision = True

    def __init__(self, policy_file: str) -> None:
        path = os.path.expanduser(os.fspath(policy_file))
        if not os.path.isfile(path):
            raise ValueError(f"PBT policy file not found: {path}")
        self.policy_file = path
        self.config, self._policy = load_policy(path)
        self.experiment_tag = f"replay_{os.path.basename(path)}"
        self._trial: Trial | None = None
        self._applied = 0
        self._current_step = 0

    @property
    def current_config(self) -> dict[str, Any] | None:
        return self._policy[self._applied - 1][1] if self._applied else self.config

    def on_trial_add(self, tune_controller: SchedulerContext, trial: Trial) -> None:
        if self._trial is not None:
            raise ValueError(
                "PopulationBasedTrainingReplay replays one trial, and a second one was added: "
                "set num_samples=1 and give no grid_search in the config"
            )
        self._trial = trial
        if not self._policy:
            if not trial.config:
                raise ValueError(
                    f"The policy file {self.policy_file} records no change and the trial has "
                    "no config: give the trial a config, or train it without the replay"
                )
            self.config = trial.config
        elif trial.config and not self._applied:
            logger.warning(
                "PopulationBasedTrainingReplay replaces the trial's config with the policy's "
                "initial one"
            )
        trial.set_config(dict(self.current_config or {}))

    def on_trial_result(
        self, tune_controller: SchedulerContext, trial: Trial, result: dict[str, Any]
    ) -> str:
        if TRAINING_ITERATION not in result or self._applied == len(self._policy):
            return TrialScheduler.CONTINUE
        step = int(result[TRAINING_ITERATION])
        self._current_step = step
        change_at, new_config = self._policy[self._applied]
        if step < change_at:
            return TrialScheduler.CONTINUE
        logger.info("PBT replay at iteration %s: the config becomes %s", step, new_config)
        tune_controller.pause_trial(trial, should_checkpoint=True)
        trial.set_experiment_tag(_make_experiment_tag(self.experiment_tag, new_config, new_config))
        trial.set_config(new_config)
        self._applied += 1
        return TrialScheduler.NOOP

    def debug_string(self) -> str:
        return (
            f"PopulationBasedTraining replay: iteration {self._current_step}, "
            f"{self._applied} changes"
        )

    def get_state(self) -> dict[str, Any]:
        return {"applied": self._applied}

    def set_state(self, state: dict[str, Any]) -> None:
        self._applied = state["applied"]
