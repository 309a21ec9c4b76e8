"""The factored-model contract both PixelCNNs share (``icml17.pixelcnn.factored``): every factor depends only on
sub-pixels earlier in the model's order (exact Jacobian zeros), the factors' log-likelihoods sum to a normalised
distribution over all images, ``LogProb`` adds its terms up, and images are validated."""

import pytest
import torch
from pcnn_helpers import all_images, jacobian_and_ranks, make_context, tiny_model

# --- causality: d output_i / d input_j == 0 exactly for every j not earlier than i in the model's order --------


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
    ("full", 4, 1, 2, "logistic", "text+spatial", 1, 2),
    ("a", 4, 3, 2, "softmax", "text+spatial", 1, 2),
    ("b", 4, 1, 2, "logistic", "text+spatial", 1, 2),
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


# --- normalisation: probabilities of all images of a tiny size sum to one (float64) ---------------------------


def total_probability(model, channels: int, size: int) -> float:
    images = all_images(channels, size, model.levels)
    logps = []
    with torch.no_grad():
        for chunk in images.split(8192):
            logps.append(model.log_prob(chunk, make_context(model, len(chunk))).total)
    return float(torch.logsumexp(torch.cat(logps), 0).exp())


@pytest.mark.parametrize(
    "kind,condition",
    [
        ("full", "none"),
        ("a", "none"),
        ("b", "none"),
        ("full", "class"),
        ("a", "spatial"),
        ("b", "class"),
        ("full", "text+spatial"),
        ("b", "text+spatial"),
    ],
)
def test_binary_4x4_sums_to_one(kind, condition):
    model = tiny_model(kind, 4, 1, 1, "bernoulli", condition, base=1, patch=2)
    assert abs(total_probability(model, 1, 4) - 1.0) < 1e-5


@pytest.mark.parametrize("kind", ["full", "a", "b"])
@pytest.mark.parametrize("head", ["softmax", "logistic"])
@pytest.mark.parametrize("condition", ["none", "text"])
def test_rgb_2x2_one_bit_sums_to_one(kind, head, condition):
    model = tiny_model(kind, 2, 3, 1, head, condition, base=1, patch=2)
    assert abs(total_probability(model, 3, 2) - 1.0) < 1e-5


@pytest.mark.parametrize("kind,head", [("full", "logistic"), ("a", "softmax"), ("b", "logistic")])
def test_grey_2x2_three_bits_sums_to_one(kind, head):
    model = tiny_model(kind, 2, 1, 3, head, "spatial", base=1)
    assert abs(total_probability(model, 1, 2) - 1.0) < 1e-5


def test_terms_add_up_and_bits_per_dim():
    model = tiny_model("b", 4, 1, 1, "bernoulli", base=1)
    x = all_images(1, 4, 2)[:5]
    lp = model.log_prob(x)
    assert sorted(lp.terms) == [
        "base",
        "scale1/group2",
        "scale1/group3",
        "scale1/group4",
        "scale2/group2",
        "scale2/group3",
        "scale2/group4",
    ]
    assert torch.allclose(sum(lp.terms.values()), lp.total)
    assert torch.allclose(lp.bits_per_dim(), -lp.total / (16 * torch.log(torch.tensor(2.0, dtype=torch.float64))))


# --- input validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["full", "a", "b"])
def test_wrong_image_shape_and_values(kind):
    model = tiny_model(kind, 4, 1, 2, "logistic", base=1)
    with pytest.raises(ValueError, match=r"shape \(B, 1, 4, 4\)"):
        model.log_prob(torch.zeros(2, 1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 4\) \(2-bit\)"):
        model.log_prob(torch.full((2, 1, 4, 4), 4))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        model.log_prob(torch.full((2, 1, 4, 4), -1))
    with pytest.raises(ValueError, match="integer tensor"):
        model.log_prob(torch.zeros(2, 1, 4, 4))
