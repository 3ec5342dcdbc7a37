"""DQN's Q-network: the shared MLP builder's body with one Q-value head, or (``dueling``) a
state-value head and an advantage head combined as ``Q = V + A - mean(A)`` (Wang et al.
2016), which identifies V and A and keeps their sum unchanged.

A user's network (``model={"custom_model": MyNet, ...}``) is called as
``MyNet(observation_space, action_space, **custom_model_config)`` and its ``forward(obs)``
returns the Q-values, ``[batch, num_actions]``."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ember.rllib.algorithms.algorithm_config import MODEL_DEFAULTS
from ember.rllib.core.rl_module.torch_rl_module import activation, build_net, mlp


class QNet(nn.Module):
    def __init__(
        self,
        observation_space: gym.Space[Any],
        num_actions: int,
        config: dict[str, Any],
        dueling: bool = False,
    ) -> None:
        super().__init__()
        obs_dim = int(np.prod(observation_space.shape or ()))
        hiddens = [int(h) for h in config["fcnet_hiddens"]]
        act = activation(config["fcnet_activation"])
        self.dueling = dueling
        if not self.dueling:
            self.q = mlp([obs_dim, *hiddens], act, num_actions, 1.0)
            return
        if hiddens:
            self.body: nn.Module = nn.Sequential(
                mlp([obs_dim, *hiddens[:-1]], act, hiddens[-1], np.sqrt(2)), act()
            )
        else:
            self.body = nn.Identity()
        width = hiddens[-1] if hiddens else obs_dim
        self.value = mlp([width], act, 1, 1.0)
        self.advantage = mlp([width], act, num_actions, 1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        obs = obs.reshape(obs.shape[0], -1)
        if not self.dueling:
            q: torch.Tensor = self.q(obs)
            return q
        features = self.body(obs)
        advantage: torch.Tensor = self.advantage(features)
        value: torch.Tensor = self.value(features)
        return value + advantage - advantage.mean(dim=-1, keepdim=True)


class DefaultDQNTorchRLModule(nn.Module):
    """Q-values and RLlib's forward passes: ``forward_inference`` is greedy,
    ``forward_exploration`` epsilon-greedy, ``forward_train`` the Q-values with gradients.

    ``epsilon`` (set by the algorithm from its schedule) is a buffer, so it travels with the
    weights: runners, evaluation and a restored checkpoint explore as training last did."""

    def __init__(
        self,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
        model_config: dict[str, Any] | None = None,
        dueling: bool = False,
    ) -> None:
        super().__init__()
        config = {**MODEL_DEFAULTS, **(model_config or {})}
        self.observation_space = observation_space
        self.action_space = action_space
        assert isinstance(action_space, gym.spaces.Discrete)  # DQNConfig.validate_spaces
        self.num_actions = int(action_space.n)
        self.epsilon: torch.Tensor
        self.register_buffer("epsilon", torch.zeros(()))
        self.net = build_net(
            config,
            observation_space,
            action_space,
            lambda: QNet(observation_space, self.num_actions, config, dueling),
        )

    def set_epsilon(self, value: float) -> None:
        self.epsilon.fill_(value)

    def forward_train(self, obs: torch.Tensor) -> torch.Tensor:
        q: torch.Tensor = self.net(obs)
        return q

    @torch.no_grad()
    def forward_inference(self, obs: torch.Tensor) -> torch.Tensor:
        """Greedy actions: the largest Q-value."""
        return self.forward_train(obs).argmax(dim=-1)

    @torch.no_grad()
    def forward_exploration(
        self, obs: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Epsilon-greedy actions and the Q-values: each action is uniformly random with
        probability ``epsilon``, else greedy."""
        q = self.forward_train(obs)
        actions = q.argmax(dim=-1)
        if self.epsilon > 0:
            size = (q.shape[0],)
            explore = torch.rand(size, generator=generator) < self.epsilon
            random = torch.randint(self.num_actions, size, generator=generator)
            actions = torch.where(explore.to(q.device), random.to(q.device), actions)
        return actions, q
