#!/bin/sh
# The learning curve of the 60,000-iteration Omniglot 5-way 1-shot run: each 5,000-iteration snapshot evaluated
# on the 600 test tasks of the reference protocol (10 steps, 1 query per class), one record per snapshot in
# results/maml/omniglot-5w1s-curve/. Snapshots already evaluated are skipped; rerun after each stage.
set -e
DATA=${DATA:-../shared/data}
RUN=long-runs/maml/omniglot-5w1s
OUT=results/maml/omniglot-5w1s-curve
mkdir -p "$OUT"
for snap in "$RUN"/snapshots/it*.pt; do
  [ -f "$snap" ] || continue
  it=$(basename "$snap" .pt | tr -d it)
  [ -f "$OUT/it$it.json" ] && continue
  tmp=$(mktemp -d)
  mkdir -p "$tmp/checkpoints" && cp "$snap" "$tmp/checkpoints/last.pt"
  icml17 maml eval --run-dir "$tmp" --data-dir "$DATA" --tasks 600 --threads 1 --record "$tmp/records"
  # named for its snapshot, with the command that reproduces it (the temporary run directory is gone afterwards)
  python3 - "$tmp/records/omniglot-5w1s.json" "$OUT/it$it.json" "$it" <<'PY'
import json, sys
src, dst, it = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.load(open(src))
r["experiment"] = f"omniglot-5w1s-60k-it{it}"
r["command"] = f"sh long-runs/omniglot-5w1s.sh; sh long-runs/omniglot-curve.sh  # snapshot it{it}.pt, 600 test tasks"
open(dst + ".tmp", "w").write(json.dumps(r, indent=2) + "\n")
PY
  mv "$OUT/it$it.json.tmp" "$OUT/it$it.json"
  rm -rf "$tmp"
done
