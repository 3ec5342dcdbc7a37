"""DQN's learner: the Q-module, its target copy, and the TD update on replayed minibatches
(PyTorch). An iteration's gradient steps run as one call: the target network's Q-values of
every replayed next observation come from one forward pass (the target does not move within
the call); with double Q, each step's online forward over the next observations runs without
gradients."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ember.rllib.core.learner.torch_learner import TorchLearner
from ember.rllib.core.rl_module.torch_rl_module import get_weights, set_weights

_LOSSES = {"huber": F.smooth_l1_loss, "mse": F.mse_loss}


class DQNTorchLearner(TorchLearner):
    def __init__(self, config: dict[str, Any], observation_space: Any, action_space: Any) -> None:
        super().__init__(config, observation_space, action_space)
        self.target = copy.deepcopy(self.module)
        self.target.requires_grad_(False)
        self._loss = _LOSSES[config["td_error_loss_fn"]]

    def build_module(self, observation_space: Any, action_space: Any) -> Any:
        from ember.rllib.algorithms.dqn.torch.default_dqn_torch_rl_module import (
            DefaultDQNTorchRLModule,
        )

        c = self.config
        return DefaultDQNTorchRLModule(
            observation_space, action_space, c["model"], bool(c["dueling"])
        )

    def td_targets(
        self,
        rewards: torch.Tensor,
        discounts: torch.Tensor,
        terminateds: torch.Tensor,
        next_q_target: torch.Tensor,
        next_q_online: torch.Tensor | None,
    ) -> torch.Tensor:
        """``r + gamma^k * Q'(s', a')`` (0 after a termination), where ``a'`` is the online
        network's best action with ``double_q`` (``next_q_online``), else the target's."""
        if next_q_online is None:
            best = next_q_target.max(dim=-1).values
        else:
            best = next_q_target.gather(-1, next_q_online.argmax(dim=-1, keepdim=True)).squeeze(-1)
        return rewards + discounts * (1.0 - terminateds) * best

    def update(
        self, batch: dict[str, np.ndarray], num_steps: int, timestep: int
    ) -> dict[str, float]:
        """``num_steps`` gradient steps, one per consecutive ``train_batch_size`` rows of
        ``batch``."""
        c = self.config
        lr = self.set_lr(timestep)
        t = self.tensors(batch)
        terminateds = t["terminateds"].float()
        size = c["train_batch_size"]
        with torch.no_grad():
            next_q_target = self.target.forward_train(t["next_obs"])
        steps: list[torch.Tensor] = []
        norms: list[float] = []
        for i in range(num_steps):
            rows = slice(i * size, (i + 1) * size)
            obs = t["obs"][rows]
            next_online = None
            if c["double_q"]:  # without gradients: the backward pass covers obs only
                with torch.no_grad():
                    next_online = self.module.forward_train(t["next_obs"][rows])
            q = self.module.forward_train(obs).gather(-1, t["actions"][rows, None]).squeeze(-1)
            target = self.td_targets(
                t["rewards"][rows],
                t["discounts"][rows],
                terminateds[rows],
                next_q_target[rows],
                next_online,
            )
            loss = self._loss(q, target)
            norms.append(self.apply_gradients(loss))
            q = q.detach()
            steps.append(
                torch.stack([loss.detach(), q.mean(), (q - target).abs().mean(), q.max(), q.min()])
            )
        per_step = torch.stack(steps)
        loss_mean, q_mean, td_mean = per_step[:, :3].mean(dim=0).tolist()
        return {
            "qf_loss": loss_mean,
            "qf_mean": q_mean,
            "qf_max": float(per_step[:, 3].max()),
            "qf_min": float(per_step[:, 4].min()),
            "td_error_mean": td_mean,
            "gradients_default_optimizer_global_norm": float(np.mean(norms)),
            "num_gradient_steps": float(num_steps),
            "default_optimizer_learning_rate": lr,
        }

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """Move the target network's parameters towards the online one's (``tau`` 1 copies
        them); buffers are copied (an integer one cannot be blended)."""
        with torch.no_grad():
            pairs = zip(self.target.parameters(), self.module.parameters(), strict=True)
            for target, online in pairs:
                target.mul_(1.0 - tau).add_(online, alpha=tau)
            for target, online in zip(self.target.buffers(), self.module.buffers(), strict=True):
                target.copy_(online)

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "target_weights": get_weights(self.target)}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        set_weights(self.target, state["target_weights"])
