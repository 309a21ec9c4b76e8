"""Would tuning MAML's first step, as the pretrained and random baselines' is tuned, change the point-nav-fine-tuned
comparison? For each MAML seed (0-2): the fine-tuned protocol's first-step tuning (icml17.maml.rl.evaluate.tune_lr:
mean return over steps 1-3, later steps at half, 40 validation tasks, the same 7-size grid), applied to MAML.
Writes results/maml-rl/point-nav-maml-first-step.json. Run from the repo root (about 5 minutes, one thread):
python results/maml-rl/maml_first_step.py"""
import time
from pathlib import Path

import torch

from icml17.core.results import write_record
from icml17.maml.rl.evaluate import load_run, tune_lr

torch.set_num_threads(1)
GRID = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # reproduce-point-nav-fine-tuned.sh's --grid
RUNS = ["runs/maml-rl/mbs20/point-nav-steps-seed0", "runs/maml-rl/point-nav-ref/seed1",
        "runs/maml-rl/point-nav-ref/seed2"]
t0 = time.perf_counter()
by_seed = []
for seed, run_dir in enumerate(RUNS):
    trained = load_run(run_dir)
    best, scores = tune_lr(trained, GRID, tasks=40, steps=3)
    by_seed.append({"seed": seed, "trained_inner_lr": trained.cfg.inner_lr, "chosen": best,
                    "validation_scores": {str(k): round(v, 3) for k, v in scores.items()}})
    print(by_seed[-1], flush=True)
write_record(Path("results/maml-rl/point-nav-maml-first-step.json"), {
    "system": "maml-rl", "experiment": "point-nav-maml-first-step",
    "metric": "seeds whose tuned first step equals the meta-trained inner learning rate",
    "value": sum(r["chosen"] == r["trained_inner_lr"] for r in by_seed), "higher_is_better": True,
    "seed": 0, "seeds": [0, 1, 2], "n_eval": 40, "wall_time_s": round(time.perf_counter() - t0, 1),
    "command": "sh results/maml-rl/reproduce-point-nav-seeds.sh; python results/maml-rl/maml_first_step.py",
    "note": "validation tasks only (seed 20170307); scores are mean returns over steps 1-3",
    "by_seed": by_seed})
