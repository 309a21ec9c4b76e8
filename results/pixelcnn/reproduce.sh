#!/bin/sh
# The commands behind the likelihood records in results/pixelcnn/ (run from the repository root).
# Each triple (full O(N) PixelCNN, multiscale type A, type B) shares width (hidden 32), depth (4 gated layers;
# 2 ResNet blocks per upscaler; 2 shallow layers for type B), batch 32 and iteration count, and is scored on
# the whole test split (MNIST 10,000 images; CIFAR-10 subset 1,000). Wall times are in the records.
set -e
DATA=${DATA:-../shared/data}
for spec in mnist:1000 binarized-mnist:800 cifar10-subset:800; do
  preset=${spec%%:*}; its=${spec##*:}
  for model in full multiscale-a multiscale-b; do
    case $model in full) tag=full;; multiscale-a) tag=typeA;; multiscale-b) tag=typeB;; esac
    icml17 pixelcnn train --preset $preset --model $model --run-dir runs/pixelcnn/eq-$preset-$tag --data-dir "$DATA" \
      --threads 1 --iterations $its --set batch_size=32 --set eval_every=250 --set checkpoint_every=100
    icml17 pixelcnn eval --threads 1 --run-dir runs/pixelcnn/eq-$preset-$tag --data-dir "$DATA" \
      --record results/pixelcnn
  done
done

# Parameter-matched multiscale models (type A hidden 16, type B hidden 12: 85-91k parameters against the full
# model's 98k), same iterations and batch as above; records *-typeA-small.json, *-typeB-small.json.
for spec in mnist:1000 binarized-mnist:800; do
  preset=${spec%%:*}; its=${spec##*:}
  for mh in multiscale-a:16:typeA multiscale-b:12:typeB; do
    model=${mh%%:*}; rest=${mh#*:}; h=${rest%%:*}; tag=${rest#*:}
    icml17 pixelcnn train --preset $preset --model $model --run-dir runs/pixelcnn/pm-$preset-$tag --data-dir "$DATA" \
      --threads 1 --iterations $its --set batch_size=32 --set eval_every=250 --set checkpoint_every=100 --set hidden=$h
    icml17 pixelcnn eval --threads 1 --run-dir runs/pixelcnn/pm-$preset-$tag --data-dir "$DATA" \
      --record results/pixelcnn --name $preset-$tag-small
  done
done

# Sampling speed (results/bench/pixelcnn-sampling.json)
python benchmarks/pixelcnn-sampling.py --no-window-evals 16

# The shipped model (src/icml17/weights/pixelcnn-binarized-mnist-typeA.safetensors) and its record
# binarized-mnist-typeA-20k.json, evaluated from the shipped file on the 10,000 test images
icml17 pixelcnn train --preset binarized-mnist --model multiscale-a --iterations 20000 --data-dir "$DATA" \
  --run-dir runs/ship/binarized-mnist-typeA --threads 1 --no-progress
icml17 pixelcnn export --replace --run-dir runs/ship/binarized-mnist-typeA --name binarized-mnist-typeA \
  --reproduces results/pixelcnn/binarized-mnist-typeA-20k.json \
  --description "type-A multiscale PixelCNN (width 32), dynamically binarized MNIST, 20,000 steps of batch 32"
icml17 pixelcnn eval --weights binarized-mnist-typeA --data-dir "$DATA" --record results/pixelcnn --name binarized-mnist-typeA-20k

# Seeds 1 and 2 of the equal-width triples (records in results/pixelcnn/seeds/), type B with the paper's 4 shallow
# layers (seeds 0-2), the parameter-matched models' seeds 1-2; summary: results/pixelcnn/likelihood-seeds.json
common="--no-progress --set batch_size=32 --set eval_every=250 --set checkpoint_every=100"
for spec in mnist:1000 cifar10-subset:800; do
  preset=${spec%%:*}; its=${spec##*:}
  for seed in 1 2; do
    for model in full multiscale-a multiscale-b; do
      case $model in full) tag=full;; multiscale-a) tag=typeA;; multiscale-b) tag=typeB;; esac
      icml17 pixelcnn train --threads 1 --preset $preset --model $model --run-dir runs/pixelcnn/eq-$preset-$tag-seed$seed \
        --data-dir "$DATA" --seed $seed --iterations $its $common
      icml17 pixelcnn eval --threads 1 --run-dir runs/pixelcnn/eq-$preset-$tag-seed$seed --data-dir "$DATA" \
        --record results/pixelcnn/seeds --name $preset-$tag-seed$seed
    done
  done
done
for seed in 0 1 2; do
  icml17 pixelcnn train --threads 1 --preset mnist --model multiscale-b --run-dir runs/pixelcnn/eq-mnist-typeB-shallow4-seed$seed \
    --data-dir "$DATA" --seed $seed --iterations 1000 --set shallow_layers=4 $common
  icml17 pixelcnn eval --threads 1 --run-dir runs/pixelcnn/eq-mnist-typeB-shallow4-seed$seed --data-dir "$DATA" \
    --record results/pixelcnn/seeds --name mnist-typeB-shallow4-seed$seed
done
for seed in 1 2; do
  for mh in multiscale-a:16:typeA multiscale-b:12:typeB; do
    model=${mh%%:*}; rest=${mh#*:}; h=${rest%%:*}; tag=${rest#*:}
    icml17 pixelcnn train --threads 1 --preset mnist --model $model --run-dir runs/pixelcnn/pm-mnist-$tag-seed$seed \
      --data-dir "$DATA" --seed $seed --iterations 1000 --set hidden=$h $common
    icml17 pixelcnn eval --threads 1 --run-dir runs/pixelcnn/pm-mnist-$tag-seed$seed --data-dir "$DATA" \
      --record results/pixelcnn/seeds --name mnist-$tag-small-seed$seed
  done
done
# Summary over seeds (results/pixelcnn/likelihood-seeds.json): each model's test NLL by seed, mean, min and max; each
# multiscale model against the full one of its dataset, type B against type A, 4 shallow layers against 2 (a gap is
# claimed only where the seed ranges are apart)
icml17 results seeds mnist-full mnist-typeA mnist-typeB mnist-typeA-small mnist-typeB-small mnist-typeB-shallow4 \
  cifar10-subset-full cifar10-subset-typeA cifar10-subset-typeB binarized-mnist-full binarized-mnist-typeA \
  binarized-mnist-typeB binarized-mnist-typeA-small binarized-mnist-typeB-small \
  --record results/pixelcnn --name likelihood-seeds
icml17 results paired mnist-typeA mnist-full mnist-typeB mnist-full mnist-typeA-small mnist-full \
  mnist-typeB-small mnist-full mnist-typeB-shallow4 mnist-full mnist-typeB mnist-typeA mnist-typeB-shallow4 mnist-typeB \
  cifar10-subset-typeA cifar10-subset-full cifar10-subset-typeB cifar10-subset-full \
  cifar10-subset-typeB cifar10-subset-typeA binarized-mnist-typeA binarized-mnist-full \
  binarized-mnist-typeB binarized-mnist-full binarized-mnist-typeA-small binarized-mnist-full \
  binarized-mnist-typeB-small binarized-mnist-full binarized-mnist-typeB binarized-mnist-typeA \
  --record results/pixelcnn --name likelihood-seeds --headline

# Table 1 analogue: class- and text+spatial-conditional MNIST, full vs type B, 5,000 training images held out for
# validation, each split scored on its first 5,000 images (records results/pixelcnn/table1-*.json)
for preset in mnist-class mnist-text-spatial; do
  for model in full multiscale-b; do
    case $model in full) tag=full;; multiscale-b) tag=typeB;; esac
    icml17 pixelcnn train --threads 1 --preset $preset --model $model --run-dir runs/pixelcnn/table1-$preset-$tag --data-dir "$DATA" \
      --seed 0 --iterations 1000 --set val_images=5000 $common
    icml17 pixelcnn eval --threads 1 --run-dir runs/pixelcnn/table1-$preset-$tag --data-dir "$DATA" \
      --splits train val test --n-eval 5000 --record results/pixelcnn --name table1-$preset-$tag
  done
done
# Table 1 seeds 1 and 2 (records results/pixelcnn/seeds/table1-*-seed<k>.json)
for seed in 1 2; do
  for preset in mnist-class mnist-text-spatial; do
    for model in full multiscale-b; do
      case $model in full) tag=full;; multiscale-b) tag=typeB;; esac
      icml17 pixelcnn train --threads 1 --preset $preset --model $model --run-dir runs/pixelcnn/table1-$preset-$tag-seed$seed \
        --data-dir "$DATA" --seed $seed --iterations 1000 --set val_images=5000 $common
      icml17 pixelcnn eval --threads 1 --run-dir runs/pixelcnn/table1-$preset-$tag-seed$seed --data-dir "$DATA" \
        --splits train val test --n-eval 5000 --record results/pixelcnn/seeds --name table1-$preset-$tag-seed$seed
    done
  done
done
# ... into the same summary: the Table 1 models over seeds, nats per sub-pixel on each split, type B against full
icml17 results seeds table1-mnist-class-full table1-mnist-class-typeB table1-mnist-text-spatial-full \
  table1-mnist-text-spatial-typeB --record results/pixelcnn --name likelihood-seeds
icml17 results paired table1-mnist-class-typeB table1-mnist-class-full \
  table1-mnist-text-spatial-typeB table1-mnist-text-spatial-full --record results/pixelcnn --name likelihood-seeds

# Table 2 analogue at 500 steps: seeds 1 and 2 of three video models (seed 0's records,
# results/pixelcnn/video-<model>.json, name their own commands; the VPN has seed 0 only), then the summary over seeds
# (results/pixelcnn/video-seeds.json; its periodic validation curves were read from the run directories when it was
# first written, and are kept)
for s in 1 2; do
  for m in convlstm o_t o_tlogn; do
    icml17 pixelcnn video train --preset cpu --model $m --data-dir "$DATA" --threads 1 --seed $s \
      --run-dir runs/pixelcnn/video-$m-seed$s
    icml17 pixelcnn video eval --run-dir runs/pixelcnn/video-$m-seed$s --data-dir "$DATA" --threads 1 \
      --record results/pixelcnn/seeds --name video-$m-seed$s
  done
done
icml17 results seeds video-o_t video-o_tlogn video-vpn video-convlstm --record results/pixelcnn --name video-seeds \
  --keep learning_curves --keep val_drop_250_to_500 --keep learning_curves_note
icml17 results paired video-convlstm video-o_t --record results/pixelcnn --name video-seeds --headline

# Table 2 analogue at 1,500 steps (seed 0): the four video models (records results/pixelcnn/video-<model>-1500.json)
for m in vpn o_t o_tlogn convlstm; do
  icml17 pixelcnn video train --preset cpu --model $m --set tag=-1500 iterations=1500 --run-dir runs/pixelcnn/video-$m-1500 --data-dir "$DATA" --threads 1 --no-progress
  icml17 pixelcnn video eval --run-dir runs/pixelcnn/video-$m-1500 --data-dir "$DATA" --threads 1 --record results/pixelcnn --name video-$m-1500
done
# ... and a second seed of the three autoregressive video models at 1,500 steps (records in results/pixelcnn/seeds/)
for m in vpn o_t o_tlogn; do
  icml17 pixelcnn video train --preset cpu --model $m --set tag=-1500 iterations=1500 --seed 1 --run-dir runs/pixelcnn/video-$m-1500-seed1 --data-dir "$DATA" --threads 1 --no-progress
  icml17 pixelcnn video eval --run-dir runs/pixelcnn/video-$m-1500-seed1 --data-dir "$DATA" --threads 1 --record results/pixelcnn/seeds --name video-$m-1500-seed1
done
# ... a third seed of those three, and seeds 1-2 of the ConvLSTM baseline
for m in vpn o_t o_tlogn convlstm; do
  for seed in 1 2; do
    if [ $seed = 1 ] && [ $m != convlstm ]; then continue; fi  # trained above
    icml17 pixelcnn video train --preset cpu --model $m --set tag=-1500 iterations=1500 --seed $seed --run-dir runs/pixelcnn/video-$m-1500-seed$seed --data-dir "$DATA" --threads 1 --no-progress
    icml17 pixelcnn video eval --run-dir runs/pixelcnn/video-$m-1500-seed$seed --data-dir "$DATA" --threads 1 --record results/pixelcnn/seeds --name video-$m-1500-seed$seed
  done
done
# Summary over seeds (results/pixelcnn/video-1500-seeds.json): each model's three splits by seed, mean, min and max;
# every pair of models (gap of the means, seed pairings); how much each run's periodic validation loss still fell over
# its last 250 steps was read from the run directories when it was first written, and is kept
icml17 results seeds video-o_t-1500 video-o_tlogn-1500 video-vpn-1500 video-convlstm-1500 --record results/pixelcnn \
  --name video-1500-seeds --keep eval_drop_1250_to_1500
icml17 results paired video-convlstm-1500 video-o_t-1500 video-o_t-1500 video-o_tlogn-1500 \
  video-o_t-1500 video-vpn-1500 video-o_tlogn-1500 video-vpn-1500 video-o_tlogn-1500 video-convlstm-1500 \
  video-vpn-1500 video-convlstm-1500 \
  --record results/pixelcnn --name video-1500-seeds --headline
