"""The training and evaluation commands end to end (the functions the CLI calls) on synthetic data, bad input
refused before training, and exact resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from icml17.cli import main
from icml17.core.checkpoint import load_checkpoint
from icml17.core.config import ConfigError, override_config
from icml17.maml.engine import check_output_size
from icml17.maml.models import build_maml_model
from icml17.maml.presets import make_config
from icml17.maml.train import train

REPO = Path(__file__).resolve().parents[2]
RECORD_FIELDS = [
    "system",
    "experiment",
    "metric",
    "value",
    "ci95",
    "paper",
    "paper_ci95",
    "higher_is_better",
    "n_eval",
    "iterations",
    "wall_time_s",
    "hardware",
    "torch",
    "seed",
    "command",
    "date",
]
QUICK_SINE = ["--set", "eval_every=5", "eval_tasks=5", "checkpoint_every=5", "log_every=1"]


def _maml_train(preset: str, run_dir, *args) -> list[str]:
    """argv of ``icml17 maml train --preset preset --run-dir run_dir *args``."""
    return [str(a) for a in ["maml", "train", "--preset", preset, "--run-dir", run_dir, *args]]


def test_sinusoid_train_and_eval_commands_write_records(tmp_path):
    run = tmp_path / "run"
    assert main(_maml_train("sinusoid-k5", str(run), "--iterations", "10", "--no-progress", *QUICK_SINE)) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 11))
    assert {"mse_step0", "mse_step1", "mse_step10"} <= set(next(r for r in rows if r["split"] == "eval"))
    assert json.loads((run / "config.json").read_text())["config"]["preset"] == "sinusoid-k5"
    assert main(["maml", "eval", "--run-dir", str(run), "--tasks", "20", "--record", str(tmp_path / "res")]) == 0
    for k in (1, 10):
        rec = json.loads((tmp_path / "res" / f"sinusoid-k5-step{k}.json").read_text())
        assert list(rec) == RECORD_FIELDS or set(RECORD_FIELDS) <= set(rec)
        assert rec["metric"] == "mse" and rec["n_eval"] == 20 and rec["iterations"] == 10
        assert rec["paper"] == (1.13 if k == 1 else None) and "maml train" in rec["command"]
    ev = json.loads((run / "eval-test-q100.json").read_text())
    assert len(ev["mean"]) == len(ev["ci95"]) == 11 and ev["tasks"] == 20
    assert main(["maml", "plots", "--run-dir", str(run)]) == 0
    for name in ("learning-curves.png", "fig2-adaptation.png", "fig3-mse-vs-steps.png"):
        assert (run / name).stat().st_size > 1000


def test_omniglot_train_and_eval_with_query_variant(tmp_path, synthetic_data_dir):
    run = tmp_path / "om"
    assert (
        main(
            _maml_train(
                "omniglot-5w1s",
                str(run),
                "--data-dir",
                str(synthetic_data_dir),
                "--iterations",
                "2",
                "--no-progress",
                "--set",
                "meta_batch=2",
                "eval_every=2",
                "eval_tasks=4",
                "checkpoint_every=1",
            )
        )
        == 0
    )
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2
    assert (
        main(
            [
                "maml",
                "eval",
                "--run-dir",
                str(run),
                "--data-dir",
                str(synthetic_data_dir),
                "--tasks",
                "6",
                "--queries",
                "15",
                "--steps",
                "2",
                "--record",
                str(tmp_path / "res"),
            ]
        )
        == 0
    )
    rec = json.loads((tmp_path / "res" / "omniglot-5w1s-q15.json").read_text())
    assert rec["metric"] == "accuracy" and 0 <= rec["value"] <= 1 and rec["higher_is_better"] is True


def test_miniimagenet_preset_runs_on_a_synthetic_copy(tmp_path):
    from icml17.data import make_synthetic_miniimagenet

    make_synthetic_miniimagenet(tmp_path / "data", classes_per_split=(6, 5, 5), images_per_class=18)
    cfg = override_config(
        make_config("miniimagenet-5w1s"),
        {"iterations": 1, "meta_batch": 1, "train_queries": 2, "inner_steps": 1, "eval_every": 0},
    )
    result = train(cfg, tmp_path / "run", tmp_path / "data", progress=False)
    assert result.steps_done == 1 and "accuracy" in result.last_metrics
    with pytest.raises(ConfigError, match="only 18"):  # 1 shot + 15 queries fits 18, 1 + 20 does not
        train(override_config(cfg, {"train_queries": 20}), tmp_path / "run2", tmp_path / "data", progress=False)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["ways=2000"], "only 1100"),
        (["shots=10", "train_queries=11"], "only 20"),
        (["inner_lr=0"], "inner_lr must be positive"),
        (["meta_lr=-1"], "meta_lr must be positive"),
        (["inner_lrs=0.1"], "unknown config key"),
    ],
)
def test_bad_input_is_refused_before_training(tmp_path, synthetic_data_dir, capsys, overrides, message):
    run = tmp_path / "bad"
    code = main(
        _maml_train(
            "omniglot-5w1s", str(run), "--data-dir", str(synthetic_data_dir), "--no-progress", "--set", *overrides
        )
    )
    assert code == 2 and message in capsys.readouterr().err
    assert not (run / "checkpoints").exists()


def test_model_output_size_must_match_ways():
    model = build_maml_model("conv4-omniglot", ways=3)
    with pytest.raises(ConfigError, match="outputs 3 values .* ways = 5"):
        check_output_size(model, torch.zeros(2, 1, 28, 28), 5)


def test_checkpoint_of_another_preset_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_maml_train("sinusoid-k5", str(run), "--iterations", "2", "--no-progress", *QUICK_SINE)) == 0
    code = main(_maml_train("sinusoid-k10", str(run), "--iterations", "2", "--no-progress"))
    err = capsys.readouterr().err
    assert code == 2 and "'sinusoid-k5'" in err and "'sinusoid-k10'" in err
    # Extending the same preset to more iterations, or batching its tasks in other chunks, resumes instead.
    assert main(_maml_train("sinusoid-k5", str(run), "--iterations", "4", "--no-progress", *QUICK_SINE)) == 0
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4
    assert (
        main(
            _maml_train(
                "sinusoid-k5", str(run), "--iterations", "5", "--no-progress", *QUICK_SINE, "--set", "chunk_size=2"
            )
        )
        == 0
    )  # --set repeats
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 5


def _train_cmd(run: Path, iterations: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "icml17.maml",
        "train",
        "--preset",
        "sinusoid-k5",
        "--run-dir",
        str(run),
        "--iterations",
        str(iterations),
        "--threads",
        "1",
        "--no-progress",
        "--set",
        "eval_every=20",
        "eval_tasks=5",
        "checkpoint_every=10",
        "log_every=1",
    ]


def test_sigkill_and_resume_reproduce_an_uninterrupted_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    iterations = 120
    subprocess.run(_train_cmd(tmp_path / "full", iterations), env=env, check=True, capture_output=True)
    run = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(run, iterations), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = run / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and load_checkpoint(ckpt)["step"] >= 30:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = load_checkpoint(ckpt)["step"]
    assert 30 <= killed_at < iterations
    subprocess.run(_train_cmd(run, iterations), env=env, check=True, capture_output=True)
    assert (run / "metrics.jsonl").read_text() == (tmp_path / "full" / "metrics.jsonl").read_text()
    full = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")["state"]["engine"]
    resumed = load_checkpoint(ckpt)["state"]["engine"]
    for k in full:
        assert torch.equal(full[k], resumed[k])
