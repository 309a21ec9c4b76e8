"""Table 1's three splits: ``val_images`` holds the last N training images out of training (train and val are
disjoint and together the whole training split, test untouched), a validation split that was never held out is
refused before any scoring, and ``icml17 pixelcnn eval --splits`` records every split in both units."""

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from pcnn_helpers import small_run_flags

from icml17.cli import main
from icml17.core.config import ConfigError
from icml17.pixelcnn.data import load_split
from icml17.pixelcnn.presets import make_config


def test_validation_images_are_the_held_out_end_of_the_training_split(synthetic_data_dir: Path):
    cfg = make_config("mnist", "full")
    whole, whole_y = load_split(cfg, synthetic_data_dir, "train")
    held = replace(cfg, val_images=500)
    train, train_y = load_split(held, synthetic_data_dir, "train")
    val, val_y = load_split(held, synthetic_data_dir, "val")
    assert len(train) == len(whole) - 500 and len(val) == 500
    assert torch.equal(torch.cat([train, val]), whole) and torch.equal(torch.cat([train_y, val_y]), whole_y)
    test, _ = load_split(cfg, synthetic_data_dir, "test")
    assert torch.equal(load_split(held, synthetic_data_dir, "test")[0], test)


def test_missing_or_impossible_validation_split_is_refused(synthetic_data_dir: Path):
    cfg = make_config("mnist", "full")
    with pytest.raises(ConfigError, match="val_images=N"):
        load_split(cfg, synthetic_data_dir, "val")
    with pytest.raises(ConfigError, match="leaves no training images"):
        load_split(replace(cfg, val_images=60_000), synthetic_data_dir, "train")
    with pytest.raises(ConfigError, match="split must be one of"):
        load_split(cfg, synthetic_data_dir, "valid")
    with pytest.raises(ConfigError, match="val_images must be >= 0"):
        replace(cfg, val_images=-1).validate()


def test_eval_records_every_split(tmp_path: Path, synthetic_data_dir: Path):
    run_dir, records = tmp_path / "run", tmp_path / "records"
    args = [
        "pixelcnn",
        "train",
        "--preset",
        "mnist-text-spatial",
        "--model",
        "multiscale-a",
        "--run-dir",
        run_dir,
        "--iterations",
        "2",
        *small_run_flags(synthetic_data_dir, "val_images=100"),
    ]
    assert main([str(a) for a in args]) == 0

    def evaluate(record: Path, *splits: str) -> int:
        argv = ["pixelcnn", "eval", "--run-dir", run_dir, "--n-eval", "6", "--splits", *splits, "--record", record]
        return main([str(a) for a in [*argv, "--data-dir", synthetic_data_dir]])

    assert evaluate(records, "train", "val", "test") == 0
    rec = json.loads((records / "mnist-text-spatial-typeA.json").read_text())
    assert list(rec["by_split"]) == ["train", "val", "test"] and rec["condition"] == "text+spatial"
    for split in rec["by_split"].values():
        assert split["n"] == 6
        assert split["nats_per_subpixel"] == pytest.approx(split["bits_per_dim"] * math.log(2), abs=1e-4)
    assert rec["value"] == rec["by_split"]["test"]["bits_per_dim"]
    # the same images scored alone give the same number: the splits are the ones named
    solo = tmp_path / "solo"
    assert evaluate(solo, "val") == 0
    assert (
        json.loads((solo / "mnist-text-spatial-typeA.json").read_text())["value"]
        == rec["by_split"]["val"]["bits_per_dim"]
    )
    # the text+spatial model samples from test images' captions and maps
    assert (
        main(
            [
                str(a)
                for a in [
                    "pixelcnn",
                    "sample",
                    "--run-dir",
                    run_dir,
                    "--samples",
                    "2",
                    "--data-dir",
                    synthetic_data_dir,
                ]
            ]
        )
        == 0
    )
    assert (run_dir / "samples" / "samples.png").stat().st_size > 0


def test_eval_of_a_run_without_validation_images_fails_before_scoring(
    tmp_path: Path, synthetic_data_dir: Path, capsys: pytest.CaptureFixture
):
    run_dir = tmp_path / "run"
    args = [
        "pixelcnn",
        "train",
        "--preset",
        "mnist-class",
        "--model",
        "full",
        "--run-dir",
        run_dir,
        "--iterations",
        "1",
        "--data-dir",
        synthetic_data_dir,
        "--set",
        "hidden=4",
        "--set",
        "layers=1",
        "--set",
        "batch_size=2",
        "--set",
        "eval_images=2",
    ]
    assert main([str(a) for a in args]) == 0
    capsys.readouterr()
    code = main(
        [
            str(a)
            for a in [
                "pixelcnn",
                "eval",
                "--run-dir",
                run_dir,
                "--splits",
                "test",
                "val",
                "--data-dir",
                synthetic_data_dir,
            ]
        ]
    )
    out = capsys.readouterr()
    assert code != 0 and "val_images=N" in out.err
    assert "bits_per_dim" not in out.out  # the test split, asked for first, was not scored
