#!/bin/sh
# 2D navigation (Finn et al. 2017, Figure 5): MAML, the pretrained policy, random initialisation (seeds 0-2) and the
# oracle, every policy trained for the preset's 100 meta-iterations and evaluated on 40 test tasks with batches of
# 4,000 time steps of whole paths (the reference's test script), under two step-size protocols:
#   reference  MAML at its meta-trained size, the baselines' first step tuned on validation tasks, later steps at half
#   per-horizon  for each number of steps k, every method's one size for all k steps, the best after k steps on the
#                40 validation tasks (the paper's tuning of its baselines, given to every method)
# Run it whole (about 3.5 hours of one thread), or as two halves side by side on two cores:
#   sh results/maml-rl/reproduce-point-nav.sh maml & sh results/maml-rl/reproduce-point-nav.sh baselines; wait
#   sh results/maml-rl/reproduce-point-nav.sh summary
set -e
R=results/maml-rl; S=runs/maml-rl/point-nav
G="--per-horizon --grid 0.01,0.02,0.03,0.05,0.07,0.1,0.15,0.2,0.3,0.5,1 --tune-tasks 40"
C="--threads 1"
mkdir -p $R/seeds

# seed 0's record is <name>.json, seed k's is seeds/<name>-seed<k>.json
out() { if [ "$1" = 0 ]; then echo "--record $R --name $2"; else echo "--record $R/seeds --name $2-seed$1"; fi; }
# resumable: trainings resume from their checkpoints, and an evaluation that finished leaves a mark in $S/done, so
# rerunning the script after an interruption skips it (delete $S/done to evaluate again)
once() { mark=$S/done/$(echo "$*" | cksum | tr ' ' -); [ -f "$mark" ] && return 0; "$@"; mkdir -p $S/done; touch "$mark"; }

maml() {
  for s in 0 1 2; do
    icml17 maml-rl train --preset point-nav --seed $s --run-dir $S/maml-seed$s $C --no-progress
    once icml17 maml-rl eval --preset point-nav --method maml --run-dir $S/maml-seed$s $(out $s point-nav) $C
    once icml17 maml-rl eval --preset point-nav --method maml --run-dir $S/maml-seed$s $G $(out $s point-nav-per-horizon) $C
  done
}

baselines() {
  for s in 0 1 2; do
    icml17 maml-rl train --preset point-nav --mode pretrained --seed $s --run-dir $S/pretrained-seed$s $C --no-progress
    once icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/pretrained-seed$s $(out $s point-nav-pretrained) $C
    once icml17 maml-rl eval --preset point-nav --method pretrained --run-dir $S/pretrained-seed$s $G $(out $s point-nav-per-horizon-pretrained) $C
    once icml17 maml-rl eval --preset point-nav --method random --seed $s $(out $s point-nav-random) $C
    once icml17 maml-rl eval --preset point-nav --method random --seed $s $G $(out $s point-nav-per-horizon-random) $C
  done
  icml17 maml-rl train --preset point-nav --mode oracle --run-dir $S/oracle $C --no-progress
  once icml17 maml-rl eval --preset point-nav --method oracle --run-dir $S/oracle --record $R $C
}

summary() {
  # one summary record per protocol, every method in it (mean and min-max over seeds), and the per-task paired
  # differences of MAML against each baseline
  icml17 results seeds point-nav point-nav-pretrained point-nav-random --record $R --name point-nav-seeds
  icml17 results seeds point-nav-per-horizon point-nav-per-horizon-pretrained point-nav-per-horizon-random --record $R --name point-nav-per-horizon-seeds
  icml17 results paired point-nav point-nav-pretrained point-nav point-nav-random --record $R
  icml17 results paired point-nav-per-horizon point-nav-per-horizon-pretrained point-nav-per-horizon point-nav-per-horizon-random --record $R
}

case "${1:-all}" in
  maml) maml ;;
  baselines) baselines ;;
  summary) summary ;;
  all) maml; baselines; summary ;;
  *) echo "usage: $0 [all|maml|baselines|summary]" >&2; exit 2 ;;
esac
