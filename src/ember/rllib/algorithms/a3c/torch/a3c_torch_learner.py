"""The actor-critic loss that A3C's env runners and A2C's learner both minimize, and the
learner that applies gradients (its own, or ones a runner computed) with clipping and Adam."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.distributions import Distribution

from ember.rllib.core.learner.torch_learner import TorchLearner
from ember.rllib.core.rl_module.torch_rl_module import TorchRLModule
from ember.rllib.utils.postprocessing import advantages_batch


def postprocess(fragments: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, np.ndarray]:
    """What the loss reads: observations, actions, advantages and value targets (GAE;
    ``use_gae=False`` is lambda 1, the discounted return minus the value), one flat batch."""
    lambda_ = config["lambda"] if config["use_gae"] else 1.0
    return advantages_batch(fragments, ("obs", "actions"), config["gamma"], lambda_)


def a3c_loss(
    dist: Distribution,
    values: torch.Tensor,
    batch: dict[str, torch.Tensor],
    vf_loss_coeff: float,
    entropy_coeff: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Policy gradient with the advantages, plus ``vf_loss_coeff`` times the squared error
    of the value, minus ``entropy_coeff`` times the entropy; all means over the batch."""
    policy_loss = -(dist.log_prob(batch["actions"]) * batch["advantages"]).mean()
    vf_loss = ((values - batch["targets"]) ** 2).mean()
    entropy = dist.entropy().mean()
    total = policy_loss + vf_loss_coeff * vf_loss - entropy_coeff * entropy
    return total, {
        "total_loss": total.item(),
        "policy_loss": policy_loss.item(),
        "vf_loss": vf_loss.item(),
        "entropy": entropy.item(),
    }


def module_loss(
    module: TorchRLModule, batch: dict[str, torch.Tensor], config: dict[str, Any]
) -> tuple[torch.Tensor, dict[str, float]]:
    """``a3c_loss`` of a ``TorchRLModule`` on a postprocessed batch of tensors."""
    dist, values = module.forward_train(batch["obs"])
    return a3c_loss(dist, values, batch, config["vf_loss_coeff"], config["entropy_coeff"])


class A3CTorchLearner(TorchLearner):
    def apply(self, gradients: dict[str, np.ndarray], timestep: int) -> dict[str, float]:
        """One optimizer step with gradients a runner computed (by parameter name)."""
        lr = self.set_lr(timestep)
        self.optimizer.zero_grad()
        for name, param in self.module.named_parameters():
            if name in gradients:  # a parameter the loss does not reach has none
                param.grad = torch.tensor(gradients[name], device=self.device)
        return {"gradients_default_optimizer_global_norm": self.step(), **_lr(lr)}

    def update(self, fragments: list[dict[str, Any]], timestep: int) -> dict[str, float]:
        """One optimizer step on the loss of these fragments together (A2C)."""
        lr = self.set_lr(timestep)
        batch = self.tensors(postprocess(fragments, self.config))
        loss, stats = module_loss(self.module, batch, self.config)
        stats["gradients_default_optimizer_global_norm"] = self.apply_gradients(loss)
        return {**stats, **_lr(lr)}


def _lr(lr: float) -> dict[str, float]:
    return {"default_optimizer_learning_rate": lr}
