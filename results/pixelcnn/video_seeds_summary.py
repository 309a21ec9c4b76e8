"""Summarise the video records over seeds (results/pixelcnn/video-<model>.json is seed 0, seeds/ holds 1 and 2)
into results/pixelcnn/video-seeds.json: mean and spread (min-max) per model and split. Run from the repo root."""
import glob
import json

import numpy as np

out = {"benchmark_like": False, "system": "pixelcnn", "experiment": "video-seeds", "metric": "nats_per_subpixel",
       "note": "cpu preset (32x32, 10 frames, 2 context, width 32, batch 8), 500 steps each, 200 videos per split",
       "models": {}}
for m in ("convlstm", "o_t", "o_tlogn", "vpn"):
    files = [f"results/pixelcnn/video-{m}.json"] + sorted(glob.glob(f"results/pixelcnn/seeds/video-{m}-seed*.json"))
    recs = [json.load(open(f)) for f in files]
    out["models"][m] = {"seeds": [r["seed"] for r in recs], **{
        s: {"mean": float(np.mean([r[s] for r in recs])), "min": float(min(r[s] for r in recs)),
            "max": float(max(r[s] for r in recs))} for s in ("val", "test_seen", "test_novel")}}
out["seeds"] = out["models"]["o_t"]["seeds"]
out["value"] = out["models"]["convlstm"]["val"]["mean"] - out["models"]["o_t"]["val"]["mean"]
out["metric"] = "convlstm_minus_o_t_val_nats_per_subpixel"
out["spread"] = {m: v["val"]["max"] - v["val"]["min"] for m, v in out["models"].items()}
out["command"] = "for s in 1 2; do for m in convlstm o_t o_tlogn; do icml17 pixelcnn video train --preset cpu --model $m --data-dir ../shared/data --threads 1 --seed $s --run-dir runs/pixelcnn/video-$m-seed$s; icml17 pixelcnn video eval --run-dir runs/pixelcnn/video-$m-seed$s --data-dir ../shared/data --threads 1 --record results/pixelcnn/seeds --name video-$m-seed$s; done; done; python results/pixelcnn/video_seeds_summary.py"
out["seed"] = 0
out.pop("benchmark_like")
json.dump(out, open("results/pixelcnn/video-seeds.json", "w"), indent=2)
print(json.dumps({m: v["val"] for m, v in out["models"].items()}))
