"""The learner: the module being trained, its optimizer and device, in the algorithm's own
process. It offers what every algorithm's learner (a subclass) needs: weights and state,
the learning-rate schedule, tensors from numpy batches, seeded minibatch order and one
clipped optimizer step; the subclass adds its loss and its update."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ember.rllib.core.rl_module.torch_rl_module import TorchRLModule, get_weights, set_weights
from ember.rllib.utils.schedules import Scheduler


class TorchLearner:
    def __init__(self, config: dict[str, Any], observation_space: Any, action_space: Any) -> None:
        self.config = config
        seed = config["seed"]
        if seed is not None:
            torch.manual_seed(seed)
        self._rng = np.random.default_rng(seed)
        use_gpu = config["num_gpus_per_learner"] > 0 and torch.cuda.is_available()
        if config["num_gpus_per_learner"] > 0 and not use_gpu:
            warnings.warn(
                "num_gpus_per_learner > 0 but PyTorch sees no GPU: the learner runs on the CPU",
                stacklevel=2,
            )
        self.device = torch.device("cuda" if use_gpu else "cpu")
        if not use_gpu:
            # As many threads as the process's CPUs: more spin-wait and crawl on a busy machine.
            torch.set_num_threads(max(1, int(config["num_cpus_for_main_process"])))
        self.module: Any = self.build_module(observation_space, action_space).to(self.device)
        self._lr = Scheduler(config["lr"], "lr")
        self.optimizer = self.build_optimizer()

    def build_module(self, observation_space: Any, action_space: Any) -> Any:
        """The module to train; an algorithm's learner returns its own."""
        return TorchRLModule(observation_space, action_space, self.config["model"])

    def build_optimizer(self) -> torch.optim.Optimizer:
        """Adam on the module's parameters, fused (an update is many small steps, each faster
        as one kernel); an algorithm's learner may choose another."""
        return torch.optim.Adam(self.module.parameters(), lr=self._lr.value(0), fused=True)

    def get_weights(self) -> dict[str, np.ndarray]:
        return get_weights(self.module)

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        set_weights(self.module, weights)

    def get_state(self) -> dict[str, Any]:
        return {"weights": self.get_weights(), "optimizer": self.optimizer.state_dict()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.set_weights(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])

    def set_lr(self, timestep: int) -> float:
        lr = self._lr.value(timestep)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}

    def minibatches(self, size: int, minibatch_size: int) -> Iterator[np.ndarray]:
        """Indices of one epoch's minibatches, in the seeded learner's random order."""
        order = self._rng.permutation(size)
        for start in range(0, size, minibatch_size):
            yield order[start : start + minibatch_size]

    def apply_gradients(self, loss: torch.Tensor) -> float:
        """One optimizer step; the gradients' global norm before clipping."""
        self.optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        return self.step()

    def step(self) -> float:
        """An optimizer step with the gradients the parameters hold, clipped to ``grad_clip``
        (global norm); their norm before clipping."""
        clip = self.config["grad_clip"]
        norm = torch.nn.utils.clip_grad_norm_(
            self.module.parameters(), clip if clip is not None else float("inf")
        )
        self.optimizer.step()
        return float(norm)
