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


def test_relative_sharpness_measures_name_their_unit(tiny_data, trained_net):
    from icml17.sharpness.measures import UNITS, measure

    out = measure(trained_net(), nn.functional.cross_entropy, tiny_data, ["epsilon", "keskar", "loss"])
    assert out["units"] == {"epsilon": UNITS, "keskar": UNITS}


def test_records_name_the_product_the_engine_uses():
    """The committed radial-ranking record says which Hessian product computed it; it must be the one the
    engine picks for that network today (a stale label was a defect)."""
    import json
    from pathlib import Path

    from icml17.core.curvature import HessianOperator
    from icml17.sharpness.presets import build_sharpness_model

    record = json.loads((Path(__file__).resolve().parents[2] / "results/sharpness/radial-ranking.json").read_text())
    x = torch.zeros(2, 1, 28, 28)
    method = HessianOperator(
        build_sharpness_model("mlp-784-100-10"), nn.functional.cross_entropy, (x, torch.zeros(2).long())
    ).method
    assert {v["hvp_method"] for v in record["theta"].values()} == {method}
