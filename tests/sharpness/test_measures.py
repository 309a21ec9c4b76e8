"""Flatness measures: adaptive invariance, epsilon-sharpness vs its quadratic model, Keskar's box, errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from icml17.core.curvature import HessianOperator, ModelLoss, lanczos
from icml17.core.functional import flatten
from icml17.sharpness.adaptive import AdaptiveHessian
from icml17.sharpness.ball import ball_sharpness, second_order_sharpness
from icml17.sharpness.keskar import keskar_sharpness, random_subspace
from icml17.sharpness.measures import MeasureOptions, measure
from icml17.sharpness.models import mlp
from icml17.sharpness.transforms import AlphaScaling, PerNeuronScaling

CE = nn.functional.cross_entropy
MSE = nn.functional.mse_loss


def _trained_net(x: torch.Tensor, y: torch.Tensor, steps: int = 200) -> nn.Sequential:
    torch.manual_seed(0)
    model = mlp((6, 8, 3)).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(steps):
        opt.zero_grad()
        CE(model(x), y).backward()
        opt.step()
    return model


@pytest.mark.parametrize("transform", [AlphaScaling([1e-2, 1e2]), AlphaScaling([30.0, 1 / 30]), PerNeuronScaling(2.0)],
                         ids=str)
def test_adaptive_measures_are_invariant_under_diagonal_rescaling(transform, tiny_data):
    model = _trained_net(*tiny_data)
    names = ["adaptive_lambda_max", "adaptive_trace", "adaptive_sharpness", "lambda_max"]
    opts = MeasureOptions(probes=16, ascent_steps=5, lanczos_tol=1e-8)
    before = measure(model, CE, tiny_data, names, options=opts)
    after = measure(transform(model).model, CE, tiny_data, names, options=opts)
    for name in names[:3]:
        assert math.isclose(after[name], before[name], rel_tol=1e-4), name
    assert not math.isclose(after["lambda_max"], before["lambda_max"], rel_tol=0.1)  # the Euclidean one moves


def test_adaptive_hessian_is_diag_theta_h_diag_theta(tiny_data):
    model = _trained_net(*tiny_data)
    op = HessianOperator(model, CE, tiny_data)
    d = flatten(op.point).abs()
    dense = AdaptiveHessian(op).matmat(torch.eye(op.size, dtype=torch.float64))
    assert torch.allclose(dense, d[:, None] * op.dense() * d[None, :], atol=1e-12)


def _least_squares(n: int = 64, d: int = 4, orthogonal: bool = False):
    """A linear model at its least-squares minimum: the MSE loss is exactly quadratic in (w, b)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    if orthogonal:  # centred, orthogonal columns with distinct norms: the Hessian is diagonal
        x = torch.linalg.qr(x - x.mean(0))[0] * torch.arange(1, d + 1, dtype=torch.float64) * 3
    y = x @ torch.randn(d, 1, generator=g, dtype=torch.float64) + 0.3 * torch.randn(n, 1, generator=g,
                                                                                     dtype=torch.float64)
    model = nn.Linear(d, 1).double()
    sol = torch.linalg.lstsq(torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], 1), y).solution
    with torch.no_grad():
        model.weight.copy_(sol[:d].T)
        model.bias.copy_(sol[d])
    return model, x, y


def test_epsilon_sharpness_matches_the_quadratic_value_at_a_minimum():
    model, x, y = _least_squares()
    loss = ModelLoss(model, MSE, (x, y))
    lam = lanczos(HessianOperator(model, MSE, (x, y)), 1, tol=1e-10).eigenvalues[0]
    base = float(loss.loss())
    for eps in (1e-2, 1e-1, 1.0):
        s = ball_sharpness(loss, eps, steps=50, random_starts=2)
        assert math.isclose(s.value, second_order_sharpness(lam, base, eps), rel_tol=1e-3)


def test_epsilon_sharpness_at_least_its_second_order_trend_on_a_relu_net(tiny_data):
    model = _trained_net(*tiny_data, steps=400)
    op = HessianOperator(model, CE, tiny_data)
    top = lanczos(op, 1, tol=1e-8)
    v = top.eigenvectors[:, 0]
    base = float(op.loss.loss())
    ratios = []
    for eps in (1e-3, 1e-2, 3e-2):
        s = ball_sharpness(op.loss, eps, steps=10, directions=(v, -v))
        ratios.append(s.value / second_order_sharpness(top.eigenvalues[0], base, eps))
    assert all(r >= 0.99 for r in ratios)


def test_keskar_box_reaches_the_vertex_maximum_of_a_separable_quadratic():
    model, x, y = _least_squares(orthogonal=True)
    loss = ModelLoss(model, MSE, (x, y))
    theta = flatten(loss.point)
    H = HessianOperator(model, MSE, (x, y)).dense()
    assert torch.allclose(H, torch.diag(torch.diag(H)), atol=1e-10)  # separable: every vertex is a maximum
    bound = 1e-2 * (theta.abs() + 1)
    base = float(loss.loss())
    # brute force over all vertices of the box: the maximum of a convex quadratic is at a vertex
    best = max(float(loss.loss({"weight": (theta + torch.tensor(s, dtype=torch.float64) * bound)[:4].view(1, 4),
                                "bias": (theta + torch.tensor(s, dtype=torch.float64) * bound)[4:]}))
               for s in itertools.product((-1.0, 1.0), repeat=theta.numel()))
    expected = 100 * (best - base) / (1 + base)
    for method in ("lbfgsb", "projected"):
        k = keskar_sharpness(loss, 1e-2, method=method, maxiter=20)
        assert math.isclose(k.value, expected, rel_tol=1e-6), method


def test_keskar_random_subspace_is_at_most_the_full_box_value_scale(tiny_data):
    model = _trained_net(*tiny_data)
    loss = ModelLoss(model, CE, tiny_data)
    n = flatten(loss.point).numel()
    A = random_subspace(n, 10, seed=0)
    k = keskar_sharpness(loss, 1e-2, subspace=A)
    assert k.p == 10 and k.value >= 0 and math.isfinite(k.value)
    with pytest.raises(ValueError, match="rows"):
        keskar_sharpness(loss, 1e-2, subspace=random_subspace(n + 1, 10))


def test_measure_records_mode_dtype_and_rejects_bad_input(tiny_data):
    model = _trained_net(*tiny_data).float()
    out = measure(model, CE, tiny_data, ["loss", "lambda_max"], dtype=torch.float64)
    assert out["mode"] == "eval" and out["dtype"] == "float64" and out["n_hvp"] > 0
    with pytest.raises(ValueError, match="unknown measure"):
        measure(model, CE, tiny_data, ["flatness"])
    with pytest.raises(ValueError, match="requires_grad"):
        measure(mlp((6, 3)).requires_grad_(False), CE, tiny_data, ["lambda_max"])
    with pytest.raises(ValueError, match="empty"):
        measure(model, CE, (tiny_data[0][:0], tiny_data[1][:0]), ["trace"])
