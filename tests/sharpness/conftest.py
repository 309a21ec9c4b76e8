"""Shared fixtures for the sharpness tests: one torch thread, tiny float64 data, and two small models at known
points (a ReLU net trained on the tiny data; a linear model at its exact least-squares minimum)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from icml17.sharpness.models import mlp


@pytest.fixture
def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (32,), generator=g)


@pytest.fixture
def trained_net(tiny_data):
    """``trained_net(steps=200)``: a (6, 8, 3) ReLU MLP after ``steps`` full-batch SGD steps on ``tiny_data``."""

    def train(steps: int = 200) -> nn.Sequential:
        x, y = tiny_data
        torch.manual_seed(0)
        model = mlp((6, 8, 3)).double()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return model

    return train


@pytest.fixture
def least_squares():
    """``least_squares(n=64, d=4, orthogonal=False) -> (model, x, y)``: a linear model at its least-squares
    minimum, where the MSE loss is exactly quadratic in (w, b)."""

    def make(n: int = 64, d: int = 4, orthogonal: bool = False):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, d, generator=g, dtype=torch.float64)
        if orthogonal:  # centred, orthogonal columns with distinct norms: the Hessian is diagonal
            x = torch.linalg.qr(x - x.mean(0))[0] * torch.arange(1, d + 1, dtype=torch.float64) * 3
        y = x @ torch.randn(d, 1, generator=g, dtype=torch.float64) + 0.3 * torch.randn(
            n, 1, generator=g, dtype=torch.float64
        )
        model = nn.Linear(d, 1).double()
        sol = torch.linalg.lstsq(torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], 1), y).solution
        with torch.no_grad():
            model.weight.copy_(sol[:d].T)
            model.bias.copy_(sol[d])
        return model, x, y

    return make
