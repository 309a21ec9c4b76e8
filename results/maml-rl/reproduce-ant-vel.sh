#!/bin/sh
# Ant goal velocity (records ant-vel.json, ant-vel-pretrained.json, ant-vel-random.json, figures/ant-vel-returns.png):
# MAML for 40 minutes of one thread (68 meta-iterations here), pretrained for as many iterations, random init.
R=results/maml-rl
icml17 maml-rl train --preset ant-vel --run-dir runs/maml-rl/ant-vel --threads 1 --no-progress --time-budget 2400
N=$(python -c "import json; print(max(json.loads(l)['step'] for l in open('runs/maml-rl/ant-vel/metrics.jsonl')))")
icml17 maml-rl eval --preset ant-vel --method maml --run-dir runs/maml-rl/ant-vel --record $R --threads 1
icml17 maml-rl eval --preset ant-vel --method random --seed 0 --record $R --threads 1
icml17 maml-rl train --preset ant-vel --mode pretrained --iterations $N --run-dir runs/maml-rl/ant-vel-pretrained --threads 1 --no-progress
icml17 maml-rl eval --preset ant-vel --method pretrained --run-dir runs/maml-rl/ant-vel-pretrained --record $R --threads 1
icml17 results paired ant-vel ant-vel-pretrained ant-vel ant-vel-random --record $R  # -> paired.json
icml17 maml-rl plots --preset ant-vel --out $R/figures --records $R
# The same two runs trained on to 160 meta-iterations (copies of their run directories, resumed):
# records ant-vel-160its.json, ant-vel-160its-pretrained.json; random initialisation as above
cp -r runs/maml-rl/ant-vel runs/maml-rl/ant-vel-160
cp -r runs/maml-rl/ant-vel-pretrained runs/maml-rl/ant-vel-160-pretrained
icml17 maml-rl train --preset ant-vel --run-dir runs/maml-rl/ant-vel-160 --iterations 160 --threads 1 --no-progress
icml17 maml-rl train --preset ant-vel --mode pretrained --iterations 160 --run-dir runs/maml-rl/ant-vel-160-pretrained --threads 1 --no-progress
icml17 maml-rl eval --preset ant-vel --method maml --run-dir runs/maml-rl/ant-vel-160 --record $R --name ant-vel-160its --threads 1
icml17 maml-rl eval --preset ant-vel --method pretrained --run-dir runs/maml-rl/ant-vel-160-pretrained --record $R --name ant-vel-160its-pretrained --threads 1
icml17 results paired ant-vel-160its ant-vel-160its-pretrained --record $R
