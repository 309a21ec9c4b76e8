"""GPU check of MAML-RL (issue 27): 2D navigation meta-trains on a device, its checkpoint evaluates there and on the
CPU to the same returns, and one meta-iteration is timed on both. One record: ``OUT/maml-rl-<device type>.json``.

1. The ``point-nav`` preset (20 tasks x 2,000 time steps, TRPO with Gauss-Newton curvature products) meta-trains a
   few meta-iterations through the CLI (``maml-rl train --device``; TF32 as the CLI sets it). The policy, the inner
   step, the baseline and TRPO run on the device; the environments on the CPU.
2. The saved checkpoint's returns after 0 and 1 policy-gradient step on a few test tasks (the reference's 4,000-step
   batches), on the device and, reloaded, on the CPU, with the same tasks, reset seeds and action noise (CPU
   generators on both): in float64 (``agree``: within :data:`FP64_TOL`, rounding only), float32 with TF32 off
   (within :data:`FP32_TOL`: a float32 rounding difference can end a path at the goal one step apart, which moves
   the rest of that copy's batch) and float32 as the CLI runs (TF32 on; recorded, not judged). ``maml-rl eval
   --device`` runs too.
3. Speed, same run: one meta-iteration of the preset on the device (one warm-up, the median of the timed ones) and
   on the CPU (``torch`` threads as set, one timed iteration: it takes seconds), split into sampling and the rest;
   and the linear baseline's fit on the device, on the CPU, and with only the (F x F) least-squares solve on the CPU
   (the normal equations copied there and the coefficients back), medians of repeats.

    PYTHONPATH=src python3 benchmarks/gpu/maml_rl.py --device cuda --out results/bench   # under a minute on an H100
    PYTHONPATH=src python3 benchmarks/gpu/maml_rl.py --device cpu --tiny --out /tmp/gpu-maml-rl
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import check  # benchmarks/gpu/check.py, beside this script

from icml17.core import device as devices
from icml17.maml.rl.baseline import (
    advantages,
    discounted_returns,
    features,
    fit_linear_baseline,
)
from icml17.maml.rl.envs import sample_tasks
from icml17.maml.rl.evaluate import TEST_SEED, curve, load_run
from icml17.maml.rl.policy import params_of
from icml17.maml.rl.presets import make_config
from icml17.maml.rl.train import build_policy, make_sampler, meta_iteration

PRESET = "point-nav"
# sizes: --set overrides of the preset, meta-iterations trained, test tasks, evaluation batch in time steps,
# timed device meta-iterations, baseline-fit repeats
FULL = ({}, 4, 5, 4000, 3, 20)
TINY = ({"meta_batch": 3, "rollouts": 2, "horizon": 10, "hidden": (16,), "cg_iters": 3}, 2, 2, 40, 1, 3)
FP64_TOL = 1e-6  # mean return after k steps, float64 device vs CPU, relative to max(1, |CPU|)
FP32_TOL = 0.02  # the same in float32 with TF32 off


def say(msg: str) -> None:
    print(msg, flush=True)


cli = check.cli  # ``icml17 ARGV`` in this process: (exit code, its output)


def set_args(overrides: dict) -> list[str]:
    return [f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in overrides.items()]


def returns_on(
    run_dir: Path, device: torch.device, dtype: torch.dtype, tasks: int, batch_steps: int
) -> tuple[list[float], list[list[float]], float]:
    """Mean return after 0 and 1 step over ``tasks`` test tasks of the checkpoint on ``device`` in ``dtype``, the
    per-task returns, and the seconds taken."""
    trained = load_run(run_dir, device=device)
    trained.policy.to(dtype)
    devices.synchronize(device)
    t0 = time.perf_counter()
    per_task = curve(trained, tasks, 1, trained.cfg.inner_lr, TEST_SEED, batch_steps=batch_steps)
    devices.synchronize(device)
    return per_task.double().mean(0).tolist(), per_task.tolist(), time.perf_counter() - t0


def difference(a: list[float], b: list[float]) -> float:
    """The largest difference of two mean-return curves, relative to max(1, |b|)."""
    return max(abs(x - y) / max(1.0, abs(y)) for x, y in zip(a, b))


# ------------------------------------------------------------------------------------------------------- speed
def time_meta_iterations(cfg, device: torch.device, warmup: int, reps: int) -> dict:
    """Seconds per meta-iteration of ``cfg`` on ``device`` (same seeds on every device): the median of ``reps``
    after ``warmup`` untimed ones, and its sampling share."""
    policy = build_policy(cfg, device=device)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.meta_lr)
    sampler = make_sampler(cfg)
    streams = np.random.default_rng(0), np.random.default_rng(1), torch.Generator().manual_seed(2)
    rows = []
    for _ in range(warmup + reps):
        devices.synchronize(device)
        t0 = time.perf_counter()
        metrics = meta_iteration(cfg, policy, sampler, optimizer, *streams)
        devices.synchronize(device)
        rows.append({**metrics, "wall_s": time.perf_counter() - t0})
    median = lambda key: statistics.median(r[key] for r in rows[warmup:])
    # the first iteration's numbers: the same tasks and noise on every device, so close to the CPU's
    return {
        "seconds": round(median("wall_s"), 4),
        "sampling_seconds": round(median("sample_s"), 4),
        "env_steps": int(median("env_steps")),
        "timed": reps,
        "warmup": warmup,
        "first_iteration": {k: round(rows[0][k], 5) for k in ("return_pre", "return_post", "surrogate_before")},
    }


def fit_solving_on_cpu(rollouts, returns: torch.Tensor, ridge: float = 1e-5) -> torch.Tensor:
    """The baseline's values with the normal equations formed on the rollouts' device and only the least-squares
    solve on the CPU (for timing against the all-device fit; no ridge retries)."""
    x = features(rollouts.obs, rollouts.starts).double()
    m = rollouts.mask.double()[..., None]
    k, f = x.shape[0], x.shape[-1]
    x = (x * m).reshape(k, -1, f)
    y = (returns.double() * rollouts.mask.double()).reshape(k, -1, 1)
    xtx, xty = (x.transpose(1, 2) @ x).cpu(), (x.transpose(1, 2) @ y).cpu()
    coef = torch.linalg.lstsq(xtx + ridge * torch.eye(f, dtype=torch.float64), xty).solution.to(x.device)
    return (x @ coef).reshape(rollouts.mask.shape).to(returns.dtype) * rollouts.mask


def time_baseline(cfg, device: torch.device, reps: int) -> dict:
    """Median milliseconds for one meta-batch of rollouts: the advantages (returns, baseline fit, GAE,
    normalisation) on ``device`` and on the CPU, and the baseline's fit alone on ``device`` with its solve there
    or on the CPU."""
    policy = build_policy(cfg, device=device)
    tasks = sample_tasks(cfg.env, cfg.meta_batch, np.random.default_rng(0))
    rollouts = make_sampler(cfg).sample_lanes(
        policy,
        params_of(policy),
        tasks,
        cfg.meta_batch * cfg.rollouts * make_sampler(cfg).horizon,
        torch.Generator().manual_seed(0),
        np.random.default_rng(0),
    )
    on_cpu = rollouts.to_device(torch.device("cpu"))
    returns = discounted_returns(rollouts.rewards, rollouts.mask, cfg.gamma, rollouts.starts)

    def median_ms(fn, on: torch.device) -> float:
        fn()
        times = []
        for _ in range(reps):
            devices.synchronize(on)
            t0 = time.perf_counter()
            fn()
            devices.synchronize(on)
            times.append(time.perf_counter() - t0)
        return round(1e3 * statistics.median(times), 3)

    return {
        "tasks": cfg.meta_batch,
        "steps": int(rollouts.mask.sum().item()),
        "features": 2 * rollouts.obs.shape[-1] + 4,
        "repeats": reps,
        "advantages_on_device_ms": median_ms(lambda: advantages(rollouts, cfg.gamma, cfg.gae_lambda), device),
        "advantages_on_cpu_ms": median_ms(lambda: advantages(on_cpu, cfg.gamma, cfg.gae_lambda), torch.device("cpu")),
        "fit_on_device_ms": median_ms(lambda: fit_linear_baseline(rollouts, returns), device),
        "fit_solve_on_cpu_ms": median_ms(lambda: fit_solving_on_cpu(rollouts, returns), device),
    }


# --------------------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> tuple[dict, torch.device]:
    dev = devices.resolve(args.device)
    cpu = torch.device("cpu")
    overrides, iters, tasks, batch_steps, reps, fit_reps = TINY if args.tiny else FULL
    cfg = replace(make_config(PRESET), **overrides)
    rec: dict = {
        "benchmark": "device-check-maml-rl",
        "preset": PRESET,
        "tiny": args.tiny,
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
        "command": "python3 benchmarks/gpu/maml_rl.py " + " ".join(sys.argv[1:]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        # 1. meta-train on the device through the CLI (TF32 as the CLI sets it)
        code, _, seconds = check.timed_train(
            dev,
            cli,
            "maml-rl",
            "train",
            "--preset",
            PRESET,
            "--run-dir",
            run_dir,
            "--device",
            args.device,
            "--iterations",
            iters,
            "--no-progress",
            "--set",
            "eval_every=0",
            f"checkpoint_every={iters}",
            *set_args(overrides),
        )
        log = check.metrics_log(run_dir)
        train_log = [r for r in log if r["split"] == "train"]
        rec["train"] = {
            "exit_code": code,
            "iterations": iters,
            "command_seconds": round(seconds, 2),
            "seconds_per_iteration": [round(r["iteration_s"], 3) for r in train_log],
            "return_post": [round(r["return_post"], 3) for r in train_log],
            "steps_accepted": sum(r["step_accepted"] for r in train_log),
            "tf32": devices.tf32_enabled() if dev.type == "cuda" else None,
        }
        if dev.type == "cuda":
            rec["train"]["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 3)
        say(f"trained: {rec['train']}")

        # 2. returns after 0 and 1 step on the device and, from the checkpoint, on the CPU
        tf32 = devices.tf32_enabled()
        as_trained, _, _ = returns_on(run_dir, dev, torch.float32, tasks, batch_steps)
        devices.set_tf32(False)
        strict, _, dev_s = returns_on(run_dir, dev, torch.float32, tasks, batch_steps)
        dev64, dev64_tasks, _ = returns_on(run_dir, dev, torch.float64, tasks, batch_steps)
        devices.set_tf32(tf32)
        cpu32, _, cpu_s = returns_on(run_dir, cpu, torch.float32, tasks, batch_steps)
        cpu64, cpu64_tasks, _ = returns_on(run_dir, cpu, torch.float64, tasks, batch_steps)
        d64, d32, dtf = difference(dev64, cpu64), difference(strict, cpu32), difference(as_trained, cpu32)
        rec["eval"] = {
            "tasks": tasks,
            "batch_steps": batch_steps,
            "metric": "mean return after 0, 1 steps",
            "device_fp64": dev64,
            "cpu_fp64": cpu64,
            "difference_fp64": d64,
            "per_task_max_difference_fp64": max(
                abs(a - b) for x, y in zip(dev64_tasks, cpu64_tasks) for a, b in zip(x, y)
            ),
            "device_fp32": strict,
            "cpu_fp32": cpu32,
            "difference_fp32": d32,
            "device_fp32_tf32": as_trained,
            "difference_fp32_tf32": dtf,
            "tolerance_fp64": FP64_TOL,
            "tolerance_fp32": FP32_TOL,
            "agree": d64 <= FP64_TOL and d32 <= FP32_TOL,
            "device_seconds_fp32": round(dev_s, 3),
            "cpu_seconds_fp32": round(cpu_s, 3),
        }
        say(f"evaluated: {rec['eval']}")
        code, _ = cli(
            "maml-rl",
            "eval",
            "--preset",
            PRESET,
            "--run-dir",
            run_dir,
            "--device",
            args.device,
            "--tasks",
            2,
            "--steps",
            1,
            "--batch-steps",
            batch_steps,
        )
        rec["eval"]["cli_exit_code"] = code

    # 3. speed: one meta-iteration and the baseline's fit, device vs CPU, same run
    speed_cfg = replace(cfg, eval_every=0)
    rec["speed"] = {
        "meta_iteration": {
            "device": time_meta_iterations(speed_cfg, dev, 1, reps),
            "cpu": time_meta_iterations(speed_cfg, cpu, 0, 1),
            "cpu_threads": torch.get_num_threads(),
            "note": "sampling steps the environments on the CPU in both; the rest is "
            "the inner step, the baseline and TRPO",
        },
        "baseline_fit": time_baseline(cfg, dev, fit_reps),
    }
    mi = rec["speed"]["meta_iteration"]
    mi["speedup"] = round(mi["cpu"]["seconds"] / max(mi["device"]["seconds"], 1e-9), 2)
    mi["speedup_excluding_sampling"] = round(
        (mi["cpu"]["seconds"] - mi["cpu"]["sampling_seconds"])
        / max(mi["device"]["seconds"] - mi["device"]["sampling_seconds"], 1e-9),
        2,
    )
    say(f"speed: {rec['speed']}")
    rec["ok"] = bool(rec["train"]["exit_code"] == 0 and rec["eval"]["agree"] and rec["eval"]["cli_exit_code"] == 0)
    return rec, dev


def main() -> int:
    p = check.parser(__doc__, "maml-rl")
    args = p.parse_args()
    return check.finish(p, args, "maml-rl", run)


if __name__ == "__main__":
    sys.exit(main())
