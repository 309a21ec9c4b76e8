"""Conditioning contexts (``icml17.pixelcnn.conditioning``): a missing or misshapen context is refused with the
expected form, for every model type; a text-and-spatial context uses both of its parts."""

import pytest
import torch
from pcnn_helpers import tiny_model


@pytest.mark.parametrize("kind", ["full", "a", "b"])
def test_context_missing_or_misshapen(kind):
    x = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    model = tiny_model(kind, 4, 1, 1, "bernoulli", "class")
    with pytest.raises(ValueError, match=r"needs a context: class labels: int64 tensor of shape \(B,\)"):
        model.log_prob(x)
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        model.log_prob(x, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        model.log_prob(x, torch.tensor([0, 10]))
    spatial = tiny_model(kind, 4, 1, 1, "bernoulli", "spatial")
    with pytest.raises(ValueError, match=r"\(B, 2, 4, 4\)"):
        spatial.log_prob(x, torch.zeros(2, 2, 5, 5, dtype=torch.float64))
    plain = tiny_model(kind, 4, 1, 1, "bernoulli")
    with pytest.raises(ValueError, match="unconditional"):
        plain.log_prob(x, torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("kind", ["full", "a", "b"])
def test_text_and_spatial_context_uses_both_parts(kind):
    """Changing only the caption, or only the map, changes the likelihood; each alone is refused."""
    model = tiny_model(kind, 4, 1, 2, "logistic", "text+spatial")
    x = torch.randint(0, 4, (2, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    m1, m2 = (torch.rand(2, 2, 4, 4, generator=g, dtype=torch.float64) for _ in range(2))
    caption, other = ["a handwritten three"] * 2, ["a handwritten eight"] * 2
    base = model.log_prob(x, (caption, m1)).total
    assert torch.equal(base, model.log_prob(x, (caption, m1.clone())).total)
    assert (base - model.log_prob(x, (other, m1)).total).abs().min() > 1e-9
    assert (base - model.log_prob(x, (caption, m2)).total).abs().min() > 1e-9
    with pytest.raises(ValueError, match=r"a pair \(captions, map\)"):
        model.log_prob(x, m1)
    with pytest.raises(ValueError, match=r"\(B, 2, 4, 4\)"):
        model.log_prob(x, (caption, torch.zeros(2, 2, 5, 5, dtype=torch.float64)))
    with pytest.raises(ValueError, match="captions"):
        model.log_prob(x, ([1, 2], m1))
