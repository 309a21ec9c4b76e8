"""Conditioning contexts (``icml17.pixelcnn.conditioning``): a missing or misshapen context is refused with the
expected form, for every model type."""

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
