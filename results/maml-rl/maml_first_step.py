"""Would tuning MAML's first step, as the pretrained and random baselines' is tuned, change the point-nav-fine-tuned
comparison? For each MAML seed (0-2): the fine-tuned protocol's first-step tuning (icml17.maml.rl.evaluate.tune_lr:
mean return over steps 1-3, later steps at half), applied to MAML with the grid and validation-task count its
point-nav-fine-tuned record used.
Writes results/maml-rl/point-nav-maml-first-step.json. Run from the repo root (about 5 minutes, one thread):
python results/maml-rl/maml_first_step.py"""
import time
from pathlib import Path

import torch

from icml17.core.results import write_record
from icml17.maml.rl.evaluate import load_run, tune_lr
from records import record_of, run_dir_of

torch.set_num_threads(1)
root = Path("results/maml-rl")
t0 = time.perf_counter()
by_seed = []
for seed in (0, 1, 2):
    # the MAML records of the fine-tuned family: their runs, their grid and validation-task count
    record = record_of("point-nav-fine-tuned", "maml", seed)
    trained = load_run(run_dir_of(record))
    grid = tuple(float(k) for k in record["later_step_size_grid"])
    best, scores = tune_lr(trained, grid, tasks=record["validation_tasks"], steps=3)
    by_seed.append({"seed": seed, "trained_inner_lr": trained.cfg.inner_lr, "chosen": best,
                    "validation_scores": {str(k): round(v, 3) for k, v in scores.items()}})
    print(by_seed[-1], flush=True)
write_record(root / "point-nav-maml-first-step.json", {
    "system": "maml-rl", "experiment": "point-nav-maml-first-step",
    "metric": "seeds whose tuned first step equals the meta-trained inner learning rate",
    "value": sum(r["chosen"] == r["trained_inner_lr"] for r in by_seed), "higher_is_better": True,
    "seed": 0, "seeds": [0, 1, 2], "n_eval": 40, "wall_time_s": round(time.perf_counter() - t0, 1),
    "command": "sh results/maml-rl/reproduce-point-nav-fine-tuned.sh; python results/maml-rl/maml_first_step.py",
    "note": "validation tasks only (seed 20170307); scores are mean returns over steps 1-3",
    "by_seed": by_seed})
