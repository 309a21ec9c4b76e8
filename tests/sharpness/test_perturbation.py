"""Adaptive sharpness (worst and average case) against closed forms and a brute-force search, in float64."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from icml17.sharpness.perturbation import (
    apgd_checkpoints,
    average_case_sharpness,
    perturbation_scale,
    worst_case_sharpness,
)

MSE = nn.functional.mse_loss


def _quadratic(least_squares):
    """A linear model at its least-squares minimum: L(theta + d) - L(theta) = d^T H d / 2 exactly, with
    H = 2 [X 1]^T [X 1] / n, and C = diag(|theta|)."""
    model, x, y = least_squares(n=64, d=3)
    xb = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
    H = 2 * xb.T @ xb / len(x)
    c = torch.cat([model.weight.detach().reshape(-1), model.bias.detach()]).abs()
    return model, x, y, c[:, None] * H * c[None, :]


def test_checkpoints_follow_the_auto_pgd_schedule():
    # p: 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99, 1.05 -> ceil(20 p)
    assert apgd_checkpoints(20) == [5, 9, 12, 14, 16, 18, 19, 20]


def test_l2_worst_case_of_a_quadratic_is_half_rho_squared_lambda_max(least_squares):
    model, x, y, A = _quadratic(least_squares)
    rho = 0.3
    expected = 0.5 * rho**2 * float(torch.linalg.eigvalsh(A)[-1])
    got = worst_case_sharpness(model, MSE, (x, y), rho=rho, norm="l2", steps=60).value
    assert got == pytest.approx(expected, rel=1e-6)
    assert worst_case_sharpness(model, MSE, (x, y), rho=rho, norm="l2").value <= expected * (1 + 1e-12)


def test_linf_worst_case_of_a_quadratic_is_the_best_vertex(least_squares):
    # a convex quadratic's maximum over a box is at a vertex: enumerate the 2^4 vertices
    model, x, y, A = _quadratic(least_squares)
    rho = 0.2
    vertices = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=4)), dtype=torch.float64) * rho
    at_vertex = 0.5 * torch.einsum("vi,ij,vj->v", vertices, A, vertices)
    one = worst_case_sharpness(model, MSE, (x, y), rho=rho, norm="linf").value
    # one start ends at a vertex, a local maximum: a lower bound; restarts find the best vertex
    assert float((at_vertex - one).abs().min()) < 1e-12 * one and one <= float(at_vertex.max())
    best = worst_case_sharpness(model, MSE, (x, y), rho=rho, norm="linf", restarts=8).value
    assert best == pytest.approx(float(at_vertex.max()), rel=1e-12)


def test_average_case_of_a_quadratic_is_half_rho_squared_trace(least_squares):
    # E[(rho C z)^T H (rho C z)] / 2 = rho^2 tr(C H C) / 2; the Monte Carlo mean within 4 standard errors
    model, x, y, A = _quadratic(least_squares)
    rho, samples = 0.1, 4000
    expected = 0.5 * rho**2 * float(A.trace())
    stderr = 0.5 * rho**2 * math.sqrt(2 * float((A @ A).trace()) / samples)
    got = average_case_sharpness(model, MSE, (x, y), rho=rho, samples=samples).value
    assert abs(got - expected) < 4 * stderr


def _tiny_net(w1: float, b1: float, w2: float, b2: float) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1)).double()
    with torch.no_grad():
        for p, v in zip(net.parameters(), (w1, b1, w2, b2)):
            p.fill_(v)
    return net


def _grid_loss(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The tiny net's MSE for a batch of parameter vectors (P, 4): w2 relu(w1 x + b1) + b2."""
    w1, b1, w2, b2 = theta.T[:, :, None]
    return ((w2 * torch.relu(w1 * x + b1) + b2 - y) ** 2).mean(1)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_auto_pgd_reaches_a_fine_grid_search_on_a_tiny_relu_net(norm):
    """The measure's 20 Auto-PGD steps against the maximum over a 41^4 grid of the box (or of the ball).

    In the box one start reaches the grid's maximum; on the l2 ball this loss has several local maxima and one
    start ends at a lesser one (0.037 against 0.057): the value is a lower bound, and 8 restarts find the top.
    """
    x = torch.linspace(-1, 1, 9, dtype=torch.float64)
    theta = torch.tensor([1.5, -0.2, 0.8, 0.1], dtype=torch.float64)
    y = 0.8 * torch.relu(1.5 * x - 0.2) + 0.1 + 0.05 * torch.sin(7 * x)  # near, not at, a minimum
    rho = 0.3
    axis = torch.linspace(-rho, rho, 41, dtype=torch.float64)
    u = torch.cartesian_prod(axis, axis, axis, axis)  # (41^4, 4)
    if norm == "l2":
        u = u[u.norm(dim=1) <= rho]
    base = float(_grid_loss(theta[None], x, y))
    grid_max = float(_grid_loss(theta + theta.abs() * u, x, y).max()) - base
    net, data = _tiny_net(*theta.tolist()), (x[:, None], y[:, None])
    one = worst_case_sharpness(net, MSE, data, rho=rho, norm=norm)
    assert one.loss == pytest.approx(base, rel=1e-12)
    assert one.value <= 1.02 * grid_max  # a lower bound, up to the grid's resolution
    if norm == "linf":
        assert one.value >= 0.99 * grid_max  # as good as the grid, to 1%
    else:
        assert one.value < 0.8 * grid_max  # a lesser local maximum (the reason for restarts)
    best = worst_case_sharpness(net, MSE, data, rho=rho, norm=norm, restarts=8).value
    assert 0.99 * grid_max <= best <= 1.02 * grid_max


def test_adaptive_value_is_invariant_under_a_diagonal_rescaling_and_standard_is_not(trained_net, tiny_data):
    from icml17.sharpness.transforms import AlphaScaling

    net = trained_net()
    scaled = AlphaScaling([100.0, 0.01])(net).model
    ce = nn.functional.cross_entropy
    for fn, kw in (
        (worst_case_sharpness, {"norm": "linf", "rho": 0.05}),
        (worst_case_sharpness, {"norm": "l2", "rho": 0.2}),
        (average_case_sharpness, {"rho": 0.1}),
    ):
        a, b = fn(net, ce, tiny_data, **kw).value, fn(scaled, ce, tiny_data, **kw).value
        assert b == pytest.approx(a, rel=1e-9)
        s_a = fn(net, ce, tiny_data, adaptive=False, **kw).value
        s_b = fn(scaled, ce, tiny_data, adaptive=False, **kw).value
        assert abs(s_b / s_a - 1) > 0.1


def test_scale_and_errors(least_squares):
    model, x, y = least_squares()
    from icml17.core.curvature import ModelLoss

    loss = ModelLoss(model, MSE, (x, y))
    theta = torch.cat([model.weight.detach().reshape(-1), model.bias.detach()])
    assert torch.allclose(perturbation_scale(loss, eta=0.01), theta.abs() + 0.01)
    assert torch.equal(perturbation_scale(loss, adaptive=False), torch.ones_like(theta))
    with pytest.raises(ValueError, match="norm"):
        worst_case_sharpness(model, MSE, (x, y), rho=0.1, norm="l1")
    with pytest.raises(ValueError, match="rho"):
        worst_case_sharpness(model, MSE, (x, y), rho=0.0)
