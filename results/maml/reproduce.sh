#!/bin/sh
# The commands behind every record in results/maml/ (run from the repository root; DATA = the datasets folder).
# Numbers in this folder were produced on a shared 2-core CPU with these commands; iterations actually done
# are in each record ("iterations"), because the runs were stopped by --time-budget.
set -e
DATA=${DATA:-../shared/data}

# Sinusoid regression, K = 5, 20 (records sinusoid-k{K}-step{1,10}.json)
for k in 5 20; do
  icml17 maml train --preset sinusoid-k$k --run-dir runs/maml/sinusoid-k$k --threads 1
  icml17 maml eval --run-dir runs/maml/sinusoid-k$k --tasks 600 --threads 1 --record results/maml
done
# K = 10: the shipped weights (src/icml17/weights/maml-sinusoid-k10.safetensors) come from this run; the records
# sinusoid-k10-step{1,10}.json are evaluated from the shipped file, so anyone can re-check them without training
icml17 maml train --no-progress --preset sinusoid-k10 --run-dir runs/ship/sinusoid-k10 --threads 1
icml17 maml export --replace --run-dir runs/ship/sinusoid-k10 --name sinusoid-k10 --reproduces results/maml/sinusoid-k10-step1.json \
  --description "MAML sinusoid K=10, 70,000 meta-iterations (one step: 0.38 MSE)"
icml17 maml eval --weights sinusoid-k10 --record results/maml

# Baselines (records sinusoid-k{K}-step{1,10}-pretrained.json, sinusoid-oracle.json)
icml17 maml baseline --kind pretrained --run-dir runs/maml/baselines/pretrained --iterations 70000 --threads 1 --record results/maml
icml17 maml baseline --kind oracle --run-dir runs/maml/baselines/oracle --iterations 70000 --threads 1 --record results/maml

# Omniglot 5-way 1-shot, shipped as weights omniglot-5w1s (records omniglot-5w1s.json and, with 15 queries per
# class, omniglot-5w1s-q15.json, both evaluated from the shipped file; stopped by --time-budget, iterations in
# the records)
icml17 maml train --preset omniglot-5w1s --data-dir "$DATA" --run-dir runs/ship/omniglot-5w1s --threads 1 --no-progress --time-budget 6000
icml17 maml export --replace --run-dir runs/ship/omniglot-5w1s --name omniglot-5w1s --reproduces results/maml/omniglot-5w1s.json \
  --description "MAML Omniglot 5-way 1-shot, reference protocol"
icml17 maml eval --weights omniglot-5w1s --data-dir "$DATA" --record results/maml
icml17 maml eval --weights omniglot-5w1s --data-dir "$DATA" --queries 15 --record results/maml

# Omniglot 5-way 5-shot (record omniglot-5w5s.json; stopped by --time-budget, iterations in the record)
icml17 maml train --preset omniglot-5w5s --run-dir runs/maml/omniglot-5w5s --data-dir "$DATA" --threads 2
icml17 maml eval --run-dir runs/maml/omniglot-5w5s --data-dir "$DATA" --tasks 600 --threads 2 --record results/maml

# Figures (Figure 2 and 3 for sinusoids, learning curves)
for k in 5 20; do
  icml17 maml plots --run-dir runs/maml/sinusoid-k$k --baselines runs/maml/baselines --out results/maml/figures/sinusoid-k$k
done
icml17 maml plots --run-dir runs/ship/sinusoid-k10 --baselines runs/maml/baselines --out results/maml/figures/sinusoid-k10
icml17 maml plots --run-dir runs/ship/omniglot-5w1s --out results/maml/figures/omniglot-5w1s
icml17 maml plots --run-dir runs/maml/omniglot-5w5s --out results/maml/figures/omniglot-5w5s

# Speed benchmarks (results/bench/maml.json; scale-out on 2 processes: results/bench/maml-scaleout.json)
python benchmarks/maml.py --quick --threads 1 --chunk-sweep 8 4
python benchmarks/maml.py --quick --scaleout 2
python benchmarks/maml-profile.py --cases omniglot-5w1s miniimagenet-5w1s   # results/bench/maml-profile.json
