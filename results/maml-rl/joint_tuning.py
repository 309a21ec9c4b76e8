"""2D navigation with every method's step sizes tuned jointly and per horizon: for a budget of k policy-gradient
steps (k = 1, 2, 3), the pair (first step, later steps) with the best mean return after k steps on the 40
validation tasks (seed 20170307, never the test tasks), then that pair's return after k steps on the 40 test
tasks. Candidates: the 7 x 7 grid of the fine-tuned records and 4 single sizes between its points, then a local
search from each horizon's best pair on the lattice of those 11 sizes. Every method is treated alike, MAML's
first step included (it is not held at its meta-trained 0.5). The same validation curves give the paper's protocol
for the baselines, one step size for all steps ("fine-tuned with a manually tuned step size"): the best pair on
the diagonal.

This answers "is MAML ahead of pretrained after k steps when each gets its best step sizes for k steps?", the
question left open by the one-size-at-a-time tuning of point-nav-fine-tuned (see the 2D-navigation protocols on the MAML-RL results page).

Run from the repo root after reproduce-point-nav-fine-tuned.sh (its records name the runs and the grid):
    python results/maml-rl/joint_tuning.py run maml 0        # one (method, seed): ~15 min, one thread
    python results/maml-rl/joint_tuning.py summary           # -> results/maml-rl/point-nav-joint-tuned.json
Each validation curve is cached under runs/maml-rl/joint-tuning/ as it finishes, so a killed run resumes.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from icml17.core.results import write_record
from icml17.core.stats import mean_ci95
from icml17.maml.rl.evaluate import TEST_SEED, VALIDATION_SEED, curve, load_run, random_init
from records import ROOT, pairings_ahead, record_of, run_dir_of

torch.set_num_threads(1)
CACHE = Path("runs/maml-rl/joint-tuning")
METHODS = ("maml", "pretrained", "random")
STEPS = 3
SEEDS = (0, 1, 2)
# one size for every step (the paper's protocol) has a single knob, so it gets the grid's gaps filled in too
SINGLE_EXTRA = (0.03, 0.07, 0.15, 0.3)


def fine_tuned_record(method: str, seed: int) -> dict:
    return record_of("point-nav-fine-tuned", method, seed)


def policy_of(method: str, seed: int):
    if method == "random":
        return random_init("point-nav", seed)
    return load_run(run_dir_of(fine_tuned_record(method, seed)))


def run(method: str, seed: int) -> None:
    """Validation curves for the whole grid, then the test curves of each horizon's chosen pairs."""
    record = fine_tuned_record(method, seed)
    grid = [float(k) for k in record["later_step_size_grid"]]
    tasks = record["validation_tasks"]
    trained = policy_of(method, seed)
    path = CACHE / f"{method}-seed{seed}.json"
    state = json.loads(path.read_text()) if path.exists() else {"validation": {}, "test": {}, "seconds": 0.0}

    def save():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(path)

    def timed(key, table, seed_, n):
        if key in state[table]:
            return
        first, later = map(float, key.split(","))
        t0 = time.perf_counter()
        per_task = curve(trained, n, STEPS, first, seed_, later=later)
        state[table][key] = per_task.tolist()
        state["seconds"] += time.perf_counter() - t0
        save()
        print(method, seed, table, key, [round(x, 2) for x in per_task.mean(0).tolist()], flush=True)

    for first in grid:
        for later in grid:
            timed(f"{first},{later}", "validation", VALIDATION_SEED, tasks)
    for size in SINGLE_EXTRA:
        timed(f"{size},{size}", "validation", VALIDATION_SEED, tasks)
    # then a local search on the finer lattice: from each horizon's best pair, its neighbours (one lattice point
    # up or down in either size), over all horizons again until every horizon's best pair has all its neighbours
    # tried (a pair added for one horizon can become another's best)
    lattice = sorted(set(grid) | set(SINGLE_EXTRA))
    while True:
        untried = []
        for k in range(1, STEPS + 1):
            first, later = map(float, chosen(state["validation"], k)["joint"].split(","))
            untried += [f"{f},{l}" for f in neighbours(lattice, first) for l in
                        (neighbours(lattice, later) if k > 1 else [later])]  # step 1 ignores the later size
        untried = sorted({key for key in untried if key not in state["validation"]})
        if not untried:
            break
        for key in untried:
            timed(key, "validation", VALIDATION_SEED, tasks)
    for key in {p for k in range(1, STEPS + 1) for p in chosen(state["validation"], k).values()}:
        timed(key, "test", TEST_SEED, record["n_eval"])


def neighbours(lattice: list, x: float) -> list:
    i = lattice.index(x)
    return lattice[max(i - 1, 0):i + 2]


def chosen(validation: dict, k: int, grid: list | None = None) -> dict:
    """The pairs with the best mean validation return after k steps: jointly, and on the diagonal (one size);
    only among pairs of ``grid`` sizes when given (the first pass, before the lattice was filled in)."""
    score = {key: float(np.mean(np.array(v)[:, k])) for key, v in validation.items()
             if grid is None or all(float(x) in grid for x in key.split(","))}
    diagonal = {key: s for key, s in score.items() if len(set(key.split(","))) == 1}
    return {"joint": max(score, key=score.get), "single": max(diagonal, key=diagonal.get)}


def summary() -> None:
    out, seconds = {}, 0.0
    grid = [float(k) for k in fine_tuned_record("maml", 0)["later_step_size_grid"]]
    # the reported protocols, and the same two searched on the 7-size grid alone (the first pass, kept to show
    # how much the filled-in lattice moved the numbers)
    protocols = {"joint": ("joint", None), "single": ("single", None),
                 "joint_grid_only": ("joint", grid), "single_grid_only": ("single", grid)}
    for method in METHODS:
        for seed in SEEDS:
            state = json.loads((CACHE / f"{method}-seed{seed}.json").read_text())
            seconds += state["seconds"]
            for protocol, (kind, only) in protocols.items():
                entry = out.setdefault(protocol, {}).setdefault(method, {"returns_by_seed": [], "pairs_by_seed": [],
                                                                         "per_task_by_seed": []})
                pairs = [chosen(state["validation"], k, only)[kind] for k in range(1, STEPS + 1)]
                test = [np.array(state["test"][p]) for p in pairs]
                step0 = float(test[0][:, 0].mean())
                entry["returns_by_seed"].append([round(step0, 2)] + [round(float(t[:, k].mean()), 2)
                                                                     for k, t in zip(range(1, STEPS + 1), test)])
                entry["pairs_by_seed"].append([pairs[0].split(",")[0]] + pairs[1:])  # k = 1: only the first
                entry["per_task_by_seed"].append([t[:, k].tolist() for k, t in zip(range(1, STEPS + 1), test)])
    # the paper's protocol: the baselines at their best single size, MAML at the reference test script's rule (its
    # meta-trained 0.5, later steps at half; nothing tuned), from the point-nav family's records of the same runs
    out["paper"] = {"maml": {"returns_by_seed": [], "pairs_by_seed": [], "per_task_by_seed": []},
                    **{m: dict(e) for m, e in out["single"].items() if m != "maml"}}
    for seed in SEEDS:
        rec = record_of("point-nav", "maml", seed)
        per_task = np.array(rec["per_task_returns"])
        entry = out["paper"]["maml"]
        entry["returns_by_seed"].append([round(float(x), 2) for x in per_task.mean(0)])
        entry["pairs_by_seed"].append([str(rec["step_size"])] + [f"{rec['step_size']},{rec['later_step_size']}"] * 2)
        entry["per_task_by_seed"].append([per_task[:, k].tolist() for k in range(1, STEPS + 1)])
    for protocol, methods in out.items():
        for m in methods.values():
            r = np.array(m["returns_by_seed"])
            m["mean"], m["min"], m["max"] = (np.round(r.mean(0), 3).tolist(), r.min(0).tolist(), r.max(0).tolist())
        # seed pairings (MAML seed i against baseline seed j) and task-paired differences (same 40 test tasks)
        for base in ("pretrained", "random"):
            a, b = np.array(methods["maml"]["returns_by_seed"]), np.array(methods[base]["returns_by_seed"])
            methods["maml"][f"pairings_ahead_of_{base}"] = pairings_ahead(a, b)[1:]  # after 1..STEPS steps
            diffs = []
            for k in range(STEPS):
                # the seeds share the 40 test tasks: average each task over the seeds, then pair by task
                d = np.mean([np.array(methods["maml"]["per_task_by_seed"][s][k]) -
                             np.array(methods[base]["per_task_by_seed"][s][k]) for s in range(3)], axis=0)
                mean, ci = mean_ci95(d)
                diffs.append([round(mean, 2), round(ci, 2)])
            methods["maml"][f"task_paired_minus_{base}"] = diffs
    for methods in out.values():
        for m in methods.values():
            m.pop("per_task_by_seed", None)
    joint = out["joint"]
    write_record(ROOT / "point-nav-joint-tuned.json", {
        "system": "maml-rl", "experiment": "point-nav-joint-tuned",
        "metric": "mean return after 3 steps, MAML minus pretrained, step sizes tuned jointly per horizon",
        "value": round(joint["maml"]["mean"][3] - joint["pretrained"]["mean"][3], 2), "higher_is_better": True,
        "seed": 0, "seeds": list(SEEDS), "n_eval": 40, "validation_tasks": 40,
        "grid": grid,
        "single_extra": list(SINGLE_EXTRA),
        "wall_time_s": round(seconds, 1),
        "command": "sh results/maml-rl/reproduce-point-nav-joint-tuned.sh",
        "note": "returns after 0-3 steps on the 40 test tasks (seed 20170306); after k steps: the (first, later) "
                "pair with the best validation return after k steps ('joint'), or the best single size for all "
                "steps ('single', the paper's protocol); pairs per horizon k = 1, 2, 3 ('first,later'; k = 1: the "
                "first size alone); "
                "'paper': the baselines as 'single', MAML at the reference test script's rule (0.5, later steps "
                "at half, untuned; records point-nav*.json of the same runs); "
                "'*_grid_only': the same searches restricted to the 7-size grid (the first pass); "
                "task_paired_minus_*: MAML minus baseline per test task, averaged over the 3 seed pairs (i, i), "
                "then mean and 95% interval over the 40 tasks",
        "protocols": out})


if __name__ == "__main__":
    if sys.argv[1:2] == ["run"]:
        run(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["summary"]:
        summary()
    else:
        sys.exit(__doc__)
