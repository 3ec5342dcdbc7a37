"""The settings of an experiment: ``TuneConfig`` (how to search) and ``RunConfig``,
``CheckpointConfig``, ``FailureConfig`` (how to run), with Ray Tune's names and defaults.
Each checks its values when built, so a mistake is reported before anything starts."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def _check_mode(mode: str | None, what: str) -> None:
    if mode is not None and mode not in ("min", "max"):
        raise ValueError(f"{what} must be 'min' or 'max', not {mode!r}")


@dataclass
class TuneConfig:
    metric: str | None = None
    mode: str | None = None
    search_alg: Any = None
    scheduler: Any = None
    num_samples: int = 1
    max_concurrent_trials: int | None = None
    time_budget_s: float | None = None
    reuse_actors: bool | None = None
    trial_name_creator: Callable[[Any], str] | None = None
    trial_dirname_creator: Callable[[Any], str] | None = None

    def __post_init__(self) -> None:
        _check_mode(self.mode, "TuneConfig(mode=...)")
        if not isinstance(self.num_samples, int) or self.num_samples == 0 or self.num_samples < -1:
            raise ValueError(
                f"TuneConfig(num_samples=...) must be a positive int (or -1 for no limit), "
                f"not {self.num_samples!r}"
            )
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            raise ValueError("TuneConfig(max_concurrent_trials=...) must be at least 1")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError("TuneConfig(time_budget_s=...) must be a positive number of seconds")
        for name in ("trial_name_creator", "trial_dirname_creator"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise TypeError(f"TuneConfig({name}=...) must be a function of the trial")


@dataclass
class CheckpointConfig:
    num_to_keep: int | None = None
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: str = "max"
    checkpoint_frequency: int = 0
    checkpoint_at_end: bool | None = None

    def __post_init__(self) -> None:
        if self.num_to_keep is not None and self.num_to_keep < 1:
            raise ValueError(
                f"CheckpointConfig(num_to_keep=...) must be None or at least 1, "
                f"not {self.num_to_keep!r}"
            )
        _check_mode(self.checkpoint_score_order, "CheckpointConfig(checkpoint_score_order=...)")
        if self.checkpoint_frequency < 0:
            raise ValueError("CheckpointConfig(checkpoint_frequency=...) must be >= 0")


@dataclass
class FailureConfig:
    max_failures: int = 0
    # True: the first trial that fails for good stops the others; "raise": and fit() raises
    # its error.
    fail_fast: bool | str = False

    def __post_init__(self) -> None:
        if self.max_failures < -1:
            raise ValueError("FailureConfig(max_failures=...) must be >= 0, or -1 for no limit")
        if self.fail_fast not in (True, False, "raise"):
            raise ValueError(
                "FailureConfig(fail_fast=...) must be True, False or 'raise', not "
                f"{self.fail_fast!r}"
            )


@dataclass
class RunConfig:
    name: str | None = None
    storage_path: str | None = None
    stop: Any = None
    checkpoint_config: CheckpointConfig = field(default_factory=CheckpointConfig)
    failure_config: FailureConfig = field(default_factory=FailureConfig)
    callbacks: list[Any] | None = None
    verbose: int | None = None
    progress_reporter: Any = None
    log_to_file: bool | str = False
    sync_config: Any = None
    storage_filesystem: Any = None

    def __post_init__(self) -> None:
        if self.checkpoint_config is None:
            self.checkpoint_config = CheckpointConfig()
        if self.failure_config is None:
            self.failure_config = FailureConfig()
        if self.verbose is not None and self.verbose not in (0, 1, 2, 3):
            raise ValueError(f"RunConfig(verbose=...) must be 0, 1, 2 or 3, not {self.verbose!r}")
        if self.log_to_file:
            raise ValueError(
                "RunConfig(log_to_file=...) is not supported: a trial's output is shown on the "
                "driver, prefixed with its actor's name and pid"
            )
        if self.sync_config is not None:
            raise ValueError(
                "RunConfig(sync_config=...) is not supported: checkpoints and results reach "
                "storage_path on the driver's machine through Ember, with nothing to sync"
            )
        if self.storage_filesystem is not None:
            raise ValueError(
                "RunConfig(storage_filesystem=...) is not supported: Ember brings checkpoints "
                "to storage_path on the driver's machine itself"
            )


def default_storage_path() -> str:
    """Where experiments go unless ``storage_path`` says otherwise (Ray: ~/ray_results)."""
    return os.environ.get("TUNE_RESULT_DIR") or os.path.expanduser("~/ember_results")
