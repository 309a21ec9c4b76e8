"""HalfCheetah goal velocity: is MAML still ahead of the pretrained policy after one step when both first steps are
tuned for one step on a fine lattice? (The committed cheetah-vel records tune the pretrained step over 5 sizes half
a decade apart on 10 validation tasks, scored over steps 1-3, and keep MAML at its inner learning rate 0.1.)

For each method: the step size of LATTICE with the best mean return after one step on 40 validation tasks (seed
20170307), then the return after one step with it on the 40 test tasks (seed 20170306), paired with the other
method task by task. Every curve is cached under runs/maml-rl/cheetah-first-step/ as it finishes (resumable).
Runs the trained policies of reproduce.sh's cheetah-vel lines (runs/maml-rl/cheetah-vel, cheetah-vel-pretrained).

    python results/maml-rl/cheetah_first_step.py      # about 6 minutes of one thread
    -> results/maml-rl/cheetah-vel-first-step.json
"""
import json
import time
from pathlib import Path

import numpy as np
import torch

from icml17.core.results import write_record
from icml17.core.stats import mean_ci95
from icml17.maml.rl.evaluate import TEST_SEED, VALIDATION_SEED, curve, load_run

torch.set_num_threads(1)
LATTICE = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2)
RUNS = {"maml": "runs/maml-rl/cheetah-vel", "pretrained": "runs/maml-rl/cheetah-vel-pretrained"}
TASKS = 40
CACHE = Path("runs/maml-rl/cheetah-first-step")
SECONDS = []  # compute time of every curve used, cached ones included


def cached_curve(method: str, trained, lr: float, seed: int) -> list:
    """Per-task returns after 0 and 1 steps at ``lr`` on TASKS tasks drawn from ``seed`` (cached per run length,
    so a run trained on is evaluated afresh)."""
    path = CACHE / f"{method}-{trained.iterations}its-{seed}-{lr}.json"
    if not path.exists():
        t0 = time.perf_counter()
        returns = curve(trained, TASKS, 1, lr, seed).tolist()
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"returns": returns, "seconds": time.perf_counter() - t0}))
        print(method, seed, lr, round(float(np.mean(returns, 0)[1]), 2), flush=True)
    cached = json.loads(path.read_text())
    SECONDS.append(cached["seconds"])
    return cached["returns"]


def main() -> None:
    out = {}
    for method, run_dir in RUNS.items():
        trained = load_run(run_dir)
        scores = {lr: float(np.mean(cached_curve(method, trained, lr, VALIDATION_SEED), 0)[1]) for lr in LATTICE}
        best = max(scores, key=scores.get)
        test = np.array(cached_curve(method, trained, best, TEST_SEED))
        out[method] = {"iterations": trained.iterations, "step_size": best,
                       "validation_scores": {str(k): round(v, 2) for k, v in scores.items()},
                       "returns": [round(float(x), 2) for x in test.mean(0)], "per_task_step1": test[:, 1].tolist()}
        if method == "maml":
            out[method]["meta_trained_inner_lr"] = trained.cfg.inner_lr
    diff = np.array(out["maml"]["per_task_step1"]) - np.array(out["pretrained"]["per_task_step1"])
    mean, ci = mean_ci95(diff)
    write_record(Path("results/maml-rl/cheetah-vel-first-step.json"), {
        "system": "maml-rl", "experiment": "cheetah-vel-first-step",
        "metric": "return after 1 step, MAML minus pretrained, each first step tuned for one step",
        "value": round(mean, 2), "ci95": round(ci, 2), "higher_is_better": True, "seed": 0, "n_eval": TASKS,
        "validation_tasks": TASKS, "lattice": list(LATTICE),
        "tasks_maml_ahead": int((diff > 0).sum()),
        "wall_time_s": round(sum(SECONDS), 1),
        "command": "python results/maml-rl/cheetah_first_step.py",
        "note": "one trained policy per method (the cheetah-vel records' runs); validation tasks seed 20170307, test "
                "tasks seed 20170306; returns after 0 and 1 steps; value: paired over the 40 test tasks",
        "methods": out})


if __name__ == "__main__":
    main()
