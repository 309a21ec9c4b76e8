"""Full PixelCNN vs multiscale likelihoods over seeds: results/pixelcnn/<name>.json is seed 0 (where it exists),
results/pixelcnn/seeds/<name>-seed<k>.json the others. For each model: the seeds, per-seed values, mean, min, max
and spread (max - min); for each multiscale model against the full one of its dataset (and type B against type A, and
type B with 4 shallow layers against 2): the gap of the means and whether it is established, i.e. the two
models' seed ranges do not overlap (every seed of one beats every seed of the other); the Table 1 analogue's
conditional models (table1-<preset>-<model>) per split in nats per sub-pixel, the same way.
Writes results/pixelcnn/likelihood-seeds.json. Run from the repo root:
python results/pixelcnn/likelihood_seeds.py"""
import json
from pathlib import Path

import numpy as np

from icml17.core.results import write_record

root = Path("results/pixelcnn")
DATASETS = {"mnist": "bits_per_dim", "cifar10-subset": "bits_per_dim", "binarized-mnist": "nats"}
VARIANTS = ("full", "typeA", "typeB", "typeA-small", "typeB-small", "typeB-shallow4")


def runs(name: str) -> list[dict]:
    files = [root / f"{name}.json"] + sorted((root / "seeds").glob(f"{name}-seed*.json"))
    found = [json.loads(f.read_text()) for f in files if f.exists()]
    return sorted(found, key=lambda r: r["seed"])


models, gaps = {}, {}
for dataset, unit in DATASETS.items():
    for variant in VARIANTS:
        recs = runs(f"{dataset}-{variant}")
        if not recs:
            continue
        values = [r["value"] for r in recs]
        models[f"{dataset}-{variant}"] = {
            "unit": unit, "seeds": [r["seed"] for r in recs], "values": values,
            "mean": round(float(np.mean(values)), 4), "min": min(values), "max": max(values),
            "spread": round(max(values) - min(values), 4), "iterations": recs[0]["iterations"],
            "parameters": recs[0].get("parameters")}
    pairs = [("full", v) for v in VARIANTS[1:]] + [("typeA", "typeB"), ("typeB", "typeB-shallow4")]
    for ref, variant in pairs:
        full, other = models.get(f"{dataset}-{ref}"), models.get(f"{dataset}-{variant}")
        if not full or not other:
            continue
        gap = other["mean"] - full["mean"]  # positive: the second model is worse (higher NLL)
        apart = other["min"] > full["max"] or other["max"] < full["min"]
        gaps[f"{dataset}: {variant} - {ref}"] = {
            "gap_of_means": round(gap, 4), "unit": unit, "seeds": [len(full["seeds"]), len(other["seeds"])],
            "spreads": [full["spread"], other["spread"]], "established": bool(apart and min(len(full["seeds"]),
                                                                                          len(other["seeds"])) >= 3)}

# Table 1 analogue: conditional models, nats per sub-pixel on each split
table1 = {}
for preset in ("mnist-class", "mnist-text-spatial"):
    rows = {}
    for tag in ("full", "typeB"):
        recs = runs(f"table1-{preset}-{tag}")
        if recs:
            rows[tag] = {"seeds": [r["seed"] for r in recs], **{
                split: {"values": [r["by_split"][split]["nats_per_subpixel"] for r in recs]}
                for split in ("train", "val", "test")}}
            for split in ("train", "val", "test"):
                v = rows[tag][split]["values"]
                rows[tag][split].update(mean=round(float(np.mean(v)), 4), min=min(v), max=max(v))
    if len(rows) == 2:
        f, b = rows["full"], rows["typeB"]
        rows["typeB - full"] = {split: {
            "gap_of_means": round(b[split]["mean"] - f[split]["mean"], 4),
            "established": bool((b[split]["min"] > f[split]["max"] or b[split]["max"] < f[split]["min"])
                                and min(len(f["seeds"]), len(b["seeds"])) >= 3)} for split in ("train", "val", "test")}
    table1[preset] = rows

three = {k: v for k, v in gaps.items() if min(v["seeds"]) >= 3}
headline = three.get("mnist: typeA - full") or next(iter(three.values()), next(iter(gaps.values())))
write_record(root / "likelihood-seeds.json", {
    "system": "pixelcnn", "experiment": "likelihood-seeds", "metric": "gap of means, mnist typeA - full (bits/dim)",
    "value": headline["gap_of_means"], "higher_is_better": False, "seed": 0,
    "seeds": sorted({s for m in models.values() for s in m["seeds"]}),
    "spread": {k: v["spread"] for k, v in models.items()},
    "command": "sh results/pixelcnn/reproduce.sh  # then: python results/pixelcnn/likelihood_seeds.py",
    "note": "each model's test NLL over seeds (width 32 unless named small; same iterations and batch 32 within a "
            "dataset); a gap is 'established' when the two models' seed ranges do not overlap, with >= 3 seeds each",
    "models": models, "gaps": gaps, "table1_nats_per_subpixel": table1})
for preset, rows in table1.items():
    for tag, row in rows.items():
        print(preset, tag, {split: row[split] for split in ("train", "val", "test")})
for k, v in gaps.items():
    print(f"{k}: {v['gap_of_means']:+.4f} {v['unit']} (seeds {v['seeds']}, spreads {v['spreads']}, "
          f"established {v['established']})")
