#!/bin/sh
# HalfCheetah goal velocity: the comparisons behind the cheetah-vel records (cheetah-vel.json, -pretrained, -random;
# each record names the commands that trained and evaluated it), run from the repository root on their trained runs
# runs/maml-rl/cheetah-vel and runs/maml-rl/cheetah-vel-pretrained.
set -e
R=results/maml-rl

# MAML minus each baseline, task by task on the same 40 test tasks (paired.json; its headline)
icml17 results paired cheetah-vel cheetah-vel-pretrained cheetah-vel cheetah-vel-random --record $R --headline

# Is MAML still ahead after one step when both first steps are tuned for one step on a fine lattice? Each method's
# step size with the best mean return after one step on 40 validation tasks (seed 20170307), then its returns after
# 0 and 1 steps on the 40 test tasks (records cheetah-vel-first-step.json, cheetah-vel-first-step-pretrained.json),
# paired task by task (paired.json). About 6 minutes of one thread.
L="--steps 1 --per-horizon --grid 0.01,0.02,0.03,0.05,0.07,0.1,0.15,0.2 --tune-tasks 40 --threads 1"
icml17 maml-rl eval --preset cheetah-vel --method maml --run-dir runs/maml-rl/cheetah-vel $L \
  --record $R --name cheetah-vel-first-step
icml17 maml-rl eval --preset cheetah-vel --method pretrained --run-dir runs/maml-rl/cheetah-vel-pretrained $L \
  --record $R --name cheetah-vel-first-step-pretrained
icml17 results paired cheetah-vel-first-step cheetah-vel-first-step-pretrained --record $R
