#!/bin/sh
# 2D navigation at the reference script's default size, 40 tasks x 20 full rollouts (the earlier preset, now
# pinned with --set meta_batch=40 batch=rollouts), rllab's init: MAML seeds 0-2, pretrained 0-2, random 0-2,
# oracle; evaluation batches of 4,000 time steps (the reference's test scripts). Random initialisation and the
# oracle do not depend on the meta-batch: their records (point-nav-random*, point-nav-oracle) serve both families.
R=results/maml-rl; S=runs/maml-rl/seeds
mkdir -p $R/seeds $S
icml17 maml-rl train --preset point-nav --set meta_batch=40 batch=rollouts --set init=xavier --run-dir runs/maml-rl/point-nav-xavier --threads 1 --no-progress
icml17 maml-rl eval --preset point-nav --method maml --run-dir runs/maml-rl/point-nav-xavier --record $R --name point-nav-mbs40 --threads 1
pre() {  # seed record-name
  icml17 maml-rl train --preset point-nav --set meta_batch=40 batch=rollouts --mode pretrained --seed $1 --run-dir $S/point-nav-pretrained-seed$1 --threads 1 --no-progress
  icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/point-nav-pretrained-seed$1 --record $2 --name point-nav-mbs40-pretrained$3 --threads 1
}
maml() {
  icml17 maml-rl train --preset point-nav --set meta_batch=40 batch=rollouts --seed $1 --run-dir $S/point-nav-seed$1 --threads 1 --no-progress
  icml17 maml-rl eval --preset point-nav --method maml --run-dir $S/point-nav-seed$1 --record $R/seeds --name point-nav-mbs40-seed$1 --threads 1
}
pre 0 $R ""
maml 1
pre 1 $R/seeds -seed1
maml 2
pre 2 $R/seeds -seed2
# the oracle (point-nav-oracle.json) is an earlier PyTorch-init run, re-evaluated with the 4,000-step batches
icml17 maml-rl train --preset point-nav --set meta_batch=40 batch=rollouts --mode oracle --set init=torch --threads 1 --no-progress
icml17 maml-rl eval --preset point-nav --method oracle --record $R --threads 1
icml17 maml-rl eval --preset point-nav --method random --seed 0 --record $R --name point-nav-random --threads 1
for s in 1 2; do icml17 maml-rl eval --preset point-nav --method random --seed $s --record $R/seeds --name point-nav-random-seed$s --threads 1; done
# the same runs with steps 2-3 tuned on the validation tasks (every method alike)
T="--later-steps tuned"
icml17 maml-rl eval --preset point-nav --method maml --run-dir runs/maml-rl/point-nav-xavier $T --record $R --name point-nav-mbs40-later-tuned --threads 1
icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/point-nav-pretrained-seed0 $T --record $R --name point-nav-mbs40-later-tuned-pretrained --threads 1
icml17 maml-rl eval --preset point-nav --method random --seed 0 $T --record $R --name point-nav-later-tuned-random --threads 1
for s in 1 2; do
  icml17 maml-rl eval --preset point-nav --method maml --run-dir $S/point-nav-seed$s $T --record $R/seeds --name point-nav-mbs40-later-tuned-seed$s --threads 1
  icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/point-nav-pretrained-seed$s $T --record $R/seeds --name point-nav-mbs40-later-tuned-pretrained-seed$s --threads 1
  icml17 maml-rl eval --preset point-nav --method random --seed $s $T --record $R/seeds --name point-nav-later-tuned-random-seed$s --threads 1
done
python results/maml-rl/seeds.py point-nav-mbs40
python results/maml-rl/seeds.py point-nav-mbs40-later-tuned
python results/maml-rl/paired.py
