"""The reference networks: output shapes, TF-style SAME padding, feature sizes and initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from icml17.maml.models import BatchNormOffset, SamePad2d, build_maml_model, is_norm_parameter


@pytest.mark.parametrize("size, expected", [(28, [14, 7, 4, 2]), (84, [42, 21, 11, 6])])
def test_stride2_same_padding_matches_tensorflow(size, expected):
    x, sides = torch.zeros(1, 1, size, size), []
    for _ in range(4):
        x = nn.functional.conv2d(SamePad2d(3, 2)(x), torch.zeros(1, 1, 3, 3), stride=2)
        sides.append(x.shape[-1])
    assert sides == expected
    padded = SamePad2d(3, 2)(torch.ones(1, 1, 28, 28))  # odd total padding goes to the bottom/right, as in TF
    assert padded.shape[-1] == 29 and padded[0, 0, 0, 0] == 1 and padded[0, 0, -1, -1] == 0


def test_model_shapes_and_parameter_counts():
    om = build_maml_model("conv4-omniglot", ways=5)
    assert om(torch.rand(7, 1, 28, 28)).shape == (7, 5) and om.head.in_features == 64
    mi = build_maml_model("conv4-miniimagenet", ways=5, in_channels=3, image_size=84)
    assert mi(torch.rand(3, 3, 84, 84)).shape == (3, 5) and mi.head.in_features == 32 * 5 * 5
    mlp = build_maml_model("mlp")
    assert mlp(torch.rand(4, 1)).shape == (4, 1)
    assert sum(p.numel() for p in mlp.parameters()) == 1 * 40 + 40 + 40 * 40 + 40 + 40 + 1


def test_reference_initialisation():
    torch.manual_seed(0)
    mlp = build_maml_model("mlp")
    w = mlp.layers[1].weight
    assert w.abs().max() <= 0.02 and 0.005 < w.std() < 0.012 and mlp.layers[1].bias.abs().sum() == 0
    om = build_maml_model("conv4-omniglot", ways=20)
    conv = om.blocks[1].conv.weight  # Glorot uniform: bound sqrt(6 / (fan_in + fan_out))
    assert conv.abs().max() <= math.sqrt(6 / (64 * 9 + 64 * 9)) and om.blocks[1].conv.bias.abs().sum() == 0
    assert 0.8 < om.head.weight.std() < 1.2  # tf.random_normal head for Omniglot


def test_batch_norm_uses_batch_statistics_with_offset_only():
    bn = BatchNormOffset(3)
    with torch.no_grad():
        bn.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
    x = torch.randn(8, 3, 4, 4) * 5 + 2
    y = bn(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.tensor([1.0, 2.0, 3.0]), atol=1e-5, rtol=0)
    assert [n for n, _ in bn.named_parameters()] == ["bias"] and not list(bn.buffers())
    model = build_maml_model("conv4-omniglot", ways=5)
    norm = [n for n, _ in model.named_parameters() if is_norm_parameter(n, model)]
    assert norm == [f"blocks.{i}.norm.bias" for i in range(4)]
