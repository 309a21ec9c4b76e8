import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from icml17.core import CheckpointError, load_checkpoint
from icml17.core.loop import read_metrics

SCRIPT = Path(__file__).with_name("loop_script.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def _run(run_dir: Path, *extra: str, wait: bool = True) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(run_dir), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if wait:
        out, err = proc.communicate(timeout=120)
        proc.stdout_text, proc.stderr_text = out, err
    return proc


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    assert _run(reference).returncode == 0
    ref_log = (reference / "metrics.jsonl").read_text()
    assert len(read_metrics(reference, "train")) == 60

    killed = tmp_path / "killed"
    proc = _run(killed, "--sleep", "0.05", wait=False)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until training is well past a checkpoint, then kill -9
        if len(read_metrics(killed, "train")) >= 23:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    step_at_kill = load_checkpoint(killed / "checkpoints" / "last.pt")["step"]
    assert 0 < step_at_kill < 60

    assert _run(killed).returncode == 0
    assert (killed / "metrics.jsonl").read_text() == ref_log


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    proc = _run(tmp_path, "--nan-at", "12")
    assert proc.returncode != 0
    assert "non-finite metric at step 13" in proc.stderr_text
    assert "(step 10) is kept at" in proc.stderr_text
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 10


def test_resume_with_other_config_is_refused_naming_the_keys_and_leaves_the_run_untouched(tmp_path):
    assert _run(tmp_path, "--steps", "10").returncode == 0
    config_before = (tmp_path / "config.json").read_text()
    log_before = (tmp_path / "metrics.jsonl").read_text()
    proc = _run(tmp_path, "--steps", "10", "--lr", "0.5")
    assert proc.returncode != 0
    assert (
        "lr: 0.01 -> 0.5" in proc.stderr_text
        and "steps" not in proc.stderr_text.split("another config:")[1].split(".")[0]
    )
    # the refused attempt wrote nothing: config.json still describes the checkpoint's run
    assert (tmp_path / "config.json").read_text() == config_before
    assert (tmp_path / "metrics.jsonl").read_text() == log_before


def test_resume_may_change_intervals(tmp_path):
    assert _run(tmp_path, "--steps", "10").returncode == 0
    assert _run(tmp_path, "--steps", "10", "--checkpoint-every", "3").returncode == 0


def test_no_resume_sets_the_old_run_aside_instead_of_joining_it(tmp_path):
    assert _run(tmp_path, "--steps", "20").returncode == 0
    old_log = (tmp_path / "metrics.jsonl").read_text()
    assert _run(tmp_path, "--steps", "10", "--fresh").returncode == 0
    # the new run starts at step 1 and owns the log; its checkpoint is its own
    assert [r["step"] for r in read_metrics(tmp_path, "train")] == list(range(1, 11))
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 10
    # a later plain rerun resumes the new run (not the old 20-step checkpoint), so nothing is joined or lost
    assert _run(tmp_path, "--steps", "10").returncode == 0
    assert [r["step"] for r in read_metrics(tmp_path, "train")] == list(range(1, 11))
    (previous,) = (tmp_path / "previous").iterdir()
    assert (previous / "metrics.jsonl").read_text() == old_log
    assert load_checkpoint(previous / "checkpoints" / "last.pt")["step"] == 20


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_a_checkpoint_then_resume_matches_uninterrupted_run(tmp_path, sig):
    reference = tmp_path / "reference"
    assert _run(reference, "--checkpoint-every", "50").returncode == 0
    stopped = tmp_path / "stopped"
    proc = _run(stopped, "--sleep", "0.05", "--checkpoint-every", "50", wait=False)
    deadline = time.time() + 60
    while time.time() < deadline and len(read_metrics(stopped, "train")) < 12:
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    step = load_checkpoint(stopped / "checkpoints" / "last.pt")["step"]
    assert 12 <= step < 50  # saved on the signal, not at a periodic checkpoint (every 50)
    assert _run(stopped, "--checkpoint-every", "50").returncode == 0
    assert (stopped / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()


def test_nan_before_the_first_checkpoint_says_there_is_none(tmp_path):
    proc = _run(tmp_path, "--nan-at", "2")
    assert proc.returncode != 0
    assert "no checkpoint was written yet" in proc.stderr_text
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_metrics_log_has_train_and_eval_rows(tmp_path):
    assert _run(tmp_path, "--steps", "14").returncode == 0
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows if r["split"] == "eval"] == [7, 14]
    assert all("loss" in r for r in rows if r["split"] == "train")
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt["step"] == 14 and json.loads(ckpt["config"]) == {"lr": 0.01, "steps": 14, "checkpoint_every": 5}
    assert ckpt["wall_time_s"] > 0


def test_checkpoint_error_is_raised_in_process(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_a_config_field_added_after_a_checkpoint_resumes_only_at_its_default(tmp_path):
    """A run written before a field existed was trained as the field's default says; any other value is another
    experiment."""
    from dataclasses import dataclass

    from icml17.core.config import ConfigError
    from icml17.core.runs import check_resume

    @dataclass
    class Cfg:
        lr: float = 0.1
        batch: str = "rollouts"  # the field added later

    ckpt = {"step": 3, "config": json.dumps({"lr": 0.1})}
    check_resume(tmp_path, ckpt, Cfg())
    with pytest.raises(ConfigError, match="batch: 'rollouts' -> 'steps'"):
        check_resume(tmp_path, ckpt, Cfg(batch="steps"))
