"""End to end through the real entry points: training resumes exactly after SIGKILL, bad input stops with a
message that says what to change, evaluation writes a record in the project's schema."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from icml17.core.checkpoint import load_checkpoint
from icml17.core.config import ConfigError
from icml17.core.loop import read_metrics
from icml17.core.results import check_record
from icml17.maml.rl.envs import EnvError, PointNav
from icml17.maml.rl.evaluate import evaluate, load_run, write_result_record
from icml17.maml.rl.policy import GaussianMLPPolicy, check_action_size
from icml17.maml.rl.presets import get_preset
from icml17.maml.rl.sampler import NonFiniteRolloutError
from icml17.maml.rl.train import train

SRC = Path(__file__).resolve().parents[3] / "src"
TINY = ["meta_batch=3", "rollouts=2", "horizon=8", "hidden=8", "eval_every=0", "checkpoint_every=2",
        "cg_iters=3"]
TIMING = ("env_steps_per_s", "sample_s", "iteration_s")


def tiny_cfg(**kw):
    return replace(get_preset("point-nav"), meta_batch=3, rollouts=2, horizon=8, hidden=(8,), eval_every=0,
                   checkpoint_every=2, cg_iters=3, eval_rollouts=2, **kw)


def _cli(run_dir, iterations, wait=True):
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "icml17", "maml-rl", "train", "--preset", "point-nav", "--run-dir", str(run_dir),
           "--iterations", str(iterations), "--threads", "1", "--no-progress", "--set", *TINY]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    return proc


def _without_timing(run_dir):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run_dir)]


def test_sigkill_then_resume_continues_the_same_run(tmp_path):
    _cli(tmp_path / "reference", 16)
    killed = tmp_path / "killed"
    proc = _cli(killed, 16, wait=False)
    deadline = time.time() + 90
    while time.time() < deadline and len(read_metrics(killed)) < 5:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert 0 < load_checkpoint(killed / "checkpoints" / "last.pt")["step"] < 16
    _cli(killed, 16)
    reference = _without_timing(tmp_path / "reference")
    assert len(reference) == 16 and _without_timing(killed) == reference


def test_training_improves_and_logs_throughput(tmp_path):
    result = train(replace(tiny_cfg(), iterations=2), tmp_path, progress=False)
    rows = read_metrics(tmp_path, "train")
    assert result.steps_done == 2 and len(rows) == 2
    assert rows[0]["env_steps_per_s"] > 0 and rows[0]["step_accepted"] in (0, 1)


def test_non_finite_rewards_stop_with_a_message_and_keep_the_last_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    step = PointNav.step

    def poisoned(self, actions, active=None):
        calls["n"] += 1
        obs, reward, done = step(self, actions, active)
        if calls["n"] > 5 * 8 * 2:  # after 5 iterations (8 steps, pre- and post-update rollouts each)
            reward = reward * np.nan
        return obs, reward, done

    monkeypatch.setattr(PointNav, "step", poisoned)
    with pytest.raises(NonFiniteRolloutError, match="last good checkpoint"):
        train(replace(tiny_cfg(), iterations=10), tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 4


def test_bad_input_says_what_to_change():
    with pytest.raises(ConfigError, match="point-nav"):
        get_preset("hopper-vel")
    with pytest.raises(ConfigError, match="mode"):
        replace(get_preset("point-nav"), mode="maml", inner_steps=0).validate()
    with pytest.raises(EnvError, match="act_dim=2"):
        check_action_size(GaussianMLPPolicy(2, 3), act_dim=2, obs_dim=2, env="point-nav")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-m", "icml17", "maml-rl", "train", "--preset", "point-nav", "--set",
                           "max_kl=-1", "--iterations", "0"], env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2 and "max_kl must be a positive" in proc.stderr


def test_evaluation_writes_a_schema_checked_record(tmp_path):
    train(replace(tiny_cfg(), iterations=1), tmp_path / "run", progress=False)
    trained = load_run(tmp_path / "run")
    result = evaluate(trained, "maml", tasks=3, steps=3)
    assert len(result["returns"]) == 4 and np.isfinite(result["returns"]).all()
    path = write_result_record(result, trained, tmp_path / "records", "icml17 maml-rl eval --preset point-nav")
    record = json.loads(path.read_text())
    check_record(record)
    assert record["experiment"] == "point-nav" and record["value"] == result["returns"][1]
    assert record["paper_returns"] == [-40.4, -11.7, -3.3, -3.2] and record["higher_is_better"]
    from icml17.maml.rl.plots import plot_returns, plot_trajectories

    assert plot_returns(tmp_path / "records", "point-nav", tmp_path / "fig5.png").stat().st_size > 0
    assert plot_trajectories(tmp_path / "run", tmp_path / "fig4.png", rollouts=2).stat().st_size > 0
