#!/bin/sh
# Table 2 (Reed et al. 2017, section 4.3) with parameter-matched models on the action-driven data: the `table2`
# preset (32x32 frames, 10-frame videos, 2 context frames, batch 8, 500 steps, the `pushed` generator whose actions
# decide the motion and whose test_seen split is filmed by a zoomed-out camera) with every model sized to about
# 450,000 parameters (convlstm 452,268; o_t 449,108; o_tlogn 480,800; vpn 452,352: each within 10%, printed by
# `pytest -s tests/pixelcnn/video/test_video_commands.py -k table2`). Three seeds per model; each run is scored on
# 200 videos of val, test_seen and test_novel, and again with every video's actions taken from another video
# (--shuffle-actions): <split>_action_cost in the records is the likelihood the model gets from the actions.
# Records: results/pixelcnn/video-<model>-table2.json (seed 0), results/pixelcnn/seeds/ for seeds 1 and 2
# (video-<model>-table2-seed<N>.json); summary and pairwise comparisons results/pixelcnn/video-table2-seeds.json.
# The 2-core machine can run two of these loops side by side: SEEDS="0" MODELS="vpn" sh ... beside the rest.
#
# Wall time, estimated from one short timed run of each model (12 training steps, then the evaluation of 16 videos
# per split with shuffled actions; user + system CPU seconds of one thread, measured at a load average of about 13
# on the 2-core machine, startup and the final periodic evaluation subtracted):
#   per training step:     convlstm 0.96 s, o_t 1.15 s, o_tlogn 0.94 s, vpn 5.3 s
#   per scored video:      convlstm 0.044 s, o_t 0.051 s, o_tlogn 0.039 s, vpn 0.32 s (1,200 per run: 3 splits x 2)
#   per seed (4 models):   about 540 + 640 + 520 + 3,050 s = 79 min of one core
#   all 3 seeds:           about 4 h of one core; with two runs side by side on 2 idle cores about 2 h. A busy
#                          machine stretches this (the timed runs themselves took 8x their CPU time in wall time).
set -e
DATA=${DATA:-../shared/data}
SEEDS=${SEEDS:-0 1 2}
MODELS=${MODELS:-convlstm o_t o_tlogn vpn}
for seed in $SEEDS; do
  for model in $MODELS; do
    if [ "$seed" = 0 ]; then suffix=; out=results/pixelcnn; else suffix=-seed$seed; out=results/pixelcnn/seeds; fi
    run=runs/pixelcnn/video-$model-table2$suffix
    icml17 pixelcnn video train --preset table2 --model $model --seed $seed --run-dir $run --data-dir "$DATA" \
      --threads 1 --no-progress
    icml17 pixelcnn video eval --run-dir $run --data-dir "$DATA" --threads 1 --shuffle-actions \
      --record $out --name video-$model-table2$suffix
  done
done

# Summary over seeds (mean, min, max per model and split, and the actions' cost), then every pair of models: the
# difference of the means and whether the seed ranges are apart (claim an ordering only where they are).
fields="--field val --field test_seen --field test_novel --field val_action_cost --field test_seen_action_cost \
  --field test_novel_action_cost"
icml17 results seeds video-convlstm-table2 video-o_t-table2 video-o_tlogn-table2 video-vpn-table2 \
  --record results/pixelcnn --name video-table2-seeds $fields
icml17 results paired video-convlstm-table2 video-o_t-table2 video-o_tlogn-table2 video-o_t-table2 \
  video-vpn-table2 video-o_t-table2 video-o_tlogn-table2 video-vpn-table2 video-convlstm-table2 video-vpn-table2 \
  video-convlstm-table2 video-o_tlogn-table2 --record results/pixelcnn --name video-table2-seeds $fields
