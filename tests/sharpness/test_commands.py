"""End-to-end: the CLI's sharpness commands and the demo section, on real MNIST in a temporary directory."""

from __future__ import annotations

import argparse
import json

import pytest

from icml17.core.config import ConfigError
from icml17.core.report import Report
from icml17.sharpness import commands


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="icml17")
    commands.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_measure_a_preset_in_float64(mnist_dir, tmp_path, capsys):
    out = tmp_path / "m.json"
    args = _parse(["sharpness", "measure", "--model", "mlp-784-32-10", "--n", "64", "--batch-size", "32",
                   "--measures", "loss,lambda_max,adaptive_lambda_max", "--data-dir", str(mnist_dir),
                   "--dtype", "float64", "--out", str(out), "--threads", "1"])
    assert args.func(args) == 0
    record = json.loads(out.read_text())
    assert record["dtype"] == "float64" and record["mode"] == "eval" and record["lambda_max"] > 0
    assert json.loads(capsys.readouterr().out)["n_params"] == 784 * 32 + 32 + 330


def test_measure_rejects_unknown_measures(mnist_dir):
    args = _parse(["sharpness", "measure", "--model", "mlp-784-32-10", "--n", "16", "--measures", "flatness",
                   "--data-dir", str(mnist_dir)])
    with pytest.raises(ConfigError, match="unknown measure"):
        args.func(args)


def test_reproduce_quick_writes_record_and_plot_then_measures_its_checkpoint(mnist_dir, tmp_path):
    args = _parse(["sharpness", "reproduce", "--which", "theorem6", "--quick", "--out", str(tmp_path / "res"),
                   "--data-dir", str(mnist_dir), "--run-dir", str(tmp_path / "runs")])
    assert args.func(args) == 0
    record = json.loads((tmp_path / "res" / "theorem6.json").read_text())
    assert (tmp_path / "res" / "theorem6.png").stat().st_size > 1000
    assert record["experiment"] == "theorem6" and record["command"].startswith("icml17 ")
    assert record["max_rel_error_vs_analytic"] < 1e-3
    norms = [r["grad_norm"] for r in record["rows"]]
    assert norms[0] > 10 * norms[-1]  # alpha = 0.01 vs 1
    ckpt = tmp_path / "runs" / "quick-small-batch" / "checkpoints" / "last.pt"
    model = commands.load_model(ckpt)
    assert sum(p.numel() for p in model.parameters()) == record["models"]["small-batch"]["n_params"]


def test_demo_section_quick(mnist_dir, tmp_path):
    report = Report(tmp_path)
    commands.demo_section(report, tmp_path / "sharpness", mnist_dir, quick=True)
    section = report.sections[-1]
    assert "alpha" in section.text and len(section.images) == 1
    assert (tmp_path / section.images[0][0]).exists()
