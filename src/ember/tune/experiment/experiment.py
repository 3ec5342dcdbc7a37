"""``Experiment``: an experiment described as the seed's ``run_experiments`` spec is, with
``run``, ``stop``, ``config``, ``resources`` and friends."""

from __future__ import annotations

import os
from typing import Any

from ember.tune.tune_config import CheckpointConfig

_KNOWN = {
    "run",
    "stop",
    "time_budget_s",
    "config",
    "resources_per_trial",
    "resources",
    "trial_resources",
    "num_samples",
    "storage_path",
    "local_dir",
    "checkpoint_config",
    "checkpoint_freq",
    "checkpoint_at_end",
    "keep_checkpoints_num",
    "checkpoint_score_attr",
    "max_failures",
    "trial_name_creator",
    "trial_dirname_creator",
    "log_to_file",
    "callbacks",
}


class Experiment:
    """One named experiment of ``run_experiments``; ``Experiment.from_json(name, spec)``
    reads the seed's dict form."""

    def __init__(
        self,
        name: str,
        run: Any,
        stop: Any = None,
        time_budget_s: float | None = None,
        config: dict[str, Any] | None = None,
        resources_per_trial: dict[str, float] | None = None,
        num_samples: int = 1,
        storage_path: str | None = None,
        checkpoint_config: CheckpointConfig | None = None,
        max_failures: int = 0,
        **legacy: Any,
    ) -> None:
        unknown = set(legacy) - _KNOWN
        if unknown:
            raise ValueError(
                f"Experiment {name!r}: unknown setting(s) {sorted(unknown)}; known: "
                f"{sorted(_KNOWN)}"
            )
        if run is None:
            raise ValueError(f"Experiment {name!r} needs 'run': a trainable or a registered name")
        self.name = name
        self.run = run
        self.stop = stop
        self.time_budget_s = time_budget_s
        self.config = dict(config or {})
        self.resources = (
            resources_per_trial or legacy.get("resources") or legacy.get("trial_resources")
        )
        self.num_samples = num_samples
        where: str | None = storage_path or legacy.get("local_dir")
        self.storage_path = os.path.expanduser(where) if where else None
        if checkpoint_config is None:
            checkpoint_config = CheckpointConfig(
                num_to_keep=legacy.get("keep_checkpoints_num"),
                checkpoint_score_attribute=legacy.get("checkpoint_score_attr"),
                checkpoint_frequency=legacy.get("checkpoint_freq", 0),
                checkpoint_at_end=legacy.get("checkpoint_at_end"),
            )
        self.checkpoint_config = checkpoint_config
        self.max_failures = max_failures
        self.callbacks = legacy.get("callbacks")
        self.trial_name_creator = legacy.get("trial_name_creator")
        self.trial_dirname_creator = legacy.get("trial_dirname_creator")
        self.log_to_file = legacy.get("log_to_file", False)

    @classmethod
    def from_json(cls, name: str, spec: dict[str, Any]) -> Experiment:
        if not isinstance(spec, dict):
            raise TypeError(
                f"experiment {name!r}: its spec must be a dict, not {type(spec).__name__}"
            )
        if "run" not in spec:
            raise ValueError(f"experiment {name!r} has no 'run' (the trainable to run)")
        return cls(name, **spec)
