"""Jiang et al.'s sigma search and flatness measures on a two-weight classifier whose perturbed error has a closed
form (the normal distribution's CDF)."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch
from torch import nn

from icml17.sharpness.pacbayes import pacbayes_flatness, sigma_search

CE = nn.functional.cross_entropy
WA, WB = -0.4, 0.8  # logits (WA x, WB x): class 1 wins for x > 0 by a margin (WB - WA) x


def _classifier():
    """Logits (WA x, WB x) for x in [0.5, 1.5], all labelled 1: the training error is 0, and the perturbed
    network misclassifies every point at once, when (WB + u_b) - (WA + u_a) < 0."""
    net = nn.Linear(1, 2, bias=False).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[WA], [WB]]))
    x = torch.linspace(0.5, 1.5, 16, dtype=torch.float64)[:, None]
    return net, (x, torch.ones(16, dtype=torch.long))


def _level(error: float, std_of_difference) -> float:
    """The noise level at which P(u_b - u_a < -(WB - WA)) = error, given the std of u_b - u_a as a function of it."""
    z = -NormalDist().inv_cdf(error)  # (WB - WA) / std = z
    lo, hi = 1e-9, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (WB - WA) / std_of_difference(mid) > z else (lo, mid)
    return lo


def test_sigma_search_bisects_to_the_target_and_flags_the_interval_edge():
    found = sigma_search(lambda s: s**2, target=0.1, tolerance=0.01)
    assert abs(found.sigma**2 - 0.1) < 0.01 and not found.at_bound
    # the bisection's midpoints: 1, 0.5, 0.25, 0.375, 0.3125 (0.0977: within 0.01 of 0.1)
    assert found.sigma == 0.3125 and found.steps == 5
    never = sigma_search(lambda s: 0.0)
    assert never.at_bound and never.sigma == pytest.approx(2 - 2 / 2**15)
    with pytest.raises(ValueError):
        sigma_search(lambda s: s, target=0.0)


def test_pacbayes_flatness_matches_the_closed_form_level():
    # u_b - u_a ~ N(0, 2 sigma^2): the deviation is Phi(-(WB - WA) / (sqrt(2) sigma)); the search stops within
    # 0.01 of 0.1, so sigma' lies between the levels of deviation 0.09 and 0.11, widened by 3 standard errors of
    # the Monte Carlo mean (0.005 with 4000 draws)
    net, data = _classifier()
    got = pacbayes_flatness(net, CE, data, kind="pacbayes", samples=4000)
    std = lambda s: math.sqrt(2) * s
    assert got.criterion == "error" and not got.at_bound
    assert _level(0.075, std) <= got.level <= _level(0.125, std)
    assert got.value == pytest.approx(1 / got.level**2)


def test_magnitude_aware_flatness_matches_the_closed_form_level():
    # u_i ~ N(0, alpha^2 w_i^2 + eps^2): u_b - u_a has variance alpha^2 (WA^2 + WB^2) + 2 eps^2
    net, data = _classifier()
    eps = 0.05
    got = pacbayes_flatness(net, CE, data, kind="pacbayes_mag", samples=4000, eps=eps)
    std = lambda a: math.sqrt(a**2 * (WA**2 + WB**2) + 2 * eps**2)
    assert _level(0.075, std) <= got.level <= _level(0.125, std)


def test_magnitude_aware_sharpness_finds_the_flipping_box():
    # the worst u in |u_i| <= alpha |w_i| + eps flips every point once alpha (|WA| + |WB|) + 2 eps >= WB - WA:
    # the deviation jumps from 0 to 1 there, never meets 0.1 +- 0.01, and the bisection closes on that alpha
    net, data = _classifier()
    eps = 0.05
    got = pacbayes_flatness(net, CE, data, kind="mag_sharpness", eps=eps, ascent_steps=4)  # 4 reach a corner
    flip = (WB - WA - 2 * eps) / (abs(WA) + abs(WB))
    assert got.steps == 15 and abs(got.level - flip) <= 2 * 2.0 / 2**15


def test_loss_criterion_without_class_labels():
    net = nn.Linear(2, 1).double()
    x = torch.randn(8, 2, dtype=torch.float64)
    got = pacbayes_flatness(net, nn.functional.mse_loss, (x, net(x).detach()), target=0.05, samples=4)
    assert got.criterion == "loss" and got.value > 0
    with pytest.raises(ValueError, match="class scores"):
        pacbayes_flatness(net, nn.functional.mse_loss, (x, net(x).detach()), criterion="error")


@pytest.mark.parametrize("eps", [0.0, 1e-3])
def test_magnitude_aware_sharpness_is_invariant_to_alpha_scaling_only_without_the_offset(eps):
    # logits (c1, c2) * relu(a x), x > 0, every label 1: every point flips once (c2 + u2) - (c1 + u1) < 0, whatever
    # u_a (|u_a| < a). The worst u in the box |u_i| <= level |w_i| + eps flips them from
    # level = (c2 - c1 - 2 eps) / (|c1| + |c2|). T_alpha (a -> alpha a, c -> c / alpha) turns this into
    # (c2 - c1 - 2 alpha eps) / (|c1| + |c2|): unchanged with eps = 0, falling with alpha for Jiang et al.'s eps.
    c1, c2 = WA, WB
    x = torch.linspace(0.5, 1.5, 16, dtype=torch.float64)[:, None]
    data = (x, torch.ones(16, dtype=torch.long))
    for alpha in (1.0, 10.0, 100.0):
        net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.ReLU(), nn.Linear(1, 2, bias=False)).double()
        with torch.no_grad():
            net[0].weight.fill_(alpha)
            net[2].weight.copy_(torch.tensor([[c1], [c2]]) / alpha)
        got = pacbayes_flatness(net, CE, data, kind="mag_sharpness", eps=eps, ascent_steps=4)
        flip = (c2 - c1 - 2 * alpha * eps) / (abs(c1) + abs(c2))
        assert got.steps == 15 and abs(got.level - flip) <= 2 * 2.0 / 2**15, (alpha, got.level, flip)
