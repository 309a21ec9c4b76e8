"""The invariance study: its verdict rules, the committed table's "unchanged" cells re-checked to their tolerance
on other (tiny) networks, an "arbitrary" cell shown by a sweep, and the command end to end on synthetic data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from icml17.sharpness.invariance_study import (
    TOLERANCE,
    study_transform,
    sweep_values,
    sweep_verdict,
)
from icml17.sharpness.registry import FlatnessOptions, compute_measure
from icml17.sharpness.scale_invariant import NotApplicable
from icml17.sharpness.transforms import TransformError

CE = nn.functional.cross_entropy
RECORD = Path(__file__).resolve().parents[2] / "results" / "sharpness" / "invariance.json"
FAST = FlatnessOptions(probes=8, apgd_steps=8, avg_samples=4, pacbayes_samples=3, max_iter=40, pacbayes_tolerance=1e-9)


def test_verdict_rules():
    p = [0.01, 0.1, 1.0, 10.0, 100.0]
    assert sweep_verdict(p, [2.0, 2.0, 2.0, 2.0 * (1 + 1e-7), 2.0])["verdict"] == "unchanged"
    follows = sweep_verdict(p, [1e4, 1e2, 1.0, 1e2, 1e4])  # v ~ p^-2 and p^2 at the ends
    assert follows["verdict"] == "arbitrary" and follows["spread"] == pytest.approx(1e4)
    assert follows["end_slope"] == pytest.approx(2.0)
    assert sweep_verdict(p, [1.0, 1.2, 1.0, 1.5, 1.5])["verdict"] == "bounded"  # changed, saturating
    assert sweep_verdict(p, [30.0, 20.0, 1.0, 20.0, 30.0])["verdict"] == "bounded"  # large, but no longer following p
    assert sweep_verdict(p, [0.0, 1.0, 1.0, 1.0, 1.0])["verdict"] == "arbitrary"  # the spread is infinite
    with pytest.raises(ValueError, match="identity"):
        sweep_verdict([0.1, 10.0], [1.0, 1.0])
    assert sweep_values("per-neuron", (-2, 0, 2)) == [1.0, 100.0]
    assert sweep_values("radial", (-2, 0, 2)) == pytest.approx([0.1, 1.0, 10.0])


def _trained(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    for _ in range(200):
        opt.zero_grad()
        CE(net(x), y).backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def tiny_nets():
    """Three tiny trained float64 networks of the study's three kinds, with their data."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (24,), generator=g)
    xi, yi = torch.randn(16, 1, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g)
    torch.manual_seed(0)
    return {
        "mlp": (
            _trained(
                nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)).double(), x, y
            ),
            (x, y),
        ),
        "cnn": (
            _trained(
                nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3)).double(),
                xi,
                yi,
            ),
            (xi, yi),
        ),
        "bn-mlp": (
            _trained(
                nn.Sequential(
                    nn.Linear(6, 5),
                    nn.BatchNorm1d(5),
                    nn.ReLU(),
                    nn.Linear(5, 4),
                    nn.BatchNorm1d(4),
                    nn.ReLU(),
                    nn.Linear(4, 3),
                )
                .double()
                .train(),
                x,
                y,
            ),
            (x, y),
        ),
    }


def _unchanged_cells() -> list[tuple[str, str]]:
    if not RECORD.is_file():
        return []
    table = json.loads(RECORD.read_text())["table"]
    return [(m, k) for m, row in table.items() for k, c in row.items() if c["verdict"] == "unchanged"]


@pytest.mark.skipif(not RECORD.is_file(), reason="no committed invariance record (results/sharpness/invariance.json)")
@pytest.mark.parametrize("cell", _unchanged_cells(), ids=lambda c: f"{c[0]}-{c[1]}")
def test_the_tables_unchanged_cells_hold_to_their_tolerance_on_other_networks(cell, tiny_nets):
    """Every cell the committed table calls unchanged, re-checked at the ends of the sweep on tiny networks that
    the study never saw (each network where the transform applies and the measure is defined)."""
    name, kind = cell
    checked = 0
    for model, data in tiny_nets.values():
        try:
            reps = [study_transform(kind, p, model, 0) for p in sweep_values(kind, (-2.0, 2.0)) if p != 1.0]
            base = compute_measure(name, model, CE, data, options=FAST, dtype=torch.float64)
        except (TransformError, NotApplicable):
            continue
        for rep in reps:
            value = compute_measure(
                name, rep.model, CE, (rep.inputs(data[0]), data[1]), options=FAST, dtype=torch.float64
            )
            assert abs(value / base - 1) <= TOLERANCE, (name, kind, rep.name, value, base)
        checked += 1
    assert checked, f"no tiny network takes {kind} and {name}"


def test_lambda_max_follows_alpha_over_four_orders_of_magnitude(tiny_nets):
    """An "arbitrary" cell: T_alpha's sweep drives lambda_max as far as it goes (about alpha^2 at the ends)."""
    model, data = tiny_nets["mlp"]
    params = sweep_values("alpha", (-2.0, -1.0, 0.0, 1.0, 2.0))
    values = [
        compute_measure(
            "lambda_max",
            study_transform("alpha", p, model, 0).model if p != 1 else model,
            CE,
            data,
            options=FAST,
            dtype=torch.float64,
        )
        for p in params
    ]
    v = sweep_verdict(params, values)
    assert v["verdict"] == "arbitrary" and v["spread"] > 1e3
    assert v["end_slope"] == pytest.approx(2.0, abs=0.2)
    assert all(math.isfinite(x) for x in values)


def test_invariance_command_quick_writes_the_table_record_and_figure(synthetic_data_dir, tmp_path, capsys):
    from icml17.cli import main

    out = tmp_path / "res"
    code = main(
        [
            "sharpness",
            "invariance",
            "--quick",
            "--measures",
            "loss,lambda_max,adaptive_lambda_max,fisher_rao",
            "--transforms",
            "alpha,bn-scale",
            "--networks",
            "mlp,bn-mlp",
            "--record",
            str(out),
            "--data-dir",
            str(synthetic_data_dir),
            "--run-dir",
            str(tmp_path / "runs"),
        ]
    )
    assert code == 0
    record = json.loads((out / "invariance.json").read_text())
    assert (out / "invariance.png").stat().st_size > 1000 and record["quick"]
    table = record["table"]
    assert table["lambda_max"]["alpha"]["verdict"] == "arbitrary"
    assert table["adaptive_lambda_max"]["alpha"]["verdict"] == "unchanged"
    assert table["adaptive_lambda_max"]["alpha"]["claim_confirmed"] is True
    assert table["fisher_rao"]["bn-scale"]["verdict"] == "unchanged"
    assert record["sweeps"]["mlp"]["bn-scale"] == {"n/a": record["sweeps"]["mlp"]["bn-scale"]["n/a"]}
    capsys.readouterr()
    assert main(["sharpness", "invariance", "--all", "--measures", "loss", "--data-dir", str(synthetic_data_dir)]) == 2
    assert "not both" in capsys.readouterr().err
