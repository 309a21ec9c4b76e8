#!/bin/sh
# The commands behind every record in results/sharpness/ and the two shipped minima (run from the repository root).
set -e
DATA=${DATA:-../shared/data}

# The five reproductions (records and figures in results/sharpness/); trainings are cached in runs/ship/sharpness
icml17 sharpness reproduce --which all --run-dir runs/ship/sharpness --data-dir "$DATA" --record results/sharpness

# The shipped minima are the radial-ranking reproduction's two trainings
icml17 sharpness export --replace --run-dir runs/ship/sharpness/small-batch --name small-batch \
  --reproduces results/sharpness/radial-ranking.json --record-key theta.small-batch.lambda_max \
  --description "784-100-10 MLP, SGD batch 8, 3,000 steps on 2,000 MNIST images (the flatter minimum)"
icml17 sharpness export --replace --run-dir runs/ship/sharpness/large-batch --name large-batch \
  --reproduces results/sharpness/radial-ranking.json --record-key theta.large-batch.lambda_max \
  --description "784-100-10 MLP, SGD batch 1000, 2,000 steps on 2,000 MNIST images (the sharper minimum)"
icml17 sharpness eval --weights small-batch --data-dir "$DATA"   # = radial-ranking.json theta.small-batch
icml17 sharpness eval --weights large-batch --data-dir "$DATA"

# Every flatness measure through every function-preserving transform (invariance.json, invariance.png; 4 minutes)
icml17 sharpness invariance --all --record results/sharpness --data-dir "$DATA" --threads 1

# The correlation grid's wall time from four timed corners (correlation-timing.json); the grid itself (hours):
# icml17 sharpness reproduce --which correlation --record results/sharpness --data-dir "$DATA" --threads 1
icml17 sharpness reproduce --which correlation --time-subset --record results/sharpness --data-dir "$DATA" --threads 1

# Speed benchmark (results/bench/sharpness.json)
python benchmarks/sharpness.py --quick
