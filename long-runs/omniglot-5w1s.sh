#!/bin/sh
# Omniglot 5-way 1-shot to the paper's 60,000 meta-iterations on two processes (torchrun, gloo, one thread each),
# in stages of 5,000 so that each stage's weights can be evaluated on the 600 test tasks for the learning curve.
# Resumable: rerun the same script (the checkpoint, config and metrics are committed between sessions); each stage resumes from long-runs/maml/omniglot-5w1s/checkpoints/last.pt.
# Snapshots of the checkpoint at every 5,000 iterations go to long-runs/maml/omniglot-5w1s/snapshots/.
set -e
DATA=${DATA:-../shared/data}
RUN=long-runs/maml/omniglot-5w1s
for it in 5000 10000 15000 20000 25000 30000 35000 40000 45000 50000 55000 60000; do
  # a stage is done when its snapshot exists or has been evaluated (evaluated snapshots are not kept in git)
  if [ -f "$RUN/snapshots/it$it.pt" ] || [ -f "results/maml/omniglot-5w1s-curve/it$it.json" ]; then continue; fi
  torchrun --standalone --nproc_per_node=2 -m icml17 maml train --preset omniglot-5w1s --data-dir "$DATA" \
    --run-dir "$RUN" --iterations "$it" --threads 1 --no-progress
  mkdir -p "$RUN/snapshots"
  cp "$RUN/checkpoints/last.pt" "$RUN/snapshots/it$it.pt.tmp" && mv "$RUN/snapshots/it$it.pt.tmp" "$RUN/snapshots/it$it.pt"
done
