"""Probabilities of all images of a tiny size sum to one (float64), for every model, head and context."""

import pytest
import torch

from pcnn_helpers import all_images, make_context, tiny_model


def total_probability(model, channels: int, size: int) -> float:
    images = all_images(channels, size, model.levels)
    logps = []
    with torch.no_grad():
        for chunk in images.split(8192):
            logps.append(model.log_prob(chunk, make_context(model, len(chunk))).total)
    return float(torch.logsumexp(torch.cat(logps), 0).exp())


@pytest.mark.parametrize("kind,condition", [("full", "none"), ("a", "none"), ("b", "none"), ("full", "class"),
                                            ("a", "spatial"), ("b", "class")])
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
    assert sorted(lp.terms) == ["base", "scale1/group2", "scale1/group3", "scale1/group4",
                                "scale2/group2", "scale2/group3", "scale2/group4"]
    assert torch.allclose(sum(lp.terms.values()), lp.total)
    assert torch.allclose(lp.bits_per_dim(), -lp.total / (16 * torch.log(torch.tensor(2.0, dtype=torch.float64))))
