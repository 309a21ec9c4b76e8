"""`icml17 pixelcnn video train | eval | sample` end to end on synthetic MNIST, resume, presets and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from icml17.cli import main
from icml17.core.config import ConfigError
from icml17.pixelcnn.video.frames import FRAME_MODELS
from icml17.pixelcnn.video.presets import PRESETS, TABLE2_PARAMETERS, build_video_model, make_config


def cli(*argv) -> int:
    return main([str(a) for a in argv])


FAST = [
    "--set",
    "train_sequences=40",
    "eval_sequences=6",
    "eval_periodic=4",
    "batch_size=2",
    "frame_size=8",
    "base_size=2",
    "checkpoint_every=2",
    "eval_every=100",
]


def train_tiny(model: str, run: Path, data_dir: Path, iterations: int, *sets: str) -> int:
    """Exit code of a quick ``icml17 pixelcnn video train --preset tiny`` (``FAST`` settings, then ``sets``)."""
    return cli(
        "pixelcnn",
        "video",
        "train",
        "--preset",
        "tiny",
        "--model",
        model,
        "--run-dir",
        run,
        "--data-dir",
        data_dir,
        "--iterations",
        iterations,
        "--no-progress",
        *FAST,
        *sets,
    )


def test_train_eval_sample_end_to_end(tmp_path: Path, synthetic_data_dir: Path, capsys):
    run = tmp_path / "run"
    assert train_tiny("o_t", run, synthetic_data_dir, 3) == 0
    assert (
        cli(
            "pixelcnn",
            "video",
            "eval",
            "--run-dir",
            run,
            "--data-dir",
            synthetic_data_dir,
            "--record",
            tmp_path / "rec",
        )
        == 0
    )
    rec = json.loads((tmp_path / "rec" / "video-o_t-tiny.json").read_text())
    assert rec["metric"] == "nats_per_subpixel" and rec["value"] == rec["val"]
    assert {"test_seen", "test_novel", "paper_source"} <= set(rec) and rec["n_eval"] == 6
    assert abs(sum(rec["val_by_factor"].values()) - rec["val"]) < 1e-3 and len(rec["val_by_factor"]) == 4
    assert cli("pixelcnn", "video", "sample", "--run-dir", run, "--data-dir", synthetic_data_dir, "--samples", 2) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(out["strip"]).is_file() and Path(out["gif"]).is_file() and out["evaluations_per_frame"] == 5


def test_resume_is_exact(tmp_path: Path, synthetic_data_dir: Path):
    base = [
        "pixelcnn",
        "video",
        "train",
        "--preset",
        "tiny",
        "--model",
        "convlstm",
        "--data-dir",
        synthetic_data_dir,
        "--no-progress",
        *FAST,
    ]
    assert cli(*base, "--run-dir", tmp_path / "a", "--iterations", 4) == 0
    assert cli(*base, "--run-dir", tmp_path / "b", "--iterations", 4, "--time-budget", 1e-6) == 0  # stops early
    assert torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)["step"] < 4
    assert cli(*base, "--run-dir", tmp_path / "b", "--iterations", 4) == 0
    load = lambda d: torch.load(d / "checkpoints" / "last.pt", weights_only=True)["state"]["model"]
    a, b = load(tmp_path / "a"), load(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("model", ["o_t", "o_tlogn", "convlstm", "vpn"])
def test_presets_build_every_model(preset, model):
    cfg = make_config(preset, model)
    assert cfg.experiment.startswith(f"video-{model}")
    if preset != "paper":
        build_video_model(cfg)


def test_unknown_preset_model_and_bad_settings_are_config_errors(tmp_path: Path, capsys):
    with pytest.raises(ConfigError, match="unknown video preset"):
        make_config("robot-pushing")
    with pytest.raises(ConfigError, match="unknown video model"):
        make_config("cpu", "pixelrnn")
    with pytest.raises(ConfigError, match="base_size"):
        make_config("cpu", "o_tlogn", {"base_size": 3})
    assert cli("pixelcnn", "video", "train", "--preset", "cpu", "--run-dir", tmp_path / "r", "--set", "frames=2") == 2
    assert "nothing to predict" in capsys.readouterr().err


def test_table2_models_are_parameter_matched():
    """Each model of the table2 preset within 10% of the common count (printed: pytest -s shows the table)."""
    counts = {m: sum(p.numel() for p in build_video_model(make_config("table2", m)).parameters()) for m in FRAME_MODELS}
    for m, n in counts.items():
        print(f"table2 {m:9s} {n:9,d} parameters ({n / TABLE2_PARAMETERS - 1:+.1%} of {TABLE2_PARAMETERS:,d})")
    assert all(abs(n / TABLE2_PARAMETERS - 1) <= 0.10 for n in counts.values()), counts
    assert make_config("cpu", "vpn").layers == 4 and make_config("table2", "vpn").layers == 10  # sizes per model


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_a_run_named_as_another_model_and_too_many_samples_are_refused(
    tmp_path: Path, synthetic_data_dir: Path, capsys
):
    run = tmp_path / "run"
    assert train_tiny("o_t", run, synthetic_data_dir, 1) == 0
    capsys.readouterr()
    for command in ("sample", "eval"):
        assert (
            cli("pixelcnn", "video", command, "--run-dir", run, "--model", "vpn", "--data-dir", synthetic_data_dir) == 2
        )
        assert "holds a video-o_t-tiny run, not video-vpn-tiny" in one_line_error(capsys)
    assert (
        cli("pixelcnn", "video", "sample", "--run-dir", run, "--preset", "cpu", "--data-dir", synthetic_data_dir) == 2
    )
    assert "not video-o_t" in one_line_error(capsys)
    assert (
        cli("pixelcnn", "video", "sample", "--run-dir", run, "--data-dir", synthetic_data_dir, "--samples", 1000) == 2
    )
    assert "--samples 1000 asks for more videos than the val split holds (6" in one_line_error(capsys)
    assert (
        cli(
            "pixelcnn",
            "video",
            "sample",
            "--run-dir",
            run,
            "--model",
            "o_t",
            "--data-dir",
            synthetic_data_dir,
            "--samples",
            6,
            "--out",
            tmp_path / "s",
        )
        == 0
    )  # a matching --model is fine


def test_eval_measures_the_cost_of_shuffled_actions(tmp_path: Path, synthetic_data_dir: Path):
    run = tmp_path / "run"
    assert train_tiny("convlstm", run, synthetic_data_dir, 2, "generator=pushed") == 0
    assert (
        cli(
            "pixelcnn",
            "video",
            "eval",
            "--run-dir",
            run,
            "--data-dir",
            synthetic_data_dir,
            "--shuffle-actions",
            "--record",
            tmp_path / "rec",
        )
        == 0
    )
    rec = json.loads((tmp_path / "rec" / "video-convlstm-tiny.json").read_text())
    assert rec["generator"] == "pushed"
    for split in ("val", "test_seen", "test_novel"):
        assert abs(rec[f"{split}_action_cost"] - (rec[f"{split}_shuffled_actions"] - rec[split])) < 2e-4
