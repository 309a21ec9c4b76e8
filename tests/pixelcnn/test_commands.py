"""End-to-end: the CLI's train / eval / sample on a few steps of real MNIST into tmp_path; demo section."""

import json
from pathlib import Path

import pytest

import argparse

from icml17.pixelcnn.commands import register


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("model", ["full", "multiscale-b"])
def test_train_eval_sample_end_to_end(tmp_path: Path, model: str, shared_data_dir: Path):
    run_dir = tmp_path / "run"
    small = ["--data-dir", str(shared_data_dir), "--set", "hidden=8", "--set", "layers=2", "--set", "resnet_blocks=1", "--set", "batch_size=4",
             "--set", "eval_images=8", "--set", "eval_every=2", "--set", "checkpoint_every=2"]
    assert run(["pixelcnn", "train", "--preset", "mnist-class", "--model", model, "--run-dir", str(run_dir),
                "--iterations", "3"] + small) == 0
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["split"] == "train"] == [1, 2, 3]
    # resuming a finished run does no more steps; asking for more continues from the checkpoint
    assert run(["pixelcnn", "train", "--preset", "mnist-class", "--model", model, "--run-dir", str(run_dir),
                "--iterations", "3"] + small) == 0
    record = tmp_path / "rec.json"
    assert run(["pixelcnn", "eval", "--run-dir", str(run_dir), "--n-eval", "6", "--record", str(record),
                "--data-dir", str(shared_data_dir)]) == 0
    rec = json.loads(record.read_text())
    assert rec["metric"] == "bits_per_dim" and rec["n_eval"] == 6 and rec["iterations"] == 3
    from icml17.pixelcnn.train import load_trained
    assert rec["parameters"] == sum(p.numel() for p in load_trained(run_dir)[1].parameters())
    assert 0 < rec["value"] < 8 and rec["experiment"] == f"mnist-class-{'full' if model == 'full' else 'typeB'}"
    named = tmp_path / "named.json"  # --name labels a variant's record apart from the preset's
    assert run(["pixelcnn", "eval", "--run-dir", str(run_dir), "--n-eval", "2", "--record", str(named),
                "--name", "mnist-class-small", "--data-dir", str(shared_data_dir)]) == 0
    assert json.loads(named.read_text())["experiment"] == "mnist-class-small"
    if model != "full":
        assert run(["pixelcnn", "sample", "--run-dir", str(run_dir), "--n", "2", "--data-dir", str(shared_data_dir)]) == 0
        for name in ("samples.png", "coarse_to_fine.png", "superres.png"):
            assert (run_dir / "samples" / name).stat().st_size > 0


def test_resume_after_interruption_is_exact(tmp_path: Path, shared_data_dir: Path):
    """Train 4 steps at once vs 1 step (stopped by the time budget) + resume: identical weights."""
    import torch

    from icml17.core.checkpoint import load_checkpoint
    from icml17.pixelcnn.presets import make_config
    from icml17.pixelcnn.train import train

    cfg = make_config("binarized-mnist", "multiscale-a", {"hidden": 8, "layers": 1, "resnet_blocks": 1, "batch_size": 4,
                                                          "iterations": 4, "eval_images": 4, "eval_every": 2,
                                                          "train_images": 64})
    train(cfg, tmp_path / "once", progress=False, data_dir=shared_data_dir)
    first = train(cfg, tmp_path / "twice", progress=False, data_dir=shared_data_dir, time_budget_s=0.0)
    assert first.steps_done == 1
    train(cfg, tmp_path / "twice", progress=False, data_dir=shared_data_dir)
    a = load_checkpoint(tmp_path / "once" / "checkpoints" / "last.pt")["state"]["model"]
    b = load_checkpoint(tmp_path / "twice" / "checkpoints" / "last.pt")["state"]["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "once" / "metrics.jsonl").read_text() == (tmp_path / "twice" / "metrics.jsonl").read_text()


@pytest.mark.slow
def test_demo_section_adds_samples_and_speed(tmp_path: Path, shared_data_dir: Path, monkeypatch):
    """The demo's own code path, shortened: a couple of steps of a narrow model."""
    from icml17.core.report import Report
    from icml17.pixelcnn import commands

    real = commands.demo_section.__globals__
    report = Report(tmp_path)
    monkeypatch.setitem(real, "DEMO_OVERRIDES", {"iterations": 2, "eval_every": 2, "eval_images": 4, "hidden": 6,
                                                 "batch_size": 2, "layers": 1, "resnet_blocks": 1})
    commands.demo_section(report, tmp_path / "pixelcnn", shared_data_dir, quick=True)
    (section,) = report.sections
    assert "evaluations" in section.text and "extrapolated" in section.text
    assert len(section.images) == 2 and all((tmp_path / p).is_file() for p, _ in section.images)


@pytest.mark.parametrize("argv0", ["/usr/bin/icml17", "/x/src/icml17/__main__.py", "/x/src/icml17/cli.py",
                                   "/x/src/icml17/pixelcnn/__main__.py"])
def test_records_name_the_cli_command_however_it_was_launched(monkeypatch, argv0: str):
    from icml17.pixelcnn import commands

    rest = ["pixelcnn", "eval", "--run-dir", "r"] if "pixelcnn/" not in argv0 else ["eval", "--run-dir", "r"]
    monkeypatch.setattr("sys.argv", [argv0, *rest])
    assert commands._cli_command() == "icml17 pixelcnn eval --run-dir r"
