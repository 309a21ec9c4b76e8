"""The invariance checker reports outputs, values, ratios, expectations and the spread."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from icml17.sharpness.invariance import check_invariance
from icml17.sharpness.measures import MeasureOptions
from icml17.sharpness.models import mlp
from icml17.sharpness.radial import Radial
from icml17.sharpness.transforms import AlphaScaling, InputMap, PerNeuronScaling, Reparametrized

CE = nn.functional.cross_entropy
OPTS = MeasureOptions(lanczos_tol=1e-8, probes=16)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return mlp((6, 5, 4, 3)).double()


class _Perturb:
    """Not function-preserving: the checker must flag it."""

    name = "perturb"

    def __call__(self, model: nn.Module) -> Reparametrized:
        new = copy.deepcopy(model)
        with torch.no_grad():
            new[1].weight.add_(0.1)
        return Reparametrized(new, self.name)

    def expected_ratio(self, measure: str) -> float | None:
        return None


def test_lambda_max_is_not_invariant_and_radial_ratio_is_exact(tiny_data):
    transforms = [
        AlphaScaling([1e-2, 1.0, 1e2]),
        PerNeuronScaling(),
        Radial(1.0, 0.9, 0.09),
        InputMap.whiten(tiny_data[0]),
        _Perturb(),
    ]
    report = check_invariance(_net(), CE, tiny_data, transforms, "lambda_max", dtype=torch.float64, options=OPTS)
    preserved = [r.outputs_preserved for r in report.rows]
    assert preserved == [True, True, True, True, False]
    assert all(r.max_output_diff < 1e-12 for r in report.rows[:4])
    assert report.spread > 100  # alpha = 1e-2 makes the network much sharper
    radial = report.rows[2]
    assert math.isclose(radial.ratio, radial.expected_ratio, rel_tol=1e-6) and radial.expected_ratio == 100.0
    assert "spread" in report.table() and report.as_dict()["rows"][0]["transform"].startswith("alpha")


def test_adaptive_lambda_max_spread_is_one_under_rescaling_but_not_whitening(tiny_data):
    report = check_invariance(
        _net(),
        CE,
        tiny_data,
        [AlphaScaling([1e-2, 1.0, 1e2]), PerNeuronScaling(3.0)],
        "adaptive_lambda_max",
        dtype=torch.float64,
        options=OPTS,
    )
    assert report.spread < 1 + 1e-6 and all(r.expected_ratio == 1.0 for r in report.rows)
    g = torch.Generator().manual_seed(5)
    x = tiny_data[0] @ (torch.randn(6, 6, generator=g, dtype=torch.float64) * 3) + 2  # correlated, off-centre
    whitened = check_invariance(
        _net(), CE, (x, tiny_data[1]), [InputMap.whiten(x)], "adaptive_lambda_max", dtype=torch.float64, options=OPTS
    )
    assert whitened.spread > 1.01
