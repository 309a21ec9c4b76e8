"""The parallel multiscale PixelCNN (``icml17.pixelcnn.multiscale``): its group order, its size constraint and
super-resolution's input check. (Its factorisation, sampling and heads are tested with the shared contract in
test_factored.py and test_sampling.py.)"""

import pytest
import torch
from pcnn_helpers import jacobian_and_ranks, tiny_model

from icml17.core.config import ConfigError
from icml17.pixelcnn.multiscale import MultiscalePixelCNN


def test_groups_see_pixels_below_and_right():
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


def test_image_size_must_be_base_times_power_of_two():
    with pytest.raises(ConfigError, match=r"base_size \* 2\^k"):
        MultiscalePixelCNN(30, base_size=7)


def test_super_resolution_needs_a_lower_level():
    model = tiny_model("a", 4, 1, 2, "logistic", base=1)
    with pytest.raises(ValueError, match="K in"):
        model.super_resolve(torch.zeros(1, 1, 3, 3, dtype=torch.long))
