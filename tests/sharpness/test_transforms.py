"""Function-preserving transforms: outputs unchanged, the Hessian transforms as D^-1 H D^-1, refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from icml17.core.curvature import HessianOperator
from icml17.core.functional import flatten
from icml17.sharpness.models import mlp, small_cnn
from icml17.sharpness.transforms import AlphaScaling, InputMap, PerNeuronScaling, TransformError

CE = nn.functional.cross_entropy


def _net(dtype: torch.dtype = torch.float64) -> nn.Sequential:
    torch.manual_seed(0)
    return mlp((6, 5, 4, 3)).to(dtype)


TRANSFORMS = [AlphaScaling([0.1, 3.0, 1 / 0.3]), AlphaScaling.pair(1e-2, 3), PerNeuronScaling(2.0, seed=3)]


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("transform", TRANSFORMS + ["standardize", "whiten"], ids=str)
def test_mlp_outputs_preserved(transform, dtype, tol, tiny_data):
    x = tiny_data[0].to(dtype) * 3 + 1
    if transform == "standardize":
        transform = InputMap.standardize(x)
    elif transform == "whiten":
        transform = InputMap.whiten(x, eps=1e-3)
    model = _net(dtype)
    rep = transform(model)
    with torch.no_grad():
        ref, out = model(x), rep.model(rep.inputs(x))
    assert (out - ref).abs().max() / ref.abs().max().clamp_min(1) < tol
    assert not torch.equal(flatten(dict(rep.model.named_parameters())), flatten(dict(model.named_parameters())))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("transform", [AlphaScaling([5.0, 0.5, 0.4]), PerNeuronScaling(1.5)], ids=str)
def test_cnn_outputs_preserved(transform, dtype, tol):
    torch.manual_seed(0)
    model = nn.Sequential(*small_cnn((3, 4))[:4], nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4, 10)).to(dtype)
    x = torch.randn(5, 1, 28, 28, dtype=dtype)
    rep = transform(model)
    with torch.no_grad():
        ref, out = model(x), rep.model(x)
    assert (out - ref).abs().max() / ref.abs().max().clamp_min(1) < tol


def test_bias_of_hidden_layer_k_scales_by_the_product_of_alphas():
    model = _net()
    alphas = [0.5, 4.0, 0.5]
    rep = AlphaScaling(alphas)(model)
    for idx, k in zip((1, 3, 5), range(3)):
        cum = torch.tensor(alphas[: k + 1]).prod().item()
        assert torch.allclose(rep.model[idx].bias, model[idx].bias * cum)
        assert torch.allclose(rep.model[idx].weight, model[idx].weight * alphas[k])
    assert torch.allclose(rep.model[5].bias, model[5].bias)  # output bias unchanged (product = 1)


@pytest.mark.parametrize("transform", TRANSFORMS, ids=str)
def test_hessian_transforms_as_d_inverse_h_d_inverse(transform, tiny_data):
    model = _net()
    rep = transform(model)
    H = HessianOperator(model, CE, tiny_data).dense()
    H_new = HessianOperator(rep.model, CE, tiny_data).dense()
    d = flatten({n: rep.scale[n] for n, _ in model.named_parameters()})
    assert torch.allclose(H_new, H / d[:, None] / d[None, :], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("act", [nn.Tanh, nn.GELU, nn.Sigmoid])
def test_refuses_non_homogeneous_activations(act):
    model = nn.Sequential(nn.Linear(4, 3), act(), nn.Linear(3, 2))
    with pytest.raises(TransformError, match=act.__name__):
        AlphaScaling([2.0, 0.5])(model)
    with pytest.raises(TransformError, match="positively homogeneous"):
        PerNeuronScaling()(model)


def test_refuses_batch_norm_bad_alphas_and_wrong_architectures():
    bn = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(TransformError, match="BatchNorm1d"):
        AlphaScaling([2.0, 0.5])(bn)
    with pytest.raises(TransformError, match="product of the alphas must be 1"):
        AlphaScaling([2.0, 2.0, 1.0])(_net())
    with pytest.raises(TransformError, match="3 parametrized layers"):
        AlphaScaling([2.0, 0.5])(_net())
    with pytest.raises(TransformError, match="positive"):
        AlphaScaling([-1.0, -1.0])
    with pytest.raises(TransformError, match="nn.Sequential"):
        AlphaScaling([2.0, 0.5])(nn.Linear(3, 3))
    with pytest.raises(TransformError, match="first Linear layer"):
        InputMap(torch.eye(784))(small_cnn())
    with pytest.raises(TransformError, match="6 inputs|takes 6"):
        InputMap(torch.eye(5))(_net())


def test_alpha_scaling_keeps_float64_alphas_exact():
    """alpha = 0.1 is not a float32 number: a float64 model must be scaled by the float64 value."""
    import torch

    from icml17.sharpness.models import mlp as make_mlp
    from icml17.sharpness.transforms import AlphaScaling

    m = make_mlp((4, 3, 2)).double()
    rep = AlphaScaling.pair(0.1, 2)(m).model
    with torch.no_grad():
        assert torch.equal(rep[1].weight, m[1].weight * 0.1)
        assert torch.equal(rep[3].weight, m[3].weight * 10.0)
