"""``icml17.sharpness.measures.measure``: the record it returns (mode, dtype, products used) and its input checks.
(Each measure's mathematics is tested with its module: test_adaptive, test_ball, test_keskar.)"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from icml17.sharpness.measures import measure
from icml17.sharpness.models import mlp

CE = nn.functional.cross_entropy


def test_measure_records_mode_dtype_and_rejects_bad_input(tiny_data, trained_net):
    model = trained_net().float()
    out = measure(model, CE, tiny_data, ["loss", "lambda_max"], dtype=torch.float64)
    assert out["mode"] == "eval" and out["dtype"] == "float64" and out["n_hvp"] > 0
    with pytest.raises(ValueError, match="unknown measure"):
        measure(model, CE, tiny_data, ["flatness"])
    with pytest.raises(ValueError, match="requires_grad"):
        measure(mlp((6, 3)).requires_grad_(False), CE, tiny_data, ["lambda_max"])
    with pytest.raises(ValueError, match="empty"):
        measure(model, CE, (tiny_data[0][:0], tiny_data[1][:0]), ["trace"])
