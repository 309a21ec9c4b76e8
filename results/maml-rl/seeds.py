"""Figure 5's 2D-navigation methods over training seeds: results/maml-rl/point-nav[-method].json is seed 0,
results/maml-rl/seeds/point-nav[-method]-seed<k>.json the others (random: the initialisation seed). Per method and
step: each seed's mean return over the same 40 test tasks, the mean over seeds, min and max; per step, MAML against
each baseline: the gap of the means and whether MAML is ahead in every seed pairing (its worst seed above the
baseline's best). Writes results/maml-rl/<family>-seeds.json. Run from the repo root:
python results/maml-rl/seeds.py [family]   (point-nav: the reference's half-size later steps; point-nav-later-tuned:
later steps tuned on 10 validation tasks; point-nav-fine-tuned: every tuned step size from a finer grid on 40
validation tasks; point-nav-mbs40[-later-tuned]: the same at 40 tasks of full rollouts; point-nav-per-horizon:
each method's best single size for each number of steps, `maml-rl eval --per-horizon`). Where every seed's record
keeps its per-task returns, MAML minus each baseline per task with the seeds averaged, mean and 95% interval."""
import json
import sys
from pathlib import Path

import numpy as np

from icml17.core.results import write_record
from icml17.core.stats import mean_ci95
from records import pairings_ahead

root = Path("results/maml-rl")
PRESET = sys.argv[1] if len(sys.argv) > 1 else "point-nav"


def runs(name: str) -> list[dict]:
    files = [root / f"{name}.json"] + sorted((root / "seeds").glob(f"{name}-seed*.json"))
    return [json.loads(f.read_text()) for f in files if f.exists()]


# random initialisation does not depend on the meta-batch: point-nav-random* serves the point-nav-mbs40 family too;
# the oracle is never adapted, so point-nav-oracle serves every family
SHARED = PRESET.replace("-mbs40", "")
SCRIPT = ("reproduce-point-nav-mbs40.sh" if "-mbs40" in PRESET else
          "reproduce-point-nav-fine-tuned.sh" if "fine-tuned" in PRESET else
          "reproduce-point-nav-per-horizon.sh" if "per-horizon" in PRESET else "reproduce-point-nav-seeds.sh")
LATER = ("for each number of steps k, one size for all k steps tuned on the validation tasks, every method alike"
         if "per-horizon" in PRESET else
         "later steps' size tuned on the validation tasks, every method alike" if "tuned" in PRESET else
         "later steps at half the first step's size")
methods, by_seed, per_task_records, hardware = {}, {}, {}, set()
for method in ("maml", "pretrained", "random", "oracle"):
    recs = runs(PRESET if method == "maml" else "point-nav-oracle" if method == "oracle" else
                f"{SHARED if method == 'random' else PRESET}-{method}")
    if not recs:
        continue
    r = by_seed[method] = np.array([rec["returns"] for rec in recs])  # (seeds, steps)
    per_task_records[method] = [rec for rec in recs if "per_task_returns" in rec]
    adapted = method != "oracle"  # the oracle is never adapted: no step sizes
    methods[method] = {"seeds": [rec["seed"] for rec in recs], "returns_by_seed": r.round(2).tolist(),
                       "mean": r.mean(0).round(2).tolist(), "min": r.min(0).round(2).tolist(),
                       "max": r.max(0).round(2).tolist(), "iterations": [rec.get("iterations") for rec in recs],
                       "step_size": [rec.get("step_size") if adapted else None for rec in recs],
                       "later_step_size": [rec.get("later_step_size") if adapted else None for rec in recs]}
    if any("step_sizes_per_horizon" in rec for rec in recs):  # --per-horizon: one size per number of steps
        methods[method]["step_sizes_per_horizon"] = [rec.get("step_sizes_per_horizon") for rec in recs]
    hardware.update(rec.get("hardware", "unknown") for rec in recs)
comparisons = {}
maml = methods["maml"]
for other in ("pretrained", "random"):
    if other not in methods:
        continue
    o, steps = methods[other], len(maml["mean"])
    ours, theirs = by_seed["maml"], by_seed[other]
    comparisons[f"maml - {other}"] = {
        "gap_of_means": (ours.mean(0) - theirs.mean(0)).round(2).tolist(),  # from unrounded means
        # every (MAML seed, baseline seed) pair: in how many MAML is ahead, per step
        "pairings_maml_ahead": pairings_ahead(ours, theirs),
        "pairings": len(ours) * len(theirs),
        "ahead_in_every_seed": [maml["min"][k] > o["max"][k] for k in range(steps)],
        "behind_in_every_seed": [maml["max"][k] < o["min"][k] for k in range(steps)],
        "seeds": [len(maml["seeds"]), len(o["seeds"])]}
    per_task = {m: [np.array(rec["per_task_returns"]) for rec in per_task_records[m]] for m in ("maml", other)}
    every_seed = all(len(per_task[m]) == len(by_seed[m]) for m in ("maml", other))
    if every_seed and len(by_seed["maml"]) == len(by_seed[other]):
        # the seeds share the 40 test tasks: MAML minus baseline per task and seed pair (i, i), averaged over the
        # pairs, then the mean and 95% interval over the tasks, per step
        d = np.mean([a - b for a, b in zip(per_task["maml"], per_task[other])], axis=0)
        comparisons[f"maml - {other}"]["task_paired"] = [[round(m, 2), round(c, 2)] for m, c in
                                                         (mean_ci95(d[:, k]) for k in range(d.shape[1]))]
write_record(root / f"{PRESET}-seeds.json", {
    "system": "maml-rl", "experiment": f"{PRESET}-seeds", "metric": "mean return after 3 steps, MAML, mean over seeds",
    "value": maml["mean"][-1], "higher_is_better": True, "seed": 0, "seeds": maml["seeds"],
    "spread": {m: [round(hi - lo, 2) for lo, hi in zip(v["min"], v["max"])] for m, v in methods.items()},
    "n_eval": 40, "command": f"sh results/maml-rl/{SCRIPT}; python results/maml-rl/seeds.py {PRESET}",
    # where the summarised numbers were measured, not where this summary was computed
    "hardware": " / ".join(sorted(hardware)),
    "note": "same 40 test tasks (seed 20170306) for every method and seed; returns after 0-3 policy-gradient steps "
            f"({LATER}); oracle not adapted",
    "methods": methods, "comparisons": comparisons})
print(json.dumps({"methods": {m: {k: v[k] for k in ("seeds", "mean", "min", "max")} for m, v in methods.items()},
                  "comparisons": comparisons}, indent=1))
