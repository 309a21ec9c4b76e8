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
    return Rollouts(
        torch.randn(k, r, t, d, generator=g, dtype=torch.float64) * 8,
        torch.randn(k, r, t, 2, generator=g, dtype=torch.float64),
        torch.randn(k, r, t, generator=g, dtype=torch.float64) * mask,
        mask,
    )


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
            rows.append(np.concatenate([o, o**2, t, t**2, t**3, np.ones((n, 1))], 1))
            targets.append(returns[k, j, :n].numpy())
        x, y = np.concatenate(rows), np.concatenate(targets)
        coef = np.linalg.solve(x.T @ x + 1e-5 * np.eye(x.shape[1]), x.T @ y)
        fitted = np.concatenate([values[k, j, : int(ro.mask[k, j].sum())].numpy() for j in range(3)])
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


def _pack(ro: Rollouts, rows_per_lane: int) -> tuple[Rollouts, list[tuple]]:
    """The same paths laid end to end, ``rows_per_lane`` paths per lane; and where each path step went."""
    k, r, t = ro.mask.shape
    lanes, length = r // rows_per_lane, rows_per_lane * t
    out = Rollouts(
        torch.zeros(k, lanes, length, ro.obs.shape[-1], dtype=ro.obs.dtype),
        torch.zeros(k, lanes, length, ro.actions.shape[-1], dtype=ro.obs.dtype),
        torch.zeros(k, lanes, length, dtype=ro.obs.dtype),
        torch.zeros(k, lanes, length, dtype=ro.obs.dtype),
        torch.zeros(k, lanes, length, dtype=ro.obs.dtype),
    )
    where = []
    for task in range(k):
        for lane in range(lanes):
            pos = 0
            for j in range(lane * rows_per_lane, (lane + 1) * rows_per_lane):
                n = int(ro.mask[task, j].sum())
                sl = slice(pos, pos + n)
                out.obs[task, lane, sl], out.actions[task, lane, sl] = ro.obs[task, j, :n], ro.actions[task, j, :n]
                out.rewards[task, lane, sl], out.mask[task, lane, sl] = ro.rewards[task, j, :n], 1.0
                out.starts[task, lane, pos] = 1.0
                where += [((task, j, i), (task, lane, pos + i)) for i in range(n)]
                pos += n
    return out, where


def test_packed_lanes_give_every_path_the_numbers_it_has_alone():
    """Returns, baseline features, GAE and normalised advantages of each step do not depend on whether its path has
    a row of its own or follows other paths in a lane (rllab computes them path by path)."""
    ro = _rollouts(r=4, t=7)
    ro.mask[1, 2, 2:] = 0  # paths of several lengths, so later paths start mid-lane
    ro.rewards *= ro.mask
    packed, where = _pack(ro, 2)
    for gamma, lam in ((0.99, 1.0), (0.9, 0.5)):
        a, b = advantages(ro, gamma, lam), advantages(packed, gamma, lam)
        ra = discounted_returns(ro.rewards, ro.mask, gamma)
        rb = discounted_returns(packed.rewards, packed.mask, gamma, packed.starts)
        fa, fb = features(ro.obs), features(packed.obs, packed.starts)
        for src, dst in where:
            assert abs(a[src] - b[dst]) < 1e-9 and abs(ra[src] - rb[dst]) < 1e-9
            assert torch.allclose(fa[src], fb[dst])
    assert torch.allclose(ro.mean_returns(), packed.mean_returns())
