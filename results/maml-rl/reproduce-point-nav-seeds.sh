#!/bin/sh
# 2D navigation as the preset runs it now, the configuration of the reference's published curve (20 tasks,
# 2,000 time steps per task as its sampler counts them, rllab's init): MAML seeds 0-2, pretrained 0-2 (same
# sampler), random 0-2; evaluation batches of 4,000 time steps (the reference's test scripts); the oracle record
# (point-nav-oracle) is shared with the 40-task family (reproduce-point-nav-mbs40.sh).
R=results/maml-rl; S=runs/maml-rl/point-nav-ref
mkdir -p $R/seeds $S
# seed 0 was trained before the preset changed, with the values the preset now holds set explicitly
icml17 maml-rl train --preset point-nav --set meta_batch=20 batch=steps --run-dir runs/maml-rl/mbs20/point-nav-steps-seed0 --threads 1 --no-progress
icml17 maml-rl eval --preset point-nav --method maml --run-dir runs/maml-rl/mbs20/point-nav-steps-seed0 --record $R --name point-nav --threads 1
for s in 1 2; do
  icml17 maml-rl train --preset point-nav --seed $s --run-dir $S/seed$s --threads 1 --no-progress
  icml17 maml-rl eval --preset point-nav --method maml --run-dir $S/seed$s --record $R/seeds --name point-nav-seed$s --threads 1
done
icml17 maml-rl train --preset point-nav --mode pretrained --seed 0 --run-dir $S/pretrained-seed0 --threads 1 --no-progress
icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/pretrained-seed0 --record $R --name point-nav-pretrained --threads 1
for s in 1 2; do
  icml17 maml-rl train --preset point-nav --mode pretrained --seed $s --run-dir $S/pretrained-seed$s --threads 1 --no-progress
  icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/pretrained-seed$s --record $R/seeds --name point-nav-pretrained-seed$s --threads 1
done
# random initialisation (no training): point-nav-random*.json, commands in reproduce-point-nav-mbs40.sh
# the same runs with steps 2-3 tuned on the validation tasks (every method alike)
T="--later-steps tuned"
icml17 maml-rl eval --preset point-nav --method maml --run-dir runs/maml-rl/mbs20/point-nav-steps-seed0 $T --record $R --name point-nav-later-tuned --threads 1
icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/pretrained-seed0 $T --record $R --name point-nav-later-tuned-pretrained --threads 1
for s in 1 2; do
  icml17 maml-rl eval --preset point-nav --method maml --run-dir $S/seed$s $T --record $R/seeds --name point-nav-later-tuned-seed$s --threads 1
  icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/pretrained-seed$s $T --record $R/seeds --name point-nav-later-tuned-pretrained-seed$s --threads 1
done
python results/maml-rl/seeds.py point-nav
python results/maml-rl/seeds.py point-nav-later-tuned
python results/maml-rl/paired.py
# the pretrained policies fine-tuned at the reference test script's step size (0.5) instead of a tuned one
for s in 0 1 2; do
  icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/pretrained-seed$s --lr 0.5 --record $R/seeds --name point-nav-pretrained-lr0.5-seed$s --threads 1
done
# seed 0 trained on to 200 meta-iterations (a copy of its run directory, resumed)
cp -r runs/maml-rl/mbs20/point-nav-steps-seed0 $S/seed0-200
icml17 maml-rl train --preset point-nav --run-dir $S/seed0-200 --iterations 200 --threads 1 --no-progress
icml17 maml-rl eval --preset point-nav --method maml --run-dir $S/seed0-200 --record $R --name point-nav-seed0-200its --threads 1
