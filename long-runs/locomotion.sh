#!/bin/sh
# MAML-RL locomotion at the paper's budget: 500 meta-iterations of MAML and of the pretrained baseline (the same
# number of iterations), on two processes (torchrun, gloo, one thread each), then the returns after 0-3 policy-
# gradient steps on the 40 test tasks for MAML, pretrained and random initialisation, paired task by task.
#
#   sh long-runs/locomotion.sh cheetah-vel      # then cheetah-dir, ant-vel, ant-dir (the order)
#
# Resumable: rerun the same line. Trainings resume from long-runs/maml-rl/<env>[-pretrained]/checkpoints/last.pt
# (committed between sessions, with config.json and metrics.jsonl); an evaluation is skipped when its record exists.
# Records are named <env>-500its[-pretrained|-random] so the earlier short-budget records keep their names.
set -e
ENV=${1:?usage: sh long-runs/locomotion.sh ENV (cheetah-vel, cheetah-dir, ant-vel or ant-dir)}
ITS=${ITS:-500}
RUN=long-runs/maml-rl
R=results/maml-rl
N=$ENV-${ITS}its
T="torchrun --standalone --nproc_per_node=2 -m icml17"
for mode in maml pretrained; do
  dir=$RUN/$ENV; [ $mode = pretrained ] && dir=$RUN/$ENV-pretrained
  $T maml-rl train --preset "$ENV" --mode $mode --iterations "$ITS" --run-dir "$dir" --threads 1 --no-progress
done
[ -f $R/$N.json ] || icml17 maml-rl eval --preset "$ENV" --method maml --run-dir $RUN/$ENV --record $R --name "$N" --threads 1
[ -f $R/$N-pretrained.json ] || icml17 maml-rl eval --preset "$ENV" --method pretrained --run-dir $RUN/$ENV-pretrained \
  --record $R --name "$N-pretrained" --threads 1
[ -f $R/$N-random.json ] || icml17 maml-rl eval --preset "$ENV" --method random --seed 0 --record $R --name "$N-random" --threads 1
icml17 results paired "$N" "$N-pretrained" "$N" "$N-random" --record $R
