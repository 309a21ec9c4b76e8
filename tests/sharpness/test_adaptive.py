"""Adaptive (reparametrization-aware) curvature, ``icml17.sharpness.adaptive``: diag(|theta|) H diag(|theta|), and
the adaptive measures are invariant under the rescalings that move the Euclidean ones."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from icml17.core.curvature import HessianOperator
from icml17.core.functional import flatten
from icml17.sharpness.adaptive import AdaptiveHessian
from icml17.sharpness.measures import MeasureOptions, measure
from icml17.sharpness.transforms import AlphaScaling, PerNeuronScaling

CE = nn.functional.cross_entropy


@pytest.mark.parametrize(
    "transform", [AlphaScaling([1e-2, 1e2]), AlphaScaling([30.0, 1 / 30]), PerNeuronScaling(2.0)], ids=str
)
def test_adaptive_measures_are_invariant_under_diagonal_rescaling(transform, tiny_data, trained_net):
    model = trained_net()
    names = ["adaptive_lambda_max", "adaptive_trace", "adaptive_sharpness", "lambda_max"]
    opts = MeasureOptions(probes=16, ascent_steps=5, lanczos_tol=1e-8)
    before = measure(model, CE, tiny_data, names, options=opts)
    after = measure(transform(model).model, CE, tiny_data, names, options=opts)
    for name in names[:3]:
        assert math.isclose(after[name], before[name], rel_tol=1e-4), name
    assert not math.isclose(after["lambda_max"], before["lambda_max"], rel_tol=0.1)  # the Euclidean one moves


def test_adaptive_hessian_is_diag_theta_h_diag_theta(tiny_data, trained_net):
    model = trained_net()
    op = HessianOperator(model, CE, tiny_data)
    d = flatten(op.point).abs()
    dense = AdaptiveHessian(op).matmat(torch.eye(op.size, dtype=torch.float64))
    assert torch.allclose(dense, d[:, None] * op.dense() * d[None, :], atol=1e-12)
