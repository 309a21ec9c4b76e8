"""End to end through the real entry points: training resumes exactly after SIGKILL, bad input stops with a
message that says what to change, evaluation writes a record in the project's schema."""

import importlib
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
import torch

from icml17.cli import main as icml17
from icml17.core.checkpoint import load_checkpoint
from icml17.core.config import ConfigError
from icml17.core.loop import NonFiniteError, read_metrics
from icml17.core.results import check_record
from icml17.maml.rl.envs import EnvError, PointNav
from icml17.maml.rl.evaluate import evaluate, load_run, write_result_record
from icml17.maml.rl.policy import GaussianMLPPolicy, check_action_size
from icml17.maml.rl.presets import make_config
from icml17.maml.rl.sampler import NonFiniteRolloutError
from icml17.maml.rl.train import train

SRC = Path(__file__).resolve().parents[3] / "src"
TINY = ["meta_batch=3", "rollouts=2", "horizon=8", "hidden=8", "eval_every=0", "checkpoint_every=2", "cg_iters=3"]
TIMING = ("env_steps_per_s", "sample_s", "iteration_s")


def tiny_cfg(**kw):
    return replace(
        make_config("point-nav"),
        meta_batch=3,
        rollouts=2,
        horizon=8,
        hidden=(8,),
        eval_every=0,
        checkpoint_every=2,
        cg_iters=3,
        eval_rollouts=2,
        **kw,
    )


def _cli(run_dir, iterations, wait=True, extra=()):
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "icml17",
        "maml-rl",
        "train",
        "--preset",
        "point-nav",
        "--run-dir",
        str(run_dir),
        "--iterations",
        str(iterations),
        "--threads",
        "1",
        "--no-progress",
        "--set",
        *TINY,
        *extra,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    return proc


def _without_timing(run_dir):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run_dir)]


@pytest.mark.parametrize("batch", ["rollouts", "steps"])
def test_sigkill_then_resume_continues_the_same_run(tmp_path, batch):
    extra = [f"batch={batch}"]
    _cli(tmp_path / "reference", 16, extra=extra)
    killed = tmp_path / "killed"
    proc = _cli(killed, 16, wait=False, extra=extra)
    deadline = time.time() + 90
    while time.time() < deadline and len(read_metrics(killed)) < 5:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert 0 < load_checkpoint(killed / "checkpoints" / "last.pt")["step"] < 16
    _cli(killed, 16, extra=extra)
    reference = _without_timing(tmp_path / "reference")
    assert len(reference) == 16 and _without_timing(killed) == reference


@pytest.mark.parametrize("batch", ["rollouts", "steps"])
def test_training_logs_throughput_and_each_accepted_step_improves_the_surrogate(tmp_path, batch):
    result = train(replace(tiny_cfg(batch=batch), iterations=3), tmp_path, progress=False)
    rows = read_metrics(tmp_path, "train")
    assert result.steps_done == 3 and len(rows) == 3
    for row in rows:
        # 3 tasks x 2 rollouts x 8 steps, before and after adaptation (fewer if a goal is reached, or, counted in
        # steps, where running paths are dropped)
        assert row["env_steps_per_s"] > 0 and 0 < row["env_steps"] <= 3 * 2 * 8 * 2
        assert row["paths_post"] >= (2 if batch == "rollouts" else 1)
        assert row["step_accepted"] == 1  # tiny problem: the line search must find a step
        assert row["surrogate_after"] < row["surrogate_before"] and 0 < row["kl"] <= 0.01


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
    with pytest.raises(
        NonFiniteError,
        match=r"step 6 failed: point-nav returned a non-finite .*last good "
        r"checkpoint \(step 4\)",
    ) as caught:
        # fixed rollouts: 8 environment calls per batch, so the poisoned call's iteration is known
        train(replace(tiny_cfg(batch="rollouts"), iterations=10), tmp_path, progress=False)
    assert isinstance(caught.value.__cause__, NonFiniteRolloutError)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 4


def test_non_finite_before_the_first_checkpoint_says_none_was_written(tmp_path, monkeypatch):
    step = PointNav.step
    monkeypatch.setattr(
        PointNav, "step", lambda self, a, active=None: (lambda o, r, d: (o, r * np.nan, d))(*step(self, a, active))
    )
    with pytest.raises(NonFiniteError, match="step 1 failed.*no checkpoint was written yet"):
        train(replace(tiny_cfg(), iterations=10), tmp_path, progress=False)
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_an_adam_step_that_makes_parameters_non_finite_is_never_checkpointed(tmp_path, monkeypatch):
    train_module = importlib.import_module("icml17.maml.rl.train")  # the module (the package exports the function)

    real = train_module.adam_step
    calls = {"n": 0}

    def exploding(objective, params, optimizer, leaves):
        calls["n"] += 1
        out = real(objective, params, optimizer, leaves)
        if calls["n"] == 3:
            with torch.no_grad():
                leaves["log_std"].fill_(float("nan"))  # what an infinite gradient does through Adam
        return out

    monkeypatch.setattr(train_module, "adam_step", exploding)
    with pytest.raises(NonFiniteError, match="step 3 failed: the Adam step made parameters log_std non-finite"):
        train(replace(tiny_cfg(), iterations=6, outer="adam"), tmp_path, progress=False)
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert saved["step"] == 2 and torch.isfinite(saved["state"]["policy"]["log_std"]).all()


def test_bad_input_says_what_to_change():
    with pytest.raises(ConfigError, match="point-nav"):
        make_config("hopper-vel")
    with pytest.raises(ConfigError, match="mode"):
        replace(make_config("point-nav"), mode="maml", inner_steps=0).validate()
    with pytest.raises(EnvError, match="act_dim=2"):
        check_action_size(GaussianMLPPolicy(2, 3), act_dim=2, obs_dim=2, env="point-nav")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "icml17",
            "maml-rl",
            "train",
            "--preset",
            "point-nav",
            "--set",
            "max_kl=-1",
            "--iterations",
            "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
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


def _spied_curves(tmp_path, monkeypatch):
    """A one-iteration point-nav run, and every evaluation curve it is then asked for, as (seed, tasks, lr, later)."""
    ev = importlib.import_module("icml17.maml.rl.evaluate")  # the module, not the function the package exports
    train(replace(tiny_cfg(), iterations=1), tmp_path / "run", progress=False)
    seen = []
    real_curve = ev.curve

    def spy(trained, tasks, steps, lr, seed, rollouts=None, batch_steps=None, later=None):
        seen.append((seed, tasks, lr, later))
        return real_curve(trained, tasks, steps, lr, seed, rollouts, batch_steps, later)

    monkeypatch.setattr(ev, "curve", spy)
    return ev, load_run(tmp_path / "run"), seen


def test_tuned_later_steps_are_chosen_on_validation_tasks_for_every_method(tmp_path, monkeypatch):
    """--later-steps tuned picks steps 2-3's size from the grid by the validation tasks' return over steps 2..3
    (never the test tasks), keeps the first step's rule, and records the choice and the grid's scores."""
    ev, trained, seen = _spied_curves(tmp_path, monkeypatch)
    result = ev.evaluate(trained, "maml", tasks=2, steps=3, later_steps="tuned", tune_tasks=2)
    tuning = [s for s in seen if s[0] == ev.VALIDATION_SEED]
    assert [s[3] for s in tuning] == list(ev.LR_GRID) and all(s[2] == trained.cfg.inner_lr for s in tuning)
    scores = result["later_lr_scores"]
    assert result["later_lr"] == max(scores, key=scores.get)
    assert seen[-1] == (ev.TEST_SEED, 2, trained.cfg.inner_lr, result["later_lr"])  # the test curve uses the choice
    record = json.loads(write_result_record(result, trained, tmp_path / "rec", "cmd").read_text())
    assert record["later_steps"] == "tuned" and record["later_step_size"] == result["later_lr"]
    assert set(record["later_step_size_grid"]) == {str(x) for x in ev.LR_GRID}
    with pytest.raises(ConfigError, match="later_steps"):
        ev.evaluate(trained, "maml", tasks=2, steps=3, later_steps="third")
    assert ev.eval_step_sizes(0.5, 3) == [0.5, 0.25, 0.25] and ev.eval_step_sizes(0.5, 3, 0.1) == [0.5, 0.1, 0.1]


def test_a_given_grid_and_validation_task_count_drive_every_tuning_curve(tmp_path, monkeypatch):
    """--grid and --tune-tasks: pretrained's first step and every method's later steps are tried on exactly the
    given sizes, each curve on that many validation tasks; the record names both; a bad grid stops first."""
    ev, trained, seen = _spied_curves(tmp_path, monkeypatch)
    grid = (0.02, 0.2)
    result = ev.evaluate(trained, "pretrained", tasks=2, steps=2, later_steps="tuned", tune_tasks=3, grid=grid)
    tuning = [s for s in seen if s[0] == ev.VALIDATION_SEED]
    assert all(s[1] == 3 for s in tuning) and len(tuning) == 2 * len(grid)
    first, later = tuning[: len(grid)], tuning[len(grid) :]
    assert [s[2] for s in first] == list(grid) and all(s[3] is None for s in first)  # later steps at half
    assert [s[3] for s in later] == list(grid) and all(s[2] == result["lr"] for s in later)
    assert seen[-1] == (ev.TEST_SEED, 2, result["lr"], result["later_lr"])
    record = json.loads(write_result_record(result, trained, tmp_path / "rec", "cmd").read_text())
    assert set(record["step_size_grid"]) == set(record["later_step_size_grid"]) == {"0.02", "0.2"}
    assert record["validation_tasks"] == 3
    seen.clear()
    for bad in ((), (0.1, 0.0), (0.1, float("inf"))):
        with pytest.raises(ConfigError, match="grid"):
            ev.evaluate(trained, "pretrained", tasks=2, steps=2, later_steps="tuned", grid=bad)
    # a grid or validation-task count where nothing is tuned would be silently ignored: refused instead
    for method, kwargs in (
        ("maml", {"grid": grid}),
        ("maml", {"tune_tasks": 3, "later_steps": "tuned", "steps": 1}),
        ("pretrained", {"grid": grid, "lr": 0.1}),
        ("oracle", {"tune_tasks": 3}),
        ("random", {"grid": grid, "steps": 0}),
    ):  # no step taken: no size to tune
        with pytest.raises(ConfigError, match="nothing is tuned"):
            ev.evaluate(trained, method, tasks=2, **{"steps": 3, **kwargs})
    with pytest.raises(ConfigError, match="oracle is not adapted"):
        ev.evaluate(trained, "oracle", tasks=2, later_steps="tuned")
    assert not seen  # rejected before any rollout


def test_per_horizon_tuning_gives_each_horizon_its_best_single_size_for_every_method(tmp_path, monkeypatch):
    """--per-horizon, from its definition: for each k, the grid size whose curve (every step at that size) has the
    best mean validation return after k steps; the test return after k steps is column k of the test curve at
    that size. Recomputed here from plain curves, never from the tuning code."""
    ev = importlib.import_module("icml17.maml.rl.evaluate")  # the module, not the function the package exports

    train(replace(tiny_cfg(), iterations=1), tmp_path / "run", progress=False)
    trained = load_run(tmp_path / "run")
    grid, steps = (0.01, 0.3, 3.0), 3
    short = {"batch_steps": 0}  # full rollouts of the tiny config, not point-nav's 4,000-step batches: seconds
    validation = {lr: ev.curve(trained, 3, steps, lr, ev.VALIDATION_SEED, later=lr, **short).mean(0) for lr in grid}
    expected_sizes = [max(grid, key=lambda lr: float(validation[lr][k])) for k in range(1, steps + 1)]
    assert len(set(expected_sizes)) > 1  # the horizons choose differently, so the column picking is exercised
    test = {lr: ev.curve(trained, 2, steps, lr, ev.TEST_SEED, later=lr, **short) for lr in grid}
    for method in ("maml", "pretrained"):  # MAML's first step is tuned too, not held at its inner size
        result = ev.evaluate(trained, method, tasks=2, steps=steps, grid=grid, tune_tasks=3, per_horizon=True, **short)
        assert result["step_sizes_per_horizon"] == expected_sizes and result["lr"] == expected_sizes[0]
        per_task = np.array(result["per_task"])
        for k, lr in enumerate(expected_sizes, start=1):
            np.testing.assert_allclose(per_task[:, k], test[lr][:, k].numpy())
        for lr in grid:  # before any step, every size sees the same rollouts
            np.testing.assert_allclose(per_task[:, 0], test[lr][:, 0].numpy())
    record = json.loads(write_result_record(result, trained, tmp_path / "rec", "cmd").read_text())
    check_record(record)
    assert record["step_sizes_per_horizon"] == expected_sizes and record["later_steps"] == "per-horizon"
    assert record["later_step_size"] is None and record["validation_tasks"] == 3
    assert set(record["step_size_grid"]) == {str(x) for x in grid}
    seen = []
    real_curve = ev.curve
    monkeypatch.setattr(
        ev,
        "curve",
        lambda t, n, k, lr, seed, *a, **kw: seen.append((seed, lr)) or real_curve(t, n, k, lr, seed, *a, **kw),
    )
    ev.evaluate(trained, "pretrained", tasks=1, steps=1, tune_tasks=1, per_horizon=True, **short)
    tried = [lr for seed, lr in seen if seed == ev.VALIDATION_SEED]  # the default grid, with MAML's inner size
    assert tried == sorted(set(ev.LR_GRID) | {trained.cfg.inner_lr})
    for method, kwargs, message in (
        ("oracle", {}, "oracle is not adapted"),
        ("maml", {"steps": 0}, "steps >= 1"),
        ("pretrained", {"lr": 0.1}, "leave lr unset"),
        ("maml", {"later_steps": "tuned"}, "leave later_steps 'half'"),
    ):
        with pytest.raises(ConfigError, match=message):
            ev.evaluate(trained, method, tasks=2, per_horizon=True, **{"steps": 3, **kwargs})


@pytest.mark.mujoco
@pytest.mark.parametrize("preset", ["ant-vel", "ant-dir"])
def test_ant_presets_train_resume_and_evaluate_end_to_end(tmp_path, preset):
    # the preset itself (105 observations, 8 actions, its own rollout count), shrunk only in size and time
    cfg = replace(
        make_config(preset),
        meta_batch=2,
        horizon=5,
        hidden=(8,),
        eval_every=0,
        checkpoint_every=1,
        cg_iters=2,
        hvp_tasks=1,
        eval_rollouts=2,
        iterations=1,
    )
    train(cfg, tmp_path / "run", progress=False)
    train(replace(cfg, iterations=2), tmp_path / "run", progress=False)  # resumes: one more iteration
    assert [r["step"] for r in read_metrics(tmp_path / "run") if r["split"] == "train"] == [1, 2]
    result = evaluate(load_run(tmp_path / "run"), "maml", tasks=2, steps=1)
    assert len(result["returns"]) == 2 and np.isfinite(result["returns"]).all()


def test_figure5_curves_come_from_the_seed_summary_when_there_is_one(tmp_path):
    """One run: bars are mean -/+ its 95% interval; a method summarised over seeds by ``icml17 results seeds``:
    the mean over seeds with bars from the worst to the best seed (computed here by hand from the seed records)."""
    from icml17.maml.rl.plots import plot_returns, return_curves

    def record(name, seed, returns):
        folder = tmp_path if seed == 0 else tmp_path / "seeds"
        folder.mkdir(exist_ok=True)
        stem = name if seed == 0 else f"{name}-seed{seed}"
        rec = {
            "system": "maml-rl",
            "experiment": stem,
            "metric": "return",
            "value": returns[1],
            "seed": seed,
            "higher_is_better": True,
            "returns": returns,
            "returns_ci95": [4.0, 2.0, 1.0, 0.5],
        }
        (folder / f"{stem}.json").write_text(json.dumps(rec))

    record("fam", 0, [-40.0, -12.0, -4.0, -3.0])
    curves = return_curves(tmp_path, "fam")
    assert set(curves) == {"maml"}
    assert curves["maml"]["low"] == [-44.0, -14.0, -5.0, -3.5]
    assert curves["maml"]["high"] == [-36.0, -10.0, -3.0, -2.5]

    by_seed = {
        "fam": [[-41.0, -12.0, -3.0, -3.0], [-43.0, -11.0, -4.0, -2.0], [-42.0, -13.0, -5.0, -4.0]],
        "fam-pretrained": [[-43.0, -19.0, -8.0, -5.0], [-41.0, -17.0, -6.0, -3.0]],
    }
    for name, runs in by_seed.items():
        for seed, returns in enumerate(runs):
            record(name, seed, returns)
    record("fam-random", 0, [-70.0, -60.0, -55.0, -50.0])  # not summarised: its one run's interval
    assert (
        icml17(
            [
                "results",
                "seeds",
                "fam",
                "fam-pretrained",
                "--record",
                str(tmp_path),
                "--name",
                "fam-seeds",
                "--field",
                "returns",
            ]
        )
        == 0
    )
    curves = return_curves(tmp_path, "fam")
    assert set(curves) == {"maml", "pretrained", "random"}
    for method, name in (("maml", "fam"), ("pretrained", "fam-pretrained")):
        runs = np.array(by_seed[name])
        np.testing.assert_allclose(curves[method]["mean"], runs.mean(0))
        np.testing.assert_allclose(curves[method]["low"], runs.min(0))
        np.testing.assert_allclose(curves[method]["high"], runs.max(0))
    assert curves["random"]["low"] == [-74.0, -62.0, -56.0, -50.5]
    assert plot_returns(tmp_path, "point-nav", tmp_path / "fig.png", family="fam").stat().st_size > 0


# ------------------------------------------------------------------------------------------------ random streams
def _tiny(**kw):
    from icml17.maml.rl.presets import make_config

    return make_config("point-nav", overrides={"meta_batch": 2, "rollouts": 2, "horizon": 10, **kw})


def test_random_streams_are_the_three_seeded_generators_of_a_run():
    from icml17.maml.rl.train import RandomStreams

    s = RandomStreams.from_seed(7)
    # the draws of the generators train() used before the streams had names: seed, seed + 1, seed + 2
    assert s.tasks.integers(0, 2**31, 5).tolist() == np.random.default_rng(7).integers(0, 2**31, 5).tolist()
    assert s.env_seeds.random(3).tolist() == np.random.default_rng(8).random(3).tolist()
    assert torch.equal(torch.randn(4, generator=s.noise), torch.randn(4, generator=torch.Generator().manual_seed(9)))
    assert list(s.checkpoint_state()) == ["tasks", "env_seeds", "noise"]  # the names every checkpoint holds


def test_meta_iteration_with_streams_equals_the_three_generators():
    from icml17.maml.rl.train import RandomStreams, build_policy, make_sampler, meta_iteration

    cfg = _tiny()
    runs = []
    for streams in (
        RandomStreams.from_seed(3),
        (np.random.default_rng(3), np.random.default_rng(4), torch.Generator().manual_seed(5)),
    ):
        policy = build_policy(cfg)
        args = (streams,) if isinstance(streams, RandomStreams) else streams
        m = meta_iteration(cfg, policy, make_sampler(cfg), None, *args)
        runs.append(
            ({k: v for k, v in m.items() if not k.endswith("_s")}, [p.detach().clone() for p in policy.parameters()])
        )
    (m1, p1), (m2, p2) = runs
    assert m1 == m2 and all(torch.equal(a, b) for a, b in zip(p1, p2))


def test_meta_iteration_validates_a_config_built_with_replace():
    from icml17.maml.rl.train import RandomStreams, build_policy, make_sampler, meta_iteration

    cfg = _tiny()
    policy, sampler = build_policy(cfg), make_sampler(cfg)
    with pytest.raises(ConfigError, match="gamma must lie"):
        meta_iteration(replace(cfg, gamma=2.0), policy, sampler, None, RandomStreams.from_seed(0))
    with pytest.raises(ConfigError, match="needs an optimizer"):
        meta_iteration(replace(cfg, outer="adam"), policy, sampler, None, RandomStreams.from_seed(0))
    with pytest.raises(ConfigError, match="rollouts must be >= 1"):
        make_sampler(replace(cfg, rollouts=0))
    with pytest.raises(ConfigError, match="hidden must list"):
        build_policy(replace(cfg, hidden=()))
