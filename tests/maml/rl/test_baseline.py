"""Returns and the linear feature baseline against their definitions (an explicit loop, numpy least squares)."""

import numpy as np
import torch

from icml17.maml.rl.baseline import (
    advantages,
    discounted_returns,
    features,
    fit_linear_baseline,
)
from icml17.maml.rl.sampler import Rollouts


def _rollouts(seed=0, k=2, r=3, t=6, d=2):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(k, r, t, dtype=torch.float64)
    mask[0, 1, 4:] = 0
    return Rollouts(torch.randn(k, r, t, d, generator=g, dtype=torch.float64) * 8,
                    torch.randn(k, r, t, 2, generator=g, dtype=torch.float64),
                    torch.randn(k, r, t, generator=g, dtype=torch.float64) * mask, mask)


def test_discounted_returns_match_a_loop():
    ro = _rollouts()
    ro.rewards[ro.mask == 0] = 99.0  # junk on padding must not leak into any return
    got = discounted_returns(ro.rewards, ro.mask, 0.9)
    for idx in np.ndindex(*ro.mask.shape[:2]):
        rew, m = ro.rewards[idx].numpy(), ro.mask[idx].numpy()
        n = int(m.sum())
        expected = [sum(0.9 ** (j - i) * rew[j] for j in range(i, n)) for i in range(n)]
        assert np.allclose(got[idx][:n].numpy(), expected) and (got[idx][n:] == 0).all()


def test_linear_baseline_is_each_tasks_least_squares_fit_on_rllab_features():
    ro = _rollouts()
    returns = discounted_returns(ro.rewards, ro.mask, 0.99)
    values = fit_linear_baseline(ro, returns)
    for k in range(2):
        rows, targets = [], []
        for j in range(3):
            n = int(ro.mask[k, j].sum())
            o = np.clip(ro.obs[k, j, :n].numpy(), -10, 10)
            t = (np.arange(n) / 100.0)[:, None]
            rows.append(np.concatenate([o, o ** 2, t, t ** 2, t ** 3, np.ones((n, 1))], 1))
            targets.append(returns[k, j, :n].numpy())
        x, y = np.concatenate(rows), np.concatenate(targets)
        coef = np.linalg.solve(x.T @ x + 1e-5 * np.eye(x.shape[1]), x.T @ y)
        fitted = np.concatenate([values[k, j, :int(ro.mask[k, j].sum())].numpy() for j in range(3)])
        assert np.allclose(fitted, x @ coef, atol=1e-6)
    assert features(ro.obs).shape[-1] == 2 * 2 + 4


def test_advantages_are_normalised_per_task_and_zero_on_padding():
    ro = _rollouts()
    adv = advantages(ro)
    for k in range(2):
        valid = adv[k][ro.mask[k] > 0]
        assert abs(valid.mean().item()) < 1e-9 and abs(valid.std(unbiased=False).item() - 1) < 1e-6
    assert (adv[ro.mask == 0] == 0).all()


def test_gae_matches_its_definition_per_episode():
    """A = sum_l (gamma lambda)^l delta_{t+l}, delta_t = r_t + gamma V_{t+1} - V_t, V = 0 after the episode's
    last valid step (Schulman et al. 2016), with V the fitted linear baseline."""
    ro = _rollouts()
    ro.rewards[ro.mask == 0] = 99.0
    gamma, lam = 0.9, 0.5
    got = advantages(ro, gamma, lam, normalize=False)
    values = fit_linear_baseline(ro, discounted_returns(ro.rewards, ro.mask, gamma))
    for idx in np.ndindex(*ro.mask.shape[:2]):
        n = int(ro.mask[idx].sum())
        r, v = ro.rewards[idx][:n].numpy(), np.append(values[idx][:n].numpy(), 0.0)
        delta = r + gamma * v[1:] - v[:-1]
        expected = [sum((gamma * lam) ** (j - i) * delta[j] for j in range(i, n)) for i in range(n)]
        assert np.allclose(got[idx][:n].numpy(), expected, atol=1e-9) and (got[idx][n:] == 0).all()
