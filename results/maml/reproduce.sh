#!/bin/sh
# The commands behind every record in results/maml/ (run from the repository root; DATA = the datasets folder).
# Numbers in this folder were produced on a shared 2-core CPU with these commands; iterations actually done
# are in each record ("iterations"), because the runs were stopped by --time-budget.
set -e
DATA=${DATA:-../shared/data}

# Sinusoid regression, K = 5, 10, 20 (records sinusoid-k{K}-step{1,10}.json)
for k in 5 10 20; do
  icml17 maml train --preset sinusoid-k$k --run-dir runs/maml/sinusoid-k$k --threads 1
  icml17 maml eval --run-dir runs/maml/sinusoid-k$k --tasks 600 --threads 1 --record results/maml
done

# Baselines (records sinusoid-k{K}-step{1,10}-pretrained.json, sinusoid-oracle.json)
icml17 maml baseline --kind pretrained --run-dir runs/maml/baselines/pretrained --iterations 70000 --threads 1 --record results/maml
icml17 maml baseline --kind oracle --run-dir runs/maml/baselines/oracle --iterations 70000 --threads 1 --record results/maml

# Omniglot 5-way 1-shot (records omniglot-5w1s.json, with 15 queries per class omniglot-5w1s-q15.json)
icml17 maml train --preset omniglot-5w1s --run-dir runs/maml/omniglot-5w1s --data-dir "$DATA" --threads 1
icml17 maml eval --run-dir runs/maml/omniglot-5w1s --data-dir "$DATA" --tasks 600 --threads 1 --record results/maml
icml17 maml eval --run-dir runs/maml/omniglot-5w1s --data-dir "$DATA" --tasks 600 --queries 15 --threads 1 --record results/maml

# Omniglot 5-way 5-shot (record omniglot-5w5s.json; stopped by --time-budget, iterations in the record)
icml17 maml train --preset omniglot-5w5s --run-dir runs/maml/omniglot-5w5s --data-dir "$DATA" --threads 2
icml17 maml eval --run-dir runs/maml/omniglot-5w5s --data-dir "$DATA" --tasks 600 --threads 2 --record results/maml

# Figures (Figure 2 and 3 for sinusoids, learning curves)
for k in 5 10 20; do
  icml17 maml plots --run-dir runs/maml/sinusoid-k$k --baselines runs/maml/baselines --out results/maml/figures/sinusoid-k$k
done
icml17 maml plots --run-dir runs/maml/omniglot-5w1s --out results/maml/figures/omniglot-5w1s
icml17 maml plots --run-dir runs/maml/omniglot-5w5s --out results/maml/figures/omniglot-5w5s

# Speed benchmark (results/bench/maml.json)
python benchmarks/maml.py --quick --threads 1 --chunk-sweep 8 4
python benchmarks/maml-profile.py --cases omniglot-5w1s miniimagenet-5w1s   # results/bench/maml-profile.json
