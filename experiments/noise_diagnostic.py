"""How much of the step-3 gap between the tuned pretrained policy and MAML on 2D navigation is exploration noise.

For each trained run of the point-nav-fine-tuned family (MAML and pretrained, seeds 0-2) and its tuned step sizes
(read from those records), adapt on the 40 test tasks exactly as the evaluation does (same tasks, same seeds; the
evaluation's own number is checked), then sample the policy after 3 steps again, on fresh sampling seeds shared by
every variant and the same batch rule (4,000 time steps per task, restarting copies), with:

- ``own``: the adapted policy as it is (a control: how much resampling alone moves the score);
- ``mean_action``: its mean action, the noise switched off (log-std -20);
- ``log_std=<v>``: its mean action with one noise level ``v`` for every method (a sweep, chosen before looking at
  where the gap is smallest would have been better: the whole sweep is recorded).

It also records the adapted log-std (mean over tasks and action dimensions). Wrote
results/maml-rl/point-nav-noise-diagnostic.json; what it showed is in experiments/README.md. Its inputs (the
point-nav-fine-tuned records and their trained runs) are no longer kept in results/, and it measured 2D navigation
under the evaluation batch rule of its time (paths still running at 4,000 steps dropped): it documents the
experiment, it does not reproduce a current result. Run from the repo root (about 4 minutes, one thread):
python experiments/noise_diagnostic.py
"""

import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from icml17.core.results import write_record
from icml17.core.seeds import load_family
from icml17.maml.rl.envs import sample_tasks
from icml17.maml.rl.evaluate import EVAL_BATCH_STEPS, TEST_SEED, eval_step_sizes, load_run
from icml17.maml.rl.policy import params_of
from icml17.maml.rl.train import make_sampler, sample_and_adapt

torch.set_num_threads(1)
root = Path("results/maml-rl")
FAMILY, STEPS, COPIES = "point-nav-fine-tuned", 3, 40  # the records whose runs and tuned step sizes are used
COMMON_LOG_STDS = (-0.8, -1.0, -1.2, -1.4, -1.7)  # around and between the two methods' own levels (-0.9, -1.3)


def record_of(family: str, method: str, seed: int) -> dict:
    """The record of ``family``'s ``method`` (``<family>[-method]``) for training seed ``seed``."""
    fam = load_family(root, family if method == "maml" else f"{family}-{method}")
    return fam.records[fam.seeds.index(seed)]


def run_dir_of(record: dict) -> str:
    """The run directory the record's evaluation read (the last --run-dir of its command)."""
    return re.findall(r"--run-dir (\S+)", record["command"])[-1]


def scores(run_dir: str, record: dict) -> dict:
    trained = load_run(run_dir)
    cfg, policy = trained.cfg, trained.policy
    tasks = sample_tasks(cfg.env, 40, np.random.default_rng(TEST_SEED))
    sampler = make_sampler(cfg)
    sizes = eval_step_sizes(record["step_size"], STEPS, record["later_step_size"])
    samples, _, adapted = sample_and_adapt(
        cfg,
        policy,
        params_of(policy),
        sampler,
        tasks,
        COPIES,
        STEPS,
        sizes,
        torch.Generator().manual_seed(TEST_SEED),
        np.random.default_rng(TEST_SEED + 1),
        EVAL_BATCH_STEPS["point-nav"],
    )
    out = {
        "as_adapted": samples[-1].mean_returns().mean().item(),
        "adapted_log_std": adapted["log_std"].mean().item(),
        "initial_log_std": policy.log_std.mean().item(),
        "step_sizes": sizes,
    }
    variants = {"own": None, "mean_action": -20.0, **{f"log_std={v}": v for v in COMMON_LOG_STDS}}
    for key, log_std in variants.items():
        params = adapted if log_std is None else dict(adapted, log_std=torch.full_like(adapted["log_std"], log_std))
        r = sampler.sample_steps(
            policy,
            params,
            tasks,
            COPIES,
            EVAL_BATCH_STEPS["point-nav"],
            torch.Generator().manual_seed(TEST_SEED + 2),
            np.random.default_rng(TEST_SEED + 3),
            per_task=True,
        )
        out[key] = r.mean_returns().mean().item()
    return out


t0 = time.perf_counter()
results = {}
for method in ("maml", "pretrained"):
    for seed in range(3):
        record = record_of(FAMILY, method, seed)
        s = scores(run_dir_of(record), record)
        assert abs(s["as_adapted"] - record["returns"][-1]) < 1e-6, (s["as_adapted"], record["returns"][-1])
        results.setdefault(method, []).append(
            {"seed": seed, **{k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()}}
        )
        print(method, seed, results[method][-1], flush=True)
KEYS = ["as_adapted", "own", "mean_action", *[f"log_std={v}" for v in COMMON_LOG_STDS], "adapted_log_std"]
means = {m: {k: round(float(np.mean([r[k] for r in rs])), 3) for k in KEYS} for m, rs in results.items()}
gaps = {k: round(means["maml"][k] - means["pretrained"][k], 3) for k in KEYS[:-1]}
write_record(
    root / "point-nav-noise-diagnostic.json",
    {
        "system": "maml-rl",
        "experiment": "point-nav-noise-diagnostic",
        "metric": "return after 3 steps with the adapted mean action, MAML minus pretrained, mean over seeds",
        "value": gaps["mean_action"],
        "higher_is_better": True,
        "seed": 0,
        "seeds": [0, 1, 2],
        "n_eval": 40,
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "common_log_stds": list(COMMON_LOG_STDS),
        "command": "python experiments/noise_diagnostic.py",
        "note": "same 40 test tasks and adaptation as point-nav-fine-tuned*; 'as_adapted' is the evaluation's own "
        "batch, every other score a fresh batch on sampling seeds shared by all variants",
        "gap_maml_minus_pretrained": gaps,
        "means": means,
        "by_seed": results,
    },
)
print(json.dumps({"means": means, "gaps": gaps}, indent=1))
