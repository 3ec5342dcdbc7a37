"""``tune.Trainable``: the class API of a trial (``setup``, ``step``, ``save_checkpoint``,
``load_checkpoint``), as in Ray Tune. The trial's actor calls ``train()`` in a loop."""

from __future__ import annotations

import os
import pickle
import tempfile
from typing import Any

from ember.tune.result import TRAINING_ITERATION

_DICT_CHECKPOINT_FILE = "checkpoint.pkl"  # where a dict returned by save_checkpoint goes


class Trainable:
    """Subclass and override ``setup(config)`` and ``step()``; for checkpoints (pausing,
    Population Based Training, fault tolerance) also ``save_checkpoint(checkpoint_dir)`` and
    ``load_checkpoint(checkpoint)``."""

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        *,
        trial_id: str = "default",
        trial_name: str = "default",
        logdir: str | None = None,
    ) -> None:
        self.config: dict[str, Any] = dict(config or {})
        self._trial_id = trial_id
        self._trial_name = trial_name
        self._logdir = logdir or tempfile.gettempdir()
        self._iteration = 0
        self.setup(dict(self.config))

    # ------------------------------------------------------------------ to override

    def setup(self, config: dict[str, Any]) -> None:
        pass

    def step(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement step()")

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any] | None:
        """Write the state into ``checkpoint_dir`` (or return it as a dict)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement save_checkpoint(checkpoint_dir) to be "
            "checkpointed (asked for by checkpoint_config, pausing schedulers or max_failures)"
        )

    def load_checkpoint(self, checkpoint: dict[str, Any] | str) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} must implement load_checkpoint(checkpoint) to be restored"
        )

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        return False

    def cleanup(self) -> None:
        pass

    # ------------------------------------------------------------------ used by the actor

    @property
    def iteration(self) -> int:
        return self._iteration

    training_iteration = iteration

    @property
    def trial_id(self) -> str:
        return self._trial_id

    @property
    def trial_name(self) -> str:
        return self._trial_name

    @property
    def logdir(self) -> str:
        return self._logdir

    def get_config(self) -> dict[str, Any]:
        return self.config

    def train(self) -> dict[str, Any]:
        """One ``step()``, with its iteration filled in (the actor adds the other metrics)."""
        result = self.step()
        if not isinstance(result, dict):
            raise TypeError(
                f"{type(self).__name__}.step() must return a dict of metrics, not "
                f"{type(result).__name__}"
            )
        self._iteration += 1
        return {**result, TRAINING_ITERATION: self._iteration}

    def save(self, checkpoint_dir: str | None = None) -> str:
        """Save into ``checkpoint_dir`` (a new temporary folder if None) and return it."""
        path = checkpoint_dir or tempfile.mkdtemp(prefix="checkpoint-")
        os.makedirs(path, exist_ok=True)
        state = self.save_checkpoint(path)
        if isinstance(state, dict):
            with open(os.path.join(path, _DICT_CHECKPOINT_FILE), "wb") as f:
                pickle.dump(state, f)
        return path

    def restore(self, checkpoint_dir: str) -> None:
        dict_file = os.path.join(checkpoint_dir, _DICT_CHECKPOINT_FILE)
        if os.path.exists(dict_file):
            with open(dict_file, "rb") as f:
                self.load_checkpoint(pickle.load(f))
        else:
            self.load_checkpoint(checkpoint_dir)

    def stop(self) -> None:
        self.cleanup()
