"""Jacobian test: d output_i / d input_j == 0 exactly for every j not earlier than i in the model's order."""

import pytest
import torch

from pcnn_helpers import make_context, tiny_model


def jacobian_and_ranks(model, context):
    c, s = model.n_channels, model.image_size
    rank = model.order_rank()
    v0 = torch.rand(1, c, s, s, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fn = lambda v: torch.cat([f.params.reshape(-1) for f in model.factors(v, context)])  # noqa: E731
    jac = torch.autograd.functional.jacobian(fn, v0, vectorize=True, strategy="forward-mode").reshape(-1, c * s * s)  # (outputs, inputs)
    color = model.head.output_color()
    own = []
    for f in model.factors(v0, context):
        p, h, w = f.params.shape[1:]
        own.append(rank[color.view(p, 1, 1).expand(p, h, w), f.rows.expand(p, h, w), f.cols.expand(p, h, w)].reshape(-1))
    return jac, torch.cat(own), rank.reshape(-1)


CASES = [  # kind, size, channels, bits, head, condition, base, patch
    ("full", 4, 3, 2, "softmax", "class", 1, 2),
    ("full", 5, 1, 1, "bernoulli", "spatial", 1, 2),
    ("full", 3, 3, 3, "logistic", "text", 1, 2),
    ("a", 4, 3, 2, "softmax", "class", 1, 2),
    ("a", 4, 3, 2, "logistic", "spatial", 1, 2),
    ("a", 6, 1, 1, "bernoulli", "none", 3, 2),
    ("b", 4, 3, 2, "softmax", "text", 1, 2),
    ("b", 4, 3, 3, "logistic", "none", 1, 2),
    ("b", 12, 1, 1, "bernoulli", "spatial", 3, 2),  # K = 3 with 2x2 patches: padded patches
    ("b", 14, 1, 2, "logistic", "class", 7, 4),  # MNIST-like 7 -> 14 with M = 4 (padded to 8)
]


@pytest.mark.parametrize("kind,size,channels,bits,head,condition,base,patch", CASES)
def test_no_output_depends_on_a_later_or_equal_input(kind, size, channels, bits, head, condition, base, patch):
    model = tiny_model(kind, size, channels, bits, head, condition, base, patch)
    jac, own, rank = jacobian_and_ranks(model, make_context(model, 1))
    forbidden = rank[None, :] >= own[:, None]
    assert forbidden.any() and (~forbidden).any()
    assert (jac[forbidden] == 0).all(), f"{int((jac[forbidden] != 0).sum())} forbidden dependencies"
    # not vacuous: a good share of the allowed dependencies are used
    assert (jac[~forbidden] != 0).double().mean() > 0.1


def test_multiscale_groups_see_pixels_below_and_right():
    """Unlike a raster PixelCNN, group 2 depends on group-1 pixels to its right and below (Fig. 2)."""
    model = tiny_model("a", 4, 1, 1, "bernoulli", base=2)
    jac, own, rank = jacobian_and_ranks(model, None)
    c = model.n_channels
    # output for full-res pixel (0, 1) (group 2 at level 1) vs input pixel (2, 2) (group 1, below-right)
    fs = model.factors(torch.zeros(1, c, 4, 4, dtype=torch.float64))
    offset = sum(f.params[0].numel() for f in fs[:1])
    assert (fs[1].name, int(fs[1].rows[0, 0]), int(fs[1].cols[0, 0])) == ("scale1/group2", 0, 1)
    out_index = offset  # first output channel of group 2 at grid (0, 0) = full-res pixel (0, 1)
    assert jac[out_index, 2 * 4 + 2] != 0  # input pixel (2, 2): below and to the right
