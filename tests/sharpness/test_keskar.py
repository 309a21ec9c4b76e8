"""Keskar et al.'s box sharpness (``icml17.sharpness.keskar``): the box maximum of a separable quadratic, and
random subspaces."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from icml17.core.curvature import HessianOperator, ModelLoss
from icml17.core.functional import flatten
from icml17.sharpness.keskar import keskar_sharpness, random_subspace

CE = nn.functional.cross_entropy
MSE = nn.functional.mse_loss


def test_keskar_box_reaches_the_vertex_maximum_of_a_separable_quadratic(least_squares):
    model, x, y = least_squares(orthogonal=True)
    loss = ModelLoss(model, MSE, (x, y))
    theta = flatten(loss.point)
    H = HessianOperator(model, MSE, (x, y)).dense()
    assert torch.allclose(H, torch.diag(torch.diag(H)), atol=1e-10)  # separable: every vertex is a maximum
    bound = 1e-2 * (theta.abs() + 1)
    base = float(loss.loss())
    # brute force over all vertices of the box: the maximum of a convex quadratic is at a vertex
    best = max(
        float(
            loss.loss(
                {
                    "weight": (theta + torch.tensor(s, dtype=torch.float64) * bound)[:4].view(1, 4),
                    "bias": (theta + torch.tensor(s, dtype=torch.float64) * bound)[4:],
                }
            )
        )
        for s in itertools.product((-1.0, 1.0), repeat=theta.numel())
    )
    expected = (best - base) / (1 + base)  # a fraction; Keskar et al.'s phi is 100 times this
    for method in ("lbfgsb", "projected"):
        k = keskar_sharpness(loss, 1e-2, method=method, maxiter=20)
        assert math.isclose(k.value, expected, rel_tol=1e-6), method
        assert math.isclose(k.percent, 100 * expected, rel_tol=1e-6), method


def test_keskar_random_subspace_is_at_most_the_full_box_value_scale(tiny_data, trained_net):
    model = trained_net()
    loss = ModelLoss(model, CE, tiny_data)
    n = flatten(loss.point).numel()
    A = random_subspace(n, 10, seed=0)
    k = keskar_sharpness(loss, 1e-2, subspace=A)
    assert k.p == 10 and k.value >= 0 and math.isfinite(k.value)
    with pytest.raises(ValueError, match="rows"):
        keskar_sharpness(loss, 1e-2, subspace=random_subspace(n + 1, 10))


def test_keskar_ten_lbfgsb_iterations_give_a_lower_bound_and_say_they_did_not_converge():
    # a small trained ReLU net: at eps 1e-2, Keskar et al.'s 10 L-BFGS-B iterations stop far below the box's
    # maximum; run to convergence, the optimiser says so and finds more (every value is a loss actually reached)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 20, generator=g, dtype=torch.float64), torch.randint(0, 5, (64,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5)).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        CE(model(x), y).backward()
        opt.step()
    loss = ModelLoss(model, CE, (x, y))
    short = keskar_sharpness(loss, 1e-2, maxiter=10)
    full = keskar_sharpness(loss, 1e-2, maxiter=2000)
    assert not short.converged and short.iterations == 10
    assert full.converged and full.iterations < 2000
    assert short.value < 0.5 * full.value  # a loose lower bound
    assert not keskar_sharpness(loss, 1e-2, method="projected", maxiter=5).converged  # no convergence test
