"""The policy-and-value network an algorithm trains, built from Ray's ``model`` config
(``fcnet_hiddens``, ``fcnet_activation``, ``vf_share_layers``) or from a user's own
``torch.nn.Module`` class (``model={"custom_model": MyNet, "custom_model_config": {...}}``).

A user's network is called as ``MyNet(observation_space, action_space, **custom_model_config)``
and its ``forward(obs)`` returns ``(action_dist_inputs, value)``: logits for a Discrete action
space, means and log-stds (concatenated) for a Box."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from ember.rllib.algorithms.algorithm_config import MODEL_DEFAULTS

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "linear": nn.Identity,
}


def activation(name: str | None) -> type[nn.Module]:
    key = "linear" if name is None else name.lower()
    if key not in _ACTIVATIONS:
        raise ValueError(
            f"model: unknown fcnet_activation {name!r}; choose one of {sorted(_ACTIVATIONS)}"
        )
    return _ACTIVATIONS[key]


def mlp(sizes: list[int], act: type[nn.Module], out: int, out_gain: float) -> nn.Sequential:
    """Hidden layers with orthogonal init (gain sqrt(2)), then a linear head of ``out`` units
    whose small gain keeps the initial policy near uniform."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [_init(nn.Linear(n_in, n_out), np.sqrt(2)), act()]
    layers.append(_init(nn.Linear(sizes[-1], out), out_gain))
    return nn.Sequential(*layers)


def _init(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def num_dist_inputs(action_space: gym.Space[Any]) -> int:
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    return 2 * int(np.prod(action_space.shape or ()))


class FCNet(nn.Module):
    """Ray's default fully connected network: separate policy and value MLPs, or one shared
    body with two heads (``vf_share_layers``)."""

    def __init__(
        self,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
        config: dict[str, Any],
    ) -> None:
        super().__init__()
        obs_dim = int(np.prod(observation_space.shape or ()))
        hiddens = [int(h) for h in config["fcnet_hiddens"]]
        act = activation(config["fcnet_activation"])
        self._box = isinstance(action_space, gym.spaces.Box)
        n_out = num_dist_inputs(action_space) // (2 if self._box else 1)
        self._shared = bool(config["vf_share_layers"]) and bool(hiddens)
        self.pi: nn.Module
        self.vf: nn.Module
        if self._shared:
            self.body = mlp([obs_dim, *hiddens[:-1]], act, hiddens[-1], np.sqrt(2))
            self.body_act = act()
            self.pi = _init(nn.Linear(hiddens[-1], n_out), 0.01)
            self.vf = _init(nn.Linear(hiddens[-1], 1), 1.0)
        else:
            self.pi = mlp([obs_dim, *hiddens], act, n_out, 0.01)
            self.vf = mlp([obs_dim, *hiddens], act, 1, 1.0)
        if self._box:
            self.log_std = nn.Parameter(torch.zeros(n_out))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs = obs.reshape(obs.shape[0], -1)
        if self._shared:
            features = self.body_act(self.body(obs))
            out, value = self.pi(features), self.vf(features)
        else:
            out, value = self.pi(obs), self.vf(obs)
        if self._box:
            out = torch.cat([out, self.log_std.expand_as(out)], dim=-1)
        return out, value.squeeze(-1)


def build_net(
    config: dict[str, Any],
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    default: Callable[[], nn.Module],
) -> nn.Module:
    """The user's ``custom_model`` (checked to be a torch module) if the config names one,
    else the algorithm's ``default`` network."""
    custom = config["custom_model"]
    if custom is None:
        return default()
    net = custom(observation_space, action_space, **config["custom_model_config"])
    if not isinstance(net, nn.Module):
        raise ValueError(
            f"model: custom_model {custom!r} built a {type(net).__name__}, not a torch.nn.Module"
        )
    return net


class TorchRLModule(nn.Module):
    """A network and the action distribution its outputs parametrize, with RLlib's three
    forward passes: ``forward_inference`` (greedy), ``forward_exploration`` (sampling) and
    ``forward_train`` (distribution and value, with gradients)."""

    def __init__(
        self,
        observation_space: gym.Space[Any],
        action_space: gym.Space[Any],
        model_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        config = {**MODEL_DEFAULTS, **(model_config or {})}
        self.observation_space = observation_space
        self.action_space = action_space
        self.net = build_net(
            config,
            observation_space,
            action_space,
            lambda: FCNet(observation_space, action_space, config),
        )

    def action_dist(self, dist_inputs: torch.Tensor) -> Distribution:
        """The distribution the network's outputs parametrize, unchecked: the network made
        them, and checking every sample costs more than the small network's forward pass."""
        if isinstance(self.action_space, gym.spaces.Discrete):
            return Categorical(logits=dist_inputs, validate_args=False)
        mean, log_std = dist_inputs.chunk(2, dim=-1)
        normal = Normal(mean, log_std.exp(), validate_args=False)
        return Independent(normal, 1, validate_args=False)

    def forward_train(self, obs: torch.Tensor) -> tuple[Distribution, torch.Tensor]:
        dist_inputs, value = self.net(obs)
        return self.action_dist(dist_inputs), value

    @torch.no_grad()
    def forward_exploration(
        self, obs: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sampled actions, their log-probabilities and the state values."""
        dist_inputs, value = self.net(obs)
        dist = self.action_dist(dist_inputs)
        if isinstance(self.action_space, gym.spaces.Discrete):
            probs = torch.softmax(dist_inputs, dim=-1)
            actions = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        else:
            mean, log_std = dist_inputs.chunk(2, dim=-1)
            noise = torch.randn(mean.shape, generator=generator)
            actions = mean + log_std.exp() * noise
        return actions, dist.log_prob(actions), value

    @torch.no_grad()
    def forward_inference(self, obs: torch.Tensor) -> torch.Tensor:
        """Greedy actions: the most likely one, or the Gaussian's mean."""
        dist_inputs: torch.Tensor = self.net(obs)[0]
        if isinstance(self.action_space, gym.spaces.Discrete):
            return dist_inputs.argmax(dim=-1)
        return dist_inputs.chunk(2, dim=-1)[0]

    @torch.no_grad()
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        value: torch.Tensor = self.net(obs)[1]
        return value


def get_weights(module: nn.Module) -> dict[str, np.ndarray]:
    """The module's parameters as numpy arrays (CPU), ready for the object store."""
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def set_weights(module: nn.Module, weights: dict[str, np.ndarray]) -> None:
    module.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})  # copies
