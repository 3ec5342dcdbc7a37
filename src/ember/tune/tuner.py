"""``Tuner``: today's entry point of an experiment (``Tuner(...).fit()``, ``Tuner.restore``),
and the one place that turns an experiment's settings into a running ``TuneController``;
``tune.run`` and ``run_experiments`` come through here too."""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import cloudpickle

import ember
from ember.tune.analysis.experiment_analysis import ExperimentAnalysis
from ember.tune.error import TuneError
from ember.tune.execution.tune_controller import (
    STATE_FILE_PREFIX,
    ControllerSettings,
    TuneController,
    load_state,
)
from ember.tune.experiment.trial import Trial
from ember.tune.registry import get_trainable_cls, trainable_name
from ember.tune.result_grid import ResultGrid
from ember.tune.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler
from ember.tune.search.search_algorithm import SearchAlgorithm
from ember.tune.search.searcher import Searcher
from ember.tune.trainable.trainable import Trainable
from ember.tune.trainable.util import resources_of
from ember.tune.tune_config import RunConfig, TuneConfig, default_storage_path

_TUNER_FILE = "tuner.pkl"


@dataclass
class ExperimentPlan:
    """Everything one experiment runs with, however it was asked for."""

    trainable: Any
    param_space: dict[str, Any]
    tune_config: TuneConfig
    run_config: RunConfig
    resources: Any = None  # tune.run's resources_per_trial, the seed's "resources"
    restored: dict[str, Any] | None = None
    experiment_path: str = ""
    name: str = ""
    default_verbose: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_trainable(trainable: Any) -> Any:
    if isinstance(trainable, str):
        return get_trainable_cls(trainable)
    if isinstance(trainable, type):
        if not issubclass(trainable, Trainable):
            raise TypeError(
                f"the trainable {trainable.__name__} is a class but not a tune.Trainable; "
                "subclass tune.Trainable, or pass a function f(config)"
            )
        return trainable
    if not callable(trainable):
        raise TypeError(
            "the trainable must be a function f(config), a tune.Trainable subclass or a "
            f"registered name, not {type(trainable).__name__}"
        )
    return trainable


def _is_class(trainable: Any) -> bool:
    return isinstance(trainable, type) and issubclass(trainable, Trainable)


def run_experiment(plan: ExperimentPlan) -> tuple[ExperimentAnalysis, bool]:
    """Run an experiment to its end; returns its analysis and whether Ctrl-C ended it."""
    trainable = resolve_trainable(plan.trainable)
    name = trainable_name(plan.trainable)
    tc, rc = plan.tune_config, plan.run_config
    if not isinstance(plan.param_space, dict):
        raise TypeError(
            f"param_space must be a dict of parameters, not {type(plan.param_space).__name__}"
        )
    ckpt = rc.checkpoint_config
    if not _is_class(trainable) and (ckpt.checkpoint_frequency or ckpt.checkpoint_at_end):
        raise ValueError(
            "CheckpointConfig's checkpoint_frequency and checkpoint_at_end work only for "
            "tune.Trainable classes; a function trainable saves checkpoints itself with "
            "tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))"
        )
    search_alg = _search_algorithm(tc.search_alg)
    scheduler = tc.scheduler if tc.scheduler is not None else FIFOScheduler()
    if not isinstance(scheduler, TrialScheduler):
        raise TypeError(
            f"TuneConfig(scheduler=...) must be a TrialScheduler from tune.schedulers, not "
            f"{type(scheduler).__name__}"
        )
    metric, mode = tc.metric, tc.mode
    if not scheduler.set_search_properties(metric, mode):
        raise ValueError(
            f"the scheduler's metric/mode ({scheduler.metric!r}, {scheduler.mode!r}) differ "
            f"from TuneConfig's ({metric!r}, {mode!r}); set them in one place"
        )
    if not search_alg.set_search_properties(metric, mode, plan.param_space):
        if metric is not None or mode is not None:
            if (search_alg.metric, search_alg.mode) != (metric, mode):
                raise ValueError(
                    f"the search algorithm's metric/mode ({search_alg.metric!r}, "
                    f"{search_alg.mode!r}) differ from TuneConfig's ({metric!r}, {mode!r})"
                )
    metric = metric or scheduler.metric or search_alg.metric
    mode = mode or scheduler.mode or search_alg.mode
    search_alg.add_configurations(plan.param_space, tc.num_samples)  # a restore sets its state

    from ember.tune.stopper._stop_argument import as_stopper, plain_criteria

    stopper = as_stopper(rc.stop)
    resources = resources_of(trainable) or plan.resources or {"CPU": 1.0}
    verbose = rc.verbose if rc.verbose is not None else plan.default_verbose
    path = plan.experiment_path
    os.makedirs(path, exist_ok=True)
    settings = ControllerSettings(
        experiment_name=os.path.basename(path),
        experiment_path=path,
        trainable_name=name,
        metric=metric,
        mode=mode,
        resources=resources if callable(resources) else (lambda config: dict(resources)),
        stopper=stopper,
        stop_all=stopper.stop_all if stopper is not None else None,
        stop_criteria=plain_criteria(stopper),
        max_failures=rc.failure_config.max_failures,
        fail_fast=rc.failure_config.fail_fast,
        trial_name_creator=tc.trial_name_creator,
        trial_dirname_creator=tc.trial_dirname_creator,
        max_concurrent_trials=tc.max_concurrent_trials or 0,
        time_budget_s=tc.time_budget_s,
        num_to_keep=ckpt.num_to_keep,
        checkpoint_score_attribute=ckpt.checkpoint_score_attribute,
        checkpoint_score_order=ckpt.checkpoint_score_order,
        checkpoint_frequency=ckpt.checkpoint_frequency,
        checkpoint_at_end=bool(ckpt.checkpoint_at_end),
        callbacks=_callbacks(rc, verbose, metric, mode, path),
        may_run_ahead=not scheduler.needs_every_decision,
    )
    if not ember.is_initialized():
        ember.init()
    from ember.tune.execution.actor_executor import ActorExecutor

    executor = ActorExecutor(trainable, reuse_actors=tc.reuse_actors is not False)
    trials = plan.restored["trials"] if plan.restored is not None else None
    controller = TuneController(executor, search_alg, scheduler, settings, trials)
    if plan.restored is not None:
        controller.restore_state(plan.restored)
    controller.run()
    analysis = ExperimentAnalysis(
        path, trials=controller.get_trials(), default_metric=metric, default_mode=mode
    )
    if controller.interrupted:
        print(
            f"The experiment was interrupted; its state is saved in {path}. Resume it with "
            f'Tuner.restore("{path}", trainable=...).fit()',
            flush=True,
        )
    return analysis, controller.interrupted


def _search_algorithm(search_alg: Any) -> SearchAlgorithm:
    if search_alg is None:
        from ember.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator()
    if isinstance(search_alg, SearchAlgorithm):
        return search_alg
    if isinstance(search_alg, Searcher):
        from ember.tune.search.search_generator import SearchGenerator

        return SearchGenerator(search_alg)
    raise TypeError(
        "TuneConfig(search_alg=...) must be a Searcher or search algorithm from tune.search, "
        f"not {type(search_alg).__name__}"
    )


def _callbacks(
    rc: RunConfig, verbose: int, metric: str | None, mode: str | None, path: str
) -> list[Any]:
    from ember.tune.logger import default_logger_callbacks
    from ember.tune.progress_reporter import progress_callback

    callbacks = list(rc.callbacks or [])
    callbacks.extend(default_logger_callbacks(callbacks))
    progress = progress_callback(rc.progress_reporter, verbose, metric, mode, path)
    if progress is not None:
        callbacks.append(progress)
    return callbacks


class Tuner:
    """``Tuner(trainable, param_space=..., tune_config=TuneConfig(...),
    run_config=RunConfig(...)).fit()`` runs an experiment and returns a ``ResultGrid``."""

    def __init__(
        self,
        trainable: Any = None,
        *,
        param_space: dict[str, Any] | None = None,
        tune_config: TuneConfig | None = None,
        run_config: RunConfig | None = None,
    ) -> None:
        if trainable is None:
            raise TypeError("Tuner needs a trainable: a function f(config) or a tune.Trainable")
        resolve_trainable(trainable)  # a bad trainable is reported here, before fit()
        tune_config = tune_config or TuneConfig()
        run_config = run_config or RunConfig()
        if not isinstance(tune_config, TuneConfig):
            raise TypeError(f"tune_config must be a TuneConfig, not {type(tune_config).__name__}")
        if not isinstance(run_config, RunConfig):
            raise TypeError(f"run_config must be a RunConfig, not {type(run_config).__name__}")
        to_dict = getattr(param_space, "to_dict", None)
        if callable(to_dict):  # an RLlib AlgorithmConfig, as Ray accepts
            param_space = to_dict()
        if param_space is not None and not isinstance(param_space, dict):
            raise TypeError(f"param_space must be a dict, not {type(param_space).__name__}")
        self._trainable = trainable
        self._param_space = dict(param_space or {})
        self._tune_config = tune_config
        self._run_config = run_config
        self._restored: dict[str, Any] | None = None
        self._path: str | None = None
        self._results: ResultGrid | None = None

    def _experiment_path(self) -> str:
        if self._path is None:
            rc = self._run_config
            name = rc.name or (
                f"{trainable_name(self._trainable)}_{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}"
            )
            storage = os.path.expanduser(rc.storage_path or default_storage_path())
            self._path = os.path.join(os.path.abspath(storage), name)
        return self._path

    def fit(self) -> ResultGrid:
        path = self._experiment_path()
        os.makedirs(path, exist_ok=True)
        if self._restored is None:
            self._save_settings(path)
        plan = ExperimentPlan(
            trainable=self._trainable,
            param_space=self._param_space,
            tune_config=self._tune_config,
            run_config=self._run_config,
            restored=self._restored,
            experiment_path=path,
        )
        analysis, _ = run_experiment(plan)
        self._results = ResultGrid(analysis)
        return self._results

    def get_results(self) -> ResultGrid:
        if self._results is None:
            path = self._experiment_path()
            state = load_state(path)
            if state is None:
                raise RuntimeError(f"no results yet: call fit() first (nothing in {path})")
            tc = self._tune_config
            self._results = ResultGrid(
                ExperimentAnalysis(
                    path, trials=state["trials"], default_metric=tc.metric, default_mode=tc.mode
                )
            )
        return self._results

    def _save_settings(self, path: str) -> None:
        settings = {
            "param_space": self._param_space,
            "tune_config": self._tune_config,
            "run_config": self._run_config,
            "trainable_name": trainable_name(self._trainable),
        }
        try:
            data = cloudpickle.dumps(settings)
        except Exception as exc:
            warnings.warn(
                f"the experiment's callbacks cannot be saved for Tuner.restore ({exc}); "
                "a restored experiment runs without them",
                stacklevel=3,
            )
            settings["run_config"] = replace(self._run_config, callbacks=None)
            data = cloudpickle.dumps(settings)
        with open(os.path.join(path, _TUNER_FILE), "wb") as f:
            f.write(data)

    @classmethod
    def can_restore(cls, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` holds an experiment that ``Tuner.restore`` can go on with."""
        path = os.fspath(path)
        if not os.path.exists(os.path.join(path, _TUNER_FILE)):
            return False
        return any(n.startswith(STATE_FILE_PREFIX) for n in os.listdir(path))

    @classmethod
    def restore(
        cls,
        path: str | os.PathLike[str],
        trainable: Any,
        resume_unfinished: bool = True,
        resume_errored: bool = False,
        restart_errored: bool = False,
        param_space: dict[str, Any] | None = None,
    ) -> Tuner:
        """The experiment saved in ``path``, ready to ``fit()`` again: finished trials keep
        their results, unfinished ones resume from their latest checkpoints."""
        path = os.path.abspath(os.fspath(path))
        if not cls.can_restore(path):
            raise ValueError(
                f"{path} holds no experiment to restore (no {_TUNER_FILE} and "
                f"{STATE_FILE_PREFIX}-*.json); pass the folder Tuner.fit() printed"
            )
        with open(os.path.join(path, _TUNER_FILE), "rb") as f:
            settings = cloudpickle.load(f)
        state = load_state(path)
        assert state is not None
        run_config = replace(
            settings["run_config"],
            name=os.path.basename(path),
            storage_path=os.path.dirname(path),
        )
        tuner = cls(
            trainable,
            param_space=param_space if param_space is not None else settings["param_space"],
            tune_config=settings["tune_config"],
            run_config=run_config,
        )
        for trial in state["trials"]:
            _relocate(trial, path)
            _reset_for_restore(trial, resume_unfinished, resume_errored, restart_errored)
        tuner._restored = state
        tuner._path = path
        return tuner


def _relocate(trial: Trial, path: str) -> None:
    """Point a restored trial at its folder in ``path`` (the experiment may have moved)."""
    if trial.path is None:
        return
    old = trial.path
    trial.path = os.path.join(path, os.path.basename(old))

    def moved(checkpoint: Any) -> Any:
        if checkpoint is None:
            return None
        return type(checkpoint)(os.path.join(trial.path or "", os.path.basename(checkpoint.path)))

    trial.checkpoint = moved(trial.checkpoint)
    trial.restore_from = moved(trial.restore_from)
    trial.checkpoint_history = [(moved(c), m) for c, m in trial.checkpoint_history]


def _reset_for_restore(
    trial: Trial, resume_unfinished: bool, resume_errored: bool, restart_errored: bool
) -> None:
    if trial.status == Trial.TERMINATED:
        return
    if trial.status == Trial.ERROR:
        if restart_errored:
            for checkpoint, _ in trial.checkpoint_history:
                shutil.rmtree(checkpoint.path, ignore_errors=True)
            trial.forget_progress()
        elif not resume_errored:
            return
        trial.num_failures = 0
        trial.error_msg = None
        trial.error = None
        trial.status = Trial.PENDING
        return
    trial.status = Trial.PENDING if resume_unfinished else Trial.TERMINATED


__all__ = ["ExperimentPlan", "Tuner", "TuneError", "resolve_trainable", "run_experiment"]
