"""The radial transformation of appendix A: psi, the map g^-1, and the trainable wrapper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from icml17.core.curvature import HessianOperator
from icml17.sharpness.models import mlp
from icml17.sharpness.radial import Radial, RadialReparam, psi, psi_inverse, radial_map, radial_map_inverse
from icml17.sharpness.transforms import TransformError

DELTA, RHO, R_HAT = 2.0, 1.5, 0.1
CE = nn.functional.cross_entropy


def test_psi_is_a_continuous_increasing_bijection_with_inverse():
    r = torch.linspace(0, 5, 5001, dtype=torch.float64)
    s = psi(r, DELTA, RHO, R_HAT)
    assert torch.all(s[1:] > s[:-1])
    assert torch.allclose(
        psi(torch.tensor([R_HAT, DELTA], dtype=torch.float64), DELTA, RHO, R_HAT),
        torch.tensor([RHO, DELTA], dtype=torch.float64),
    )
    assert (s[1:] - s[:-1]).max() < 20 * (r[1] - r[0])  # no jumps: slope at most rho / r_hat = 15
    assert torch.allclose(psi_inverse(s, DELTA, RHO, R_HAT), r, atol=1e-12)


def test_map_is_identity_outside_the_ball_and_uniform_scaling_inside():
    g = torch.Generator().manual_seed(0)
    center = torch.randn(20, generator=g, dtype=torch.float64)
    for _ in range(20):
        u = torch.randn(20, generator=g, dtype=torch.float64)
        u /= u.norm()
        far = center + 3.0 * u
        assert torch.equal(radial_map(far, center, DELTA, RHO, R_HAT), far)
        near = center + 0.05 * u
        assert torch.allclose(radial_map(near, center, DELTA, RHO, R_HAT), center + RHO / R_HAT * 0.05 * u)
        mid = center + 1.0 * u
        back = radial_map(radial_map_inverse(mid, center, DELTA, RHO, R_HAT), center, DELTA, RHO, R_HAT)
        assert torch.allclose(back, mid, atol=1e-12)


def _setup():
    torch.manual_seed(0)
    model = mlp((6, 5, 3)).double()
    g = torch.Generator().manual_seed(1)
    return model, torch.randn(40, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (40,), generator=g)


def test_wrapper_preserves_outputs_and_scales_the_hessian_at_the_centre():
    model, x, y = _setup()
    rep = Radial(DELTA, RHO, R_HAT)(model)
    with torch.no_grad():
        assert torch.allclose(rep.model(x), model(x), rtol=0, atol=1e-12)
    H = HessianOperator(model, CE, (x, y)).dense()
    H_eta = HessianOperator(rep.model, CE, (x, y)).dense()
    assert torch.isfinite(H_eta).all()
    assert torch.allclose(H_eta, (RHO / R_HAT) ** 2 * H, rtol=1e-9, atol=1e-10)


def test_far_minimum_keeps_its_curvature_and_the_wrapper_trains():
    model, x, y = _setup()
    center = {n: p.detach() + 10.0 for n, p in model.named_parameters()}  # farther than delta
    wrapped = RadialReparam(model, center, DELTA, RHO, R_HAT)
    assert [n for n, p in wrapped.named_parameters() if p.requires_grad] == ["eta"]
    H = HessianOperator(model, CE, (x, y)).dense()
    assert torch.allclose(HessianOperator(wrapped, CE, (x, y)).dense(), H, atol=1e-10, rtol=1e-9)
    opt = torch.optim.SGD(wrapped.parameters(), lr=0.5)
    before = CE(wrapped(x), y).item()
    for _ in range(5):
        opt.zero_grad()
        CE(wrapped(x), y).backward()
        opt.step()
    assert CE(wrapped(x), y).item() < before


def test_bad_radii_are_refused():
    with pytest.raises(TransformError, match="rho, r_hat in"):
        Radial(1.0, 1.5, 0.1)
    with pytest.raises(TransformError):
        Radial(-1.0, 0.5, 0.1)
