"""Returns, the reference code's linear feature baseline, and advantages.

rllab's ``LinearFeatureBaseline``, fitted per task on that task's rollouts: features
``[clip(o, -10, 10), clip(o, -10, 10)^2, t, t^2, t^3, 1]`` with ``t = step / 100``, regressed on the
discounted returns-to-go by ridge-regularised least squares (ridge 1e-5, raised tenfold until the solution is
finite). Advantages are generalised advantage estimates (Schulman et al. 2016) on that baseline; with
``lambda = 1`` (the reference setting) they are returns minus baseline. As the reference code's samplers do,
advantages are then centred and scaled per task (``normalize=True``).

All functions are batched over the leading (task, rollout) axes of padded tensors with a step ``mask``.
"""

from __future__ import annotations

import torch

from icml17.maml.rl.sampler import Rollouts


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """sum_{t' >= t} gamma^(t'-t) r_t' on valid steps: (..., T)."""
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = (rewards[..., t] + gamma * running) * mask[..., t]
        out[..., t] = running
    return out


def features(obs: torch.Tensor) -> torch.Tensor:
    """rllab's baseline features of obs (..., T, d): (..., T, 2d + 4)."""
    o = obs.clamp(-10, 10)
    t = torch.arange(obs.shape[-2], dtype=obs.dtype) / 100.0
    t = t.expand(*obs.shape[:-1])[..., None]
    return torch.cat([o, o ** 2, t, t ** 2, t ** 3, torch.ones_like(t)], -1)


def fit_linear_baseline(rollouts: Rollouts, returns: torch.Tensor, ridge: float = 1e-5,
                        max_tries: int = 5) -> torch.Tensor:
    """Per-task least-squares baseline values on the rollouts' own steps: (K, R, T), zero on padding."""
    x = features(rollouts.obs).double()                       # (K, R, T, F)
    m = rollouts.mask.double()[..., None]
    k, f = x.shape[0], x.shape[-1]
    x = (x * m).reshape(k, -1, f)                             # padded rows are zero: they do not count
    y = (returns.double() * rollouts.mask.double()).reshape(k, -1, 1)
    xtx, xty = x.transpose(1, 2) @ x, x.transpose(1, 2) @ y
    eye = torch.eye(f, dtype=torch.float64)
    reg = torch.full((k, 1, 1), ridge, dtype=torch.float64)
    coef = torch.zeros(k, f, 1, dtype=torch.float64)
    todo = torch.ones(k, dtype=torch.bool)
    for _ in range(max_tries):
        sol = torch.linalg.lstsq(xtx[todo] + reg[todo] * eye, xty[todo]).solution
        ok = torch.isfinite(sol).all(1).all(1)
        idx = todo.nonzero().squeeze(1)
        coef[idx[ok]] = sol[ok]
        todo[idx[ok]] = False
        if not todo.any():
            break
        reg = reg * 10
    values = (x @ coef).reshape(rollouts.mask.shape)
    return values.to(returns.dtype) * rollouts.mask


def advantages(rollouts: Rollouts, gamma: float = 0.99, gae_lambda: float = 1.0, normalize: bool = True
               ) -> torch.Tensor:
    """GAE(gamma, lambda) on the per-task linear baseline, (K, R, T), zero on padding; centred and scaled per
    task over its valid steps when ``normalize``."""
    mask = rollouts.mask
    returns = discounted_returns(rollouts.rewards, mask, gamma)
    values = fit_linear_baseline(rollouts, returns)
    if gae_lambda == 1.0:
        adv = (returns - values) * mask
    else:
        next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], -1) * \
            torch.cat([mask[..., 1:], torch.zeros_like(mask[..., :1])], -1)
        deltas = (rollouts.rewards + gamma * next_values - values) * mask
        adv = discounted_returns(deltas, mask, gamma * gae_lambda)
    if normalize:
        n = mask.sum((1, 2), keepdim=True).clamp_min(1)
        mean = adv.sum((1, 2), keepdim=True) / n
        var = (((adv - mean) * mask) ** 2).sum((1, 2), keepdim=True) / n
        adv = (adv - mean) / (var.sqrt() + 1e-8) * mask
    return adv
