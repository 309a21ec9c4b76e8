"""Summarise the 1,500-step video records over seeds (results/pixelcnn/video-<model>-1500.json is seed 0,
results/pixelcnn/seeds/video-<model>-1500-seed<k>.json the others) into results/pixelcnn/video-1500-seeds.json:
per model and split the mean, min and max nats per sub-pixel; for each pair of models whether one is ahead in every
seed pairing (its worst seed better than the other's best) and in how many pairings it is ahead; and how much each
run's periodic validation loss still fell over its last 250 steps (from its run directory). Run from the repo root."""
import glob
import json
from itertools import permutations

from icml17.core.results import write_record

SPLITS = ("val", "test_seen", "test_novel")
models = {}
for m in ("convlstm", "o_t", "o_tlogn", "vpn"):
    files = [f"results/pixelcnn/video-{m}-1500.json"] + sorted(glob.glob(f"results/pixelcnn/seeds/video-{m}-1500-seed*.json"))
    recs = [json.load(open(f)) for f in files]
    models[m] = {"seeds": [r["seed"] for r in recs], **{
        s: {"by_seed": [r[s] for r in recs], "mean": round(sum(r[s] for r in recs) / len(recs), 4),
            "min": min(r[s] for r in recs), "max": max(r[s] for r in recs)} for s in SPLITS}}


def eval_drop(model: str, seed: int, start: int = 1250, end: int = 1500) -> float | None:
    """How much the run's periodic validation loss (split "eval" in its metrics.jsonl) fell from ``start`` to
    ``end``: is a model still closing the gap? None where the run directory is not on this machine."""
    run = f"runs/pixelcnn/video-{model}-1500" + (f"-seed{seed}" if seed else "")
    try:
        rows = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
    except OSError:
        return None
    at = {r["step"]: r["nats_per_subpixel"] for r in rows if r.get("split") == "eval"}
    return round(at[start] - at[end], 5) if start in at and end in at else None


drops = {m: {str(seed): eval_drop(m, seed) for seed in v["seeds"]} for m, v in models.items()}
if any(d is None for per in drops.values() for d in per.values()):  # keep what an earlier run measured
    try:
        drops = json.load(open("results/pixelcnn/video-1500-seeds.json"))["eval_drop_1250_to_1500"]
    except (OSError, KeyError):
        pass
# every (seed of a, seed of b) pair: in how many a is better (lower nats), per split; "ahead in every pairing"
# (a's worst seed better than b's best) where both have several seeds
pairings = {f"{a} ahead of {b}": {s: sum(x < y for x in models[a][s]["by_seed"] for y in models[b][s]["by_seed"])
                                  for s in SPLITS} | {"of": len(models[a]["seeds"]) * len(models[b]["seeds"])}
            for a, b in permutations(("o_t", "o_tlogn", "vpn", "convlstm"), 2)}
ahead = {pair: {s: n[s] == n["of"] for s in SPLITS} for pair, n in pairings.items() if n["of"] > 1 and
         all(len(models[m]["seeds"]) > 1 for m in pair.split(" ahead of "))}
write_record("results/pixelcnn/video-1500-seeds.json", {
    "system": "pixelcnn", "experiment": "video-1500-seeds", "metric": "convlstm_minus_o_t_val_nats_per_subpixel",
    "value": round(models["convlstm"]["val"]["mean"] - models["o_t"]["val"]["mean"], 4), "higher_is_better": True,
    "seed": 0, "seeds": models["o_t"]["seeds"],
    "spread": {m: round(v["val"]["max"] - v["val"]["min"], 4) for m, v in models.items()},
    "note": "cpu preset (32x32, 10 frames, 2 context, width 32, batch 8), 1,500 steps each, 200 videos per split; "
            "lower is better",
    "command": "sh results/pixelcnn/reproduce.sh (Table 2 at 1,500 steps); python results/pixelcnn/video_1500_summary.py",
    "models": models, "ahead_in_every_seed_pairing": ahead, "seed_pairings_ahead": pairings,
    "eval_drop_1250_to_1500": drops})
print(json.dumps({m: {s: v[s]["by_seed"] for s in SPLITS} for m, v in models.items()}, indent=1))
print(json.dumps(ahead, indent=1))
