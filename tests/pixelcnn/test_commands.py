"""End-to-end: ``icml17 pixelcnn train / eval / sample`` on a few steps of the synthetic MNIST into tmp_path (through
the CLI's own entry point), exact resume, and the demo section."""

import json
from pathlib import Path

import pytest
from pcnn_helpers import small_run_flags

from icml17.cli import main


def run(argv: list[str]) -> int:
    return main([str(a) for a in argv])


@pytest.mark.parametrize("model", ["full", "multiscale-b"])
def test_train_eval_sample_end_to_end(tmp_path: Path, model: str, synthetic_data_dir: Path):
    run_dir = tmp_path / "run"
    train = [
        "pixelcnn",
        "train",
        "--preset",
        "mnist-class",
        "--model",
        model,
        "--run-dir",
        run_dir,
        "--iterations",
        "3",
        *small_run_flags(synthetic_data_dir, "checkpoint_every=2"),
    ]
    assert run(train) == 0
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["split"] == "train"] == [1, 2, 3]
    # resuming a finished run does no more steps; asking for more continues from the checkpoint
    assert run(train) == 0
    assert [
        json.loads(x)["step"]
        for x in (run_dir / "metrics.jsonl").read_text().splitlines()
        if json.loads(x)["split"] == "train"
    ] == [1, 2, 3]
    records = tmp_path / "records"
    experiment = f"mnist-class-{'full' if model == 'full' else 'typeB'}"
    assert (
        run(
            [
                "pixelcnn",
                "eval",
                "--run-dir",
                run_dir,
                "--n-eval",
                "6",
                "--record",
                records,
                "--data-dir",
                synthetic_data_dir,
            ]
        )
        == 0
    )
    rec = json.loads((records / f"{experiment}.json").read_text())
    assert rec["metric"] == "bits_per_dim" and rec["n_eval"] == 6 and rec["iterations"] == 3
    # the commands as typed: the training run's, then this evaluation's
    assert rec["command"].startswith("icml17 pixelcnn train --preset mnist-class")
    assert f"; icml17 pixelcnn eval --run-dir {run_dir} --n-eval 6" in rec["command"]
    from icml17.pixelcnn.evaluate import load_run

    assert rec["parameters"] == sum(p.numel() for p in load_run(run_dir).model.parameters())
    assert 0 < rec["value"] < 8 and rec["experiment"] == experiment
    # --name labels a variant's record apart from the preset's
    assert (
        run(
            [
                "pixelcnn",
                "eval",
                "--run-dir",
                run_dir,
                "--n-eval",
                "2",
                "--record",
                records,
                "--name",
                "mnist-class-small",
                "--data-dir",
                synthetic_data_dir,
            ]
        )
        == 0
    )
    assert json.loads((records / "mnist-class-small.json").read_text())["experiment"] == "mnist-class-small"
    # --preset beside --run-dir must agree with the run (its model is the run's unless --model says otherwise)
    assert (
        run(
            [
                "pixelcnn",
                "eval",
                "--run-dir",
                run_dir,
                "--preset",
                "mnist-class",
                "--n-eval",
                "2",
                "--data-dir",
                synthetic_data_dir,
            ]
        )
        == 0
    )
    assert (
        run(
            [
                "pixelcnn",
                "eval",
                "--run-dir",
                run_dir,
                "--preset",
                "mnist",
                "--n-eval",
                "2",
                "--data-dir",
                synthetic_data_dir,
            ]
        )
        == 2
    )
    if model != "full":
        assert (
            run(["pixelcnn", "sample", "--run-dir", run_dir, "--samples", "2", "--data-dir", synthetic_data_dir]) == 0
        )
        for name in ("samples.png", "coarse_to_fine.png", "superres.png"):
            assert (run_dir / "samples" / name).stat().st_size > 0


def test_resume_after_interruption_is_exact(tmp_path: Path, synthetic_data_dir: Path):
    """Train 4 steps at once vs 1 step (stopped by the time budget) + resume: identical weights."""
    import torch

    from icml17.core.checkpoint import load_checkpoint
    from icml17.pixelcnn.presets import make_config
    from icml17.pixelcnn.train import train

    cfg = make_config(
        "binarized-mnist",
        "multiscale-a",
        {
            "hidden": 8,
            "layers": 1,
            "resnet_blocks": 1,
            "batch_size": 4,
            "iterations": 4,
            "eval_images": 4,
            "eval_every": 2,
            "train_images": 64,
        },
    )
    train(cfg, tmp_path / "once", progress=False, data_dir=synthetic_data_dir)
    first = train(cfg, tmp_path / "twice", progress=False, data_dir=synthetic_data_dir, time_budget_s=0.0)
    assert first.steps_done == 1
    train(cfg, tmp_path / "twice", progress=False, data_dir=synthetic_data_dir)
    a = load_checkpoint(tmp_path / "once" / "checkpoints" / "last.pt")["state"]["model"]
    b = load_checkpoint(tmp_path / "twice" / "checkpoints" / "last.pt")["state"]["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "once" / "metrics.jsonl").read_text() == (tmp_path / "twice" / "metrics.jsonl").read_text()


@pytest.mark.slow
def test_demo_section_adds_samples_and_speed(tmp_path: Path, synthetic_data_dir: Path, monkeypatch):
    """The demo's own code path, its live training shortened to a couple of steps of a narrow model."""
    from icml17 import weights
    from icml17.core.report import Report
    from icml17.pixelcnn import demo

    if demo.SHIPPED not in weights.names("pixelcnn"):
        pytest.skip(f"the shipped PixelCNN weights {demo.SHIPPED!r} are not in src/icml17/weights yet")
    real = demo.make_config

    def shortened(preset, model=None, overrides=None):
        if overrides and "iterations" in overrides:  # the live run (the timed full model keeps the shipped width)
            overrides = {
                **overrides,
                "iterations": 2,
                "eval_every": 2,
                "eval_images": 4,
                "hidden": 6,
                "batch_size": 2,
                "layers": 1,
                "resnet_blocks": 1,
            }
        return real(preset, model, overrides)

    monkeypatch.setattr(demo, "make_config", shortened)
    report = Report(tmp_path)
    demo.demo_section(report, tmp_path / "pixelcnn", synthetic_data_dir, quick=True)
    (section,) = report.sections
    assert "evaluations" in section.text and "activation caching" in section.text and "binarized-mnist" in section.text
    assert len(section.images) == 5 and all((tmp_path / p).is_file() for p, _ in section.images)
