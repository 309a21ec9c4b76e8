#!/bin/sh
# 2D navigation, step sizes tuned per horizon for every method alike (MAML's first step included): the 7 x 7 grid
# of (first, later) step sizes plus 4 more single sizes on the 40 validation tasks, a local search on the lattice
# of all 11 sizes, then each horizon's best pair on the test tasks. Needs the runs and records of
# reproduce-point-nav-fine-tuned.sh and reproduce-point-nav-seeds.sh. About 110 minutes of one thread (56 to 66
# validation curves per method and seed, cached in runs/maml-rl/joint-tuning/: a killed run resumes).
P=results/maml-rl/joint_tuning.py
for m in maml pretrained random; do
  for s in 0 1 2; do python $P run $m $s; done
done
python $P summary
