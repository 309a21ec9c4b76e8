#!/bin/sh
# 2D navigation, step sizes tuned jointly per horizon for every method alike (MAML's first step included): the
# 7 x 7 grid of (first, later) step sizes on the 40 validation tasks, then each horizon's best pair on the test
# tasks. Needs the runs and records of reproduce-point-nav-fine-tuned.sh. About 45 minutes of one thread.
P=results/maml-rl/joint_tuning.py
for m in maml pretrained random; do
  for s in 0 1 2; do python $P run $m $s; done
done
python $P summary
