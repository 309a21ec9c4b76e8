#!/bin/sh
# Ant forward/backward direction (records ant-dir.json, ant-dir-random.json): MAML for 90 minutes of one thread
# (40 rollouts per step, as the paper), then 40 test tasks after 0-3 steps; random initialisation tuned as usual.
R=results/maml-rl
icml17 maml-rl train --preset ant-dir --run-dir runs/maml-rl/ant-dir --threads 1 --no-progress --time-budget 5400
icml17 maml-rl eval --preset ant-dir --method maml --run-dir runs/maml-rl/ant-dir --record $R --threads 1
icml17 maml-rl eval --preset ant-dir --method random --seed 0 --record $R --threads 1
icml17 results paired ant-dir ant-dir-random --record $R  # MAML minus random, paired by task -> paired.json
