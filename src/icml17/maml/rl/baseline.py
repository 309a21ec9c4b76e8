"""Returns, the reference code's linear feature baseline, and advantages.

rllab's ``LinearFeatureBaseline``, fitted per task on that task's rollouts: features
``[clip(o, -10, 10), clip(o, -10, 10)^2, t, t^2, t^3, 1]`` with ``t = step / 100``, regressed on the
discounted returns-to-go by ridge-regularised least squares (ridge 1e-5, raised tenfold until the solution is
finite). Advantages are generalised advantage estimates (Schulman et al. 2016) on that baseline; with
``lambda = 1`` (the reference setting) they are returns minus baseline. As the reference code's samplers do,
advantages are then centred and scaled per task (``normalize=True``).

All functions are batched over the leading (task, row) axes of padded tensors with a step ``mask``. In packed
rollouts a row holds several consecutive paths (``starts`` marks their first steps): returns stop at a path's
end and the time feature restarts at each path's first step, so both layouts give each path the same numbers.

Everything runs on the rollouts' device, the least-squares solve included: the (K, F, F) normal equations are
formed there from the (K, R * T, F) features, and moving them to the CPU for a solve of F = 2 obs_dim + 4 unknowns
per task would add two copies and a wait for each fit to save a few microseconds (``benchmarks/gpu/maml_rl.py``
times the fit on both). The solve waits for the device once, to see whether every task's solution is finite.
"""

from __future__ import annotations

import torch

from icml17.maml.rl.sampler import Rollouts


def _continues(mask: torch.Tensor, starts: torch.Tensor | None) -> torch.Tensor:
    """1 where step t + 1 belongs to the same path as step t: (..., T)."""
    nxt = torch.cat([mask[..., 1:], torch.zeros_like(mask[..., :1])], -1)
    if starts is not None:
        nxt = nxt * (1 - torch.cat([starts[..., 1:], torch.zeros_like(starts[..., :1])], -1))
    return nxt


def discounted_returns(
    rewards: torch.Tensor, mask: torch.Tensor, gamma: float, starts: torch.Tensor | None = None
) -> torch.Tensor:
    """sum over the rest of the path of gamma^(t'-t) r_t', on valid steps: (..., T)."""
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    carry = _continues(mask, starts)
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = (rewards[..., t] + gamma * running * carry[..., t]) * mask[..., t]
        out[..., t] = running
    return out


def time_in_path(starts: torch.Tensor) -> torch.Tensor:
    """Steps since the last path start (0 on a start): (..., T), from ``starts`` (..., T)."""
    index = torch.arange(starts.shape[-1], device=starts.device).expand(starts.shape)
    last_start = torch.cummax(torch.where(starts > 0, index, torch.zeros_like(index)), -1).values
    return index - last_start


def features(obs: torch.Tensor, starts: torch.Tensor | None = None) -> torch.Tensor:
    """rllab's baseline features of obs (..., T, d): (..., T, 2d + 4); the time within the path."""
    o = obs.clamp(-10, 10)
    if starts is None:
        t = torch.arange(obs.shape[-2], dtype=obs.dtype, device=obs.device).expand(*obs.shape[:-1])
    else:
        t = time_in_path(starts).to(obs.dtype)
    t = (t / 100.0)[..., None]
    return torch.cat([o, o**2, t, t**2, t**3, torch.ones_like(t)], -1)


def fit_linear_baseline(
    rollouts: Rollouts, returns: torch.Tensor, ridge: float = 1e-5, max_tries: int = 5
) -> torch.Tensor:
    """Per-task least-squares baseline values on the rollouts' own steps: (K, R, T), zero on padding."""
    x = features(rollouts.obs, rollouts.starts).double()  # (K, R, T, F)
    m = rollouts.mask.double()[..., None]
    k, f = x.shape[0], x.shape[-1]
    x = (x * m).reshape(k, -1, f)  # padded rows are zero: they do not count
    y = (returns.double() * rollouts.mask.double()).reshape(k, -1, 1)
    xtx, xty = x.transpose(1, 2) @ x, x.transpose(1, 2) @ y
    eye = torch.eye(f, dtype=torch.float64, device=x.device)
    reg = torch.full((k, 1, 1), ridge, dtype=torch.float64, device=x.device)
    coef = torch.linalg.lstsq(xtx + reg * eye, xty).solution  # every task at the first ridge
    todo = ~torch.isfinite(coef).all(1).all(1)
    if todo.any():  # rare: raise the ridge tenfold for the tasks whose solution is not finite
        coef = torch.where(todo[:, None, None], torch.zeros_like(coef), coef)
        for _ in range(max_tries - 1):
            reg = reg * 10
            sol = torch.linalg.lstsq(xtx[todo] + reg[todo] * eye, xty[todo]).solution
            ok = torch.isfinite(sol).all(1).all(1)
            idx = todo.nonzero().squeeze(1)
            coef[idx[ok]] = sol[ok]
            todo[idx[ok]] = False
            if not todo.any():
                break
    values = (x @ coef).reshape(rollouts.mask.shape)
    return values.to(returns.dtype) * rollouts.mask


def advantages(
    rollouts: Rollouts, gamma: float = 0.99, gae_lambda: float = 1.0, normalize: bool = True
) -> torch.Tensor:
    """GAE(gamma, lambda) on the per-task linear baseline, (K, R, T), zero on padding; centred and scaled per
    task over its valid steps when ``normalize``."""
    mask, starts = rollouts.mask, rollouts.starts
    returns = discounted_returns(rollouts.rewards, mask, gamma, starts)
    values = fit_linear_baseline(rollouts, returns)
    if gae_lambda == 1.0:
        adv = (returns - values) * mask
    else:
        next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], -1) * _continues(mask, starts)
        deltas = (rollouts.rewards + gamma * next_values - values) * mask
        adv = discounted_returns(deltas, mask, gamma * gae_lambda, starts)
    if normalize:
        n = mask.sum((1, 2), keepdim=True).clamp_min(1)
        mean = adv.sum((1, 2), keepdim=True) / n
        var = (((adv - mean) * mask) ** 2).sum((1, 2), keepdim=True) / n
        adv = (adv - mean) / (var.sqrt() + 1e-8) * mask
    return adv
