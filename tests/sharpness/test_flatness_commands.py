"""``icml17 sharpness measure --measures all``: every registered measure of a model, through the CLI's entry point."""

from __future__ import annotations

import json

from icml17.cli import main
from icml17.sharpness.registry import REGISTRY


def test_measure_all_reports_every_registered_measure(synthetic_data_dir, tmp_path, capsys):
    out = tmp_path / "all.json"
    assert (
        main(
            [
                "sharpness",
                "measure",
                "--model",
                "mlp-784-32-10",
                "--examples",
                "32",
                "--batch-size",
                "16",
                "--measures",
                "all,topk",
                "--dtype",
                "float64",
                "--probes",
                "4",
                "--data-dir",
                str(synthetic_data_dir),
                "--out",
                str(out),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    record = json.loads(out.read_text())
    assert set(REGISTRY) <= set(record) and len(record["topk"]) == 5
    assert record["not_applicable"] == {} and set(record["seconds"]) == set(REGISTRY) | {"topk"}
    assert record["adaptive_worst_linf"] >= 0 and record["fisher_rao"] > 0 and record["dtype"] == "float64"
    capsys.readouterr()


def test_time_subset_belongs_to_the_correlation_grid(synthetic_data_dir, capsys):
    code = main(
        [
            "sharpness",
            "reproduce",
            "--which",
            "theorem6",
            "--time-subset",
            "--quick",
            "--data-dir",
            str(synthetic_data_dir),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--which correlation" in err and len(err.strip().splitlines()) == 1


def test_families_belong_to_the_correlation_grid(synthetic_data_dir, capsys):
    code = main(
        ["sharpness", "reproduce", "--which", "theorem6", "--families", "mnist-mlp", "--quick"]
        + ["--data-dir", str(synthetic_data_dir)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--families" in err and "--which correlation" in err and len(err.strip().splitlines()) == 1
