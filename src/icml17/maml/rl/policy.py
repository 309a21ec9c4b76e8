"""The Gaussian MLP policy of the reference code: two hidden layers of 100 ReLU units give the action mean;
a learned, state-independent log standard deviation (initialised to 0) gives the spread.

The module is only ever run through :func:`torch.func.functional_call` on a parameter dict, so adapted
parameters (per task, batched by ``vmap``) are plain dicts and the module itself is never rewritten.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]


class GaussianMLPPolicy(nn.Module):
    """A diagonal Gaussian policy: an MLP gives the action mean, a learned state-independent log-std the spread.

    Args:
        obs_dim: observation size.
        act_dim: action size.
        hidden: hidden layer widths (ReLU); the reference's is (100, 100).

    Examples:
        >>> import torch
        >>> policy = GaussianMLPPolicy(obs_dim=2, act_dim=2)
        >>> mean, log_std = policy(torch.zeros(5, 2))
        >>> mean.shape, log_std.tolist()       # the log-std starts at 0: unit spread
        (torch.Size([5, 2]), [0.0, 0.0])
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (100, 100)):
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, act_dim))
        self.mean = nn.Sequential(*layers)
        self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.obs_dim, self.act_dim = obs_dim, act_dim

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The action distribution's parameters.

        Args:
            obs: observations, (..., obs_dim).

        Returns:
            ``(mean, log_std)``: (..., act_dim) and (act_dim,).
        """
        return self.mean(obs), self.log_std


def xavier_init_(policy: GaussianMLPPolicy) -> GaussianMLPPolicy:
    """rllab's initialisation of the mean network: Glorot-uniform weights, zero biases (log-std untouched)."""
    with torch.no_grad():
        for layer in policy.mean:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                layer.bias.zero_()
    return policy


def params_of(policy: nn.Module) -> Params:
    return {k: v for k, v in policy.named_parameters()}


def distribution(policy: nn.Module, params: Params, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (..., A) and log-std broadcast to it, of the policy with ``params``."""
    mean, log_std = functional_call(policy, params, (obs,))
    return mean, log_std.expand_as(mean)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log N(actions; mean, diag(exp(2 log_std))), summed over the action axis: (...)."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def log_prob(policy: nn.Module, params: Params, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    mean, log_std = distribution(policy, params, obs)
    return gaussian_log_prob(mean, log_std, actions)


def gaussian_kl(
    mean_p: torch.Tensor, log_std_p: torch.Tensor, mean_q: torch.Tensor, log_std_q: torch.Tensor
) -> torch.Tensor:
    """KL(p || q) of diagonal Gaussians, summed over the action axis: (...)."""
    var_p, var_q = torch.exp(2 * log_std_p), torch.exp(2 * log_std_q)
    return (log_std_q - log_std_p + (var_p + (mean_p - mean_q) ** 2) / (2 * var_q) - 0.5).sum(-1)


def check_action_size(policy: GaussianMLPPolicy, act_dim: int, obs_dim: int, env: str) -> None:
    """Refuse a policy whose input or action size does not fit the environment (the message says which)."""
    from icml17.maml.rl.envs import EnvError

    if policy.act_dim != act_dim:
        raise EnvError(
            f"the policy outputs {policy.act_dim} action numbers but {env} takes {act_dim}; build the "
            f"policy with act_dim={act_dim}"
        )
    if policy.obs_dim != obs_dim:
        raise EnvError(
            f"the policy reads {policy.obs_dim} observation numbers but {env} gives {obs_dim}; build "
            f"the policy with obs_dim={obs_dim}"
        )
