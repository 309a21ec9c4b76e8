#!/bin/sh
# 2D navigation, 3 seeds, every method's step size tuned for each number of steps through the CLI
# (`maml-rl eval --per-horizon`): for k = 1, 2, 3 the one size, used for all k steps, with the best return after k
# steps on 40 validation tasks (seed 20170307, never the test tasks), from the 11-size lattice of
# point-nav-joint-tuned.json; MAML's first step is tuned like the others'. Protocol (c) of that record, with every
# policy retrained from scratch on the current code. About 2 hours of one thread (training 3 x 16 min MAML,
# 3 x 5 min pretrained; each evaluation 11 validation curves and up to 3 test curves, about 4 min).
# The run directories are those the earlier 2D-navigation families' commands name: on a machine that still holds
# those runs, move runs/maml-rl/mbs20 and runs/maml-rl/point-nav-ref aside first, or the training steps find
# finished runs ("nothing to do") and the script re-evaluates them instead of retraining.
R=results/maml-rl; S=runs/maml-rl/point-nav-ref
G="--per-horizon --grid 0.01,0.02,0.03,0.05,0.07,0.1,0.15,0.2,0.3,0.5,1 --tune-tasks 40"
mkdir -p $R/seeds
icml17 maml-rl train --preset point-nav --set meta_batch=20 batch=steps --run-dir runs/maml-rl/mbs20/point-nav-steps-seed0 --threads 1 --no-progress
icml17 maml-rl eval --preset point-nav --method maml --run-dir runs/maml-rl/mbs20/point-nav-steps-seed0 $G --record $R --name point-nav-per-horizon --threads 1
for s in 0 1 2; do
  icml17 maml-rl train --preset point-nav --mode pretrained --seed $s --run-dir $S/pretrained-seed$s --threads 1 --no-progress
done
icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/pretrained-seed0 $G --record $R --name point-nav-per-horizon-pretrained --threads 1
icml17 maml-rl eval --preset point-nav --method random --seed 0 $G --record $R --name point-nav-per-horizon-random --threads 1
for s in 1 2; do
  icml17 maml-rl train --preset point-nav --seed $s --run-dir $S/seed$s --threads 1 --no-progress
  icml17 maml-rl eval --preset point-nav --method maml --run-dir $S/seed$s $G --record $R/seeds --name point-nav-per-horizon-seed$s --threads 1
  icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/pretrained-seed$s $G --record $R/seeds --name point-nav-per-horizon-pretrained-seed$s --threads 1
  icml17 maml-rl eval --preset point-nav --method random --seed $s $G --record $R/seeds --name point-nav-per-horizon-random-seed$s --threads 1
done
python results/maml-rl/seeds.py point-nav-per-horizon
python results/maml-rl/pooled_trainings.py   # with point-nav-joint-tuned.json's trainings
