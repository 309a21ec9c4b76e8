"""Paired comparisons of Figure 5's methods on the same 40 test tasks: MAML minus each baseline, per step, mean and
95% interval over tasks (t-based via icml17.core.stats.mean_ci95), and the share of tasks where MAML is ahead.
Reads results/maml-rl/<preset>[-method].json (their per_task_returns); writes results/maml-rl/paired.json.
Run from the repo root: python results/maml-rl/paired.py"""
import json
from pathlib import Path

import numpy as np

from icml17.core.results import write_record
from icml17.core.stats import mean_ci95

root = Path("results/maml-rl")
comparisons = {}
for maml in sorted(root.glob("*.json")):
    if maml.stem == "paired" or maml.stem.rsplit("-", 1)[-1] in ("pretrained", "random", "oracle"):
        continue
    rec = json.loads(maml.read_text())
    if "per_task_returns" not in rec:  # recorded before per-task returns were kept
        continue
    ours = np.asarray(rec["per_task_returns"])
    for method in ("pretrained", "random"):
        other_path = root / f"{maml.stem}-{method}.json"
        if method == "random" and not other_path.exists():  # untrained: one record serves every meta-batch size
            other_path = root / f"{maml.stem.replace('-mbs40', '')}-{method}.json"
        if not other_path.exists():
            continue
        other = json.loads(other_path.read_text())
        if "per_task_returns" not in other:
            continue
        diff = ours - np.asarray(other["per_task_returns"])
        stats = [mean_ci95(diff[:, k]) for k in range(diff.shape[1])]
        comparisons[f"{maml.stem} - {method}"] = {
            "mean": [round(float(m), 2) for m, _ in stats], "ci95": [round(float(c), 2) for _, c in stats],
            "share_of_tasks_maml_ahead": [round(float((diff[:, k] > 0).mean()), 3) for k in range(diff.shape[1])],
            "tasks": int(diff.shape[0]), "iterations": [rec["iterations"], other["iterations"]]}
# the headline: the comparison an acceptance item names (MAML ahead of pretrained after one step on the cheetah)
name = "cheetah-vel - pretrained" if "cheetah-vel - pretrained" in comparisons else next(iter(comparisons))
first = comparisons[name]
write_record(root / "paired.json", {
    "system": "maml-rl", "experiment": "paired", "metric": f"return difference {name} (MAML minus baseline), 1 step",
    "value": first["mean"][1], "higher_is_better": True, "n_eval": first["tasks"], "seed": 0,
    "command": "python results/maml-rl/paired.py",
    "note": "same 40 test tasks (seed 20170306) for every method; per-step differences of per-task mean returns",
    "comparisons": comparisons})
print(json.dumps(comparisons, indent=1))
