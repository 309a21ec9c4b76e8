"""End-to-end: ``icml17 sharpness measure / reproduce / eval`` through the CLI's own entry point, and the demo
section, on the synthetic MNIST in a temporary directory."""

from __future__ import annotations

import json

from icml17.cli import main
from icml17.core.report import Report


def run(argv: list) -> int:
    return main([str(a) for a in argv])


def test_measure_a_preset_in_float64(synthetic_data_dir, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert (
        run(
            [
                "sharpness",
                "measure",
                "--model",
                "mlp-784-32-10",
                "--examples",
                "64",
                "--batch-size",
                "32",
                "--measures",
                "loss,lambda_max,adaptive_lambda_max",
                "--data-dir",
                synthetic_data_dir,
                "--dtype",
                "float64",
                "--out",
                out,
                "--threads",
                "1",
            ]
        )
        == 0
    )
    record = json.loads(out.read_text())
    assert record["dtype"] == "float64" and record["mode"] == "eval" and record["lambda_max"] > 0
    assert json.loads(capsys.readouterr().out)["n_params"] == 784 * 32 + 32 + 330


def test_measure_rejects_unknown_measures_in_one_line(synthetic_data_dir, capsys):
    code = run(
        [
            "sharpness",
            "measure",
            "--model",
            "mlp-784-32-10",
            "--examples",
            "16",
            "--measures",
            "flatness",
            "--data-dir",
            synthetic_data_dir,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "unknown measure" in err and len(err.strip().splitlines()) == 1


def test_reproduce_quick_writes_record_and_plot_then_measures_its_checkpoint(synthetic_data_dir, tmp_path, capsys):
    res = tmp_path / "res"
    assert (
        run(
            [
                "sharpness",
                "reproduce",
                "--which",
                "theorem6",
                "--quick",
                "--record",
                res,
                "--data-dir",
                synthetic_data_dir,
                "--run-dir",
                tmp_path / "runs",
            ]
        )
        == 0
    )
    record = json.loads((res / "theorem6.json").read_text())
    assert (res / "theorem6.png").stat().st_size > 1000
    assert record["experiment"] == "theorem6" and record["command"].startswith("icml17 sharpness reproduce")
    assert record["max_rel_error_vs_analytic"] < 1e-3
    norms = [r["grad_norm"] for r in record["rows"]]
    assert norms[0] > 10 * norms[-1]  # alpha = 0.01 vs 1
    run_dir = tmp_path / "runs" / "quick-small-batch"
    from icml17.sharpness.evaluate import load_run

    assert sum(p.numel() for p in load_run(run_dir).model.parameters()) == record["models"]["small-batch"]["n_params"]
    capsys.readouterr()
    assert (
        run(
            [
                "sharpness",
                "measure",
                "--run-dir",
                run_dir,
                "--examples",
                "32",
                "--measures",
                "loss,lambda_max",
                "--data-dir",
                synthetic_data_dir,
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["lambda_max"] > 0


def test_demo_section_quick(synthetic_data_dir, tmp_path):
    from icml17.sharpness.demo import demo_section

    report = Report(tmp_path)
    demo_section(report, tmp_path / "sharpness", synthetic_data_dir, quick=True)
    section = report.sections[-1]
    assert "alpha" in section.text and len(section.images) == 1
    assert (tmp_path / section.images[0][0]).exists()
