"""2D navigation under protocol (c) (each method's best single step size for each number of steps) over both sets
of trainings: the 3 seeds per method of point-nav-joint-tuned.json ('single', trained on an AMD EPYC) and the 3
retrained from scratch in point-nav-per-horizon-seeds.json (an Intel Xeon; RL training is bit-for-bit
reproducible on one machine, not across the two). Per step: the mean of all six trainings per method, their gap,
and in how many of the 36 (MAML training, pretrained training) pairs MAML is ahead.

    python results/maml-rl/pooled_trainings.py   -> results/maml-rl/point-nav-per-horizon-pooled.json
"""
import json

import numpy as np

from icml17.core.results import write_record
from records import ROOT, pairings_ahead

first_record = json.loads((ROOT / "point-nav-joint-tuned.json").read_text())
again_record = json.loads((ROOT / "point-nav-per-horizon-seeds.json").read_text())
first, again = first_record["protocols"]["single"], again_record["methods"]
# where the pooled returns were measured (both machines), not where this script runs
hardware = sorted({h for r in (first_record, again_record) for h in r["hardware"].split(" / ")})
returns = {m: np.array(first[m]["returns_by_seed"] + again[m]["returns_by_seed"]) for m in ("maml", "pretrained")}
means = {m: r.mean(0) for m, r in returns.items()}
gap = means["maml"] - means["pretrained"]
write_record(ROOT / "point-nav-per-horizon-pooled.json", {
    "system": "maml-rl", "experiment": "point-nav-per-horizon-pooled",
    "metric": "MAML minus pretrained, mean return after 3 steps, six trainings per method",
    "value": round(float(gap[-1]), 2), "higher_is_better": True, "seed": None, "seeds": [0, 1, 2],
    "trainings_per_method": len(returns["maml"]), "n_eval": 40,
    "command": "python results/maml-rl/pooled_trainings.py", "hardware": " / ".join(hardware),
    "note": "protocol (c); rows 0-2 of returns_by_training from point-nav-joint-tuned.json (AMD EPYC), rows 3-5 "
            "from point-nav-per-horizon-seeds.json (Intel Xeon), same seeds 0-2 and the same 40 test tasks",
    "returns_by_training": {m: r.round(2).tolist() for m, r in returns.items()},
    "mean": {m: v.round(2).tolist() for m, v in means.items()},
    "gap_of_means": gap.round(2).tolist(),
    "pairings_maml_ahead": pairings_ahead(returns["maml"], returns["pretrained"]),
    "pairings": len(returns["maml"]) * len(returns["pretrained"])})
print(json.dumps({"gap_of_means": gap.round(2).tolist(),
                  "pairings_maml_ahead": pairings_ahead(returns["maml"], returns["pretrained"])}))
