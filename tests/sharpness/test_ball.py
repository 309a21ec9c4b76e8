"""Epsilon-sharpness, the maximum loss increase in a Euclidean ball (``icml17.sharpness.ball``), against its
second-order model."""

from __future__ import annotations

import math

from torch import nn

from icml17.core.curvature import HessianOperator, ModelLoss, lanczos
from icml17.sharpness.ball import ball_sharpness, second_order_sharpness

CE = nn.functional.cross_entropy
MSE = nn.functional.mse_loss


def test_epsilon_sharpness_matches_the_quadratic_value_at_a_minimum(least_squares):
    model, x, y = least_squares()
    loss = ModelLoss(model, MSE, (x, y))
    lam = lanczos(HessianOperator(model, MSE, (x, y)), 1, tol=1e-10).eigenvalues[0]
    base = float(loss.loss())
    for eps in (1e-2, 1e-1, 1.0):
        s = ball_sharpness(loss, eps, steps=50, random_starts=2)
        assert math.isclose(s.value, second_order_sharpness(lam, base, eps), rel_tol=1e-3)


def test_epsilon_sharpness_at_least_its_second_order_trend_on_a_relu_net(tiny_data, trained_net):
    model = trained_net(steps=400)
    op = HessianOperator(model, CE, tiny_data)
    top = lanczos(op, 1, tol=1e-8)
    v = top.eigenvectors[:, 0]
    base = float(op.loss.loss())
    ratios = []
    for eps in (1e-3, 1e-2, 3e-2):
        s = ball_sharpness(op.loss, eps, steps=10, directions=(v, -v))
        ratios.append(s.value / second_order_sharpness(top.eigenvalues[0], base, eps))
    assert all(r >= 0.99 for r in ratios)
