"""PPO's loss and update on a batch of env-runner fragments (PyTorch)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ember.rllib.core.learner.torch_learner import TorchLearner
from ember.rllib.utils.postprocessing import advantages_batch


class PPOTorchLearner(TorchLearner):
    def __init__(self, config: dict[str, Any], observation_space: Any, action_space: Any) -> None:
        super().__init__(config, observation_space, action_space)
        self.kl_coeff = float(config["kl_coeff"])

    def postprocess(self, batches: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Advantages (GAE, standardized) and value targets per fragment, then one flat
        batch."""
        c = self.config
        lambda_ = c["lambda"] if c["use_gae"] else 1.0
        keys = ("obs", "actions", "action_logp", "vf_preds")
        out = advantages_batch(batches, keys, c["gamma"], lambda_)
        adv = out["advantages"]
        out["advantages"] = ((adv - adv.mean()) / (adv.std() + 1e-8)).astype(np.float32)
        return out

    def update(self, batches: list[dict[str, Any]], timestep: int) -> dict[str, float]:
        c = self.config
        lr = self.set_lr(timestep)
        batch = self.tensors(self.postprocess(batches))
        size = len(batch["advantages"])
        totals: dict[str, float] = {}
        n = 0
        for _ in range(c["num_epochs"]):
            for idx in self.minibatches(size, c["minibatch_size"]):
                mb = {k: v[idx] for k, v in batch.items()}
                loss, stats = self.compute_loss(mb)
                stats["gradients_default_optimizer_global_norm"] = self.apply_gradients(loss)
                for k, v in stats.items():
                    totals[k] = totals.get(k, 0.0) + v
                n += 1
        means = {k: v / n for k, v in totals.items()}
        if c["use_kl_loss"]:  # Ray's adaptive KL coefficient
            if means["mean_kl_loss"] > 2.0 * c["kl_target"]:
                self.kl_coeff *= 1.5
            elif means["mean_kl_loss"] < 0.5 * c["kl_target"]:
                self.kl_coeff *= 0.5
        targets, vf_preds = batch["targets"], batch["vf_preds"]
        var = torch.var(targets)
        means["vf_explained_var"] = float(1 - torch.var(targets - vf_preds) / var) if var else 0.0
        means["curr_kl_coeff"] = self.kl_coeff
        means["default_optimizer_learning_rate"] = lr
        return means

    def compute_loss(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.config
        dist, values = self.module.forward_train(mb["obs"])
        logp = dist.log_prob(mb["actions"])
        ratio = torch.exp(logp - mb["action_logp"])
        adv = mb["advantages"]
        clip = c["clip_param"]
        surrogate = torch.min(adv * ratio, adv * ratio.clamp(1 - clip, 1 + clip))
        vf_loss = (values - mb["targets"]) ** 2
        if c["vf_clip_param"] is not None:  # the prediction moves at most vf_clip_param
            old = mb["vf_preds"]
            clipped = old + (values - old).clamp(-c["vf_clip_param"], c["vf_clip_param"])
            vf_loss = torch.max(vf_loss, (clipped - mb["targets"]) ** 2)
        entropy = dist.entropy()
        # KL(old || new), estimated from the sampled actions' log-ratio (Schulman's k3).
        log_ratio = logp - mb["action_logp"]
        kl = torch.exp(log_ratio) - 1 - log_ratio
        policy_loss = -surrogate.mean()
        total = (
            policy_loss + c["vf_loss_coeff"] * vf_loss.mean() - c["entropy_coeff"] * entropy.mean()
        )
        if c["use_kl_loss"]:
            total = total + self.kl_coeff * kl.mean()
        return total, {
            "total_loss": total.item(),
            "policy_loss": policy_loss.item(),
            "vf_loss": vf_loss.mean().item(),
            "entropy": entropy.mean().item(),
            "mean_kl_loss": kl.mean().item(),
        }
