#!/bin/sh
# 2D navigation, every method's fine-tuning step sizes tuned alike on 40 validation tasks (seed 20170307, never the
# test tasks) from a grid twice as fine as the default one: the first step of pretrained and random initialisation
# (scored by the mean return over steps 1-3, later steps at half), then for every method the size of steps 2-3
# given the first (scored over steps 2-3). MAML's first step stays at the inner learning rate it was meta-trained
# with. The trained runs are those of reproduce-point-nav-seeds.sh (train them first).
R=results/maml-rl; S=runs/maml-rl/point-nav-ref
T="--later-steps tuned --grid 0.01,0.02,0.05,0.1,0.2,0.5,1 --tune-tasks 40"
mkdir -p $R/seeds
icml17 maml-rl eval --preset point-nav --method maml --run-dir runs/maml-rl/mbs20/point-nav-steps-seed0 $T --record $R --name point-nav-fine-tuned --threads 1
icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/pretrained-seed0 $T --record $R --name point-nav-fine-tuned-pretrained --threads 1
for s in 1 2; do
  icml17 maml-rl eval --preset point-nav --method maml --run-dir $S/seed$s $T --record $R/seeds --name point-nav-fine-tuned-seed$s --threads 1
  icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/pretrained-seed$s $T --record $R/seeds --name point-nav-fine-tuned-pretrained-seed$s --threads 1
done
icml17 maml-rl eval --preset point-nav --method random --seed 0 $T --record $R --name point-nav-fine-tuned-random --threads 1
for s in 1 2; do
  icml17 maml-rl eval --preset point-nav --method random --seed $s $T --record $R/seeds --name point-nav-fine-tuned-random-seed$s --threads 1
done
python results/maml-rl/seeds.py point-nav-fine-tuned
python results/maml-rl/paired.py
