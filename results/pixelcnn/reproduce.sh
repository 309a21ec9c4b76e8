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
python benchmarks/pixelcnn-sampling.py

# The shipped model (src/icml17/weights/pixelcnn-binarized-mnist-typeA.safetensors) and its record
# binarized-mnist-typeA-20k.json, evaluated from the shipped file on the 10,000 test images
icml17 pixelcnn train --preset binarized-mnist --model multiscale-a --iterations 20000 --data-dir "$DATA" \
  --run-dir runs/ship/binarized-mnist-typeA --threads 1 --no-progress
icml17 pixelcnn export --run-dir runs/ship/binarized-mnist-typeA --name binarized-mnist-typeA \
  --reproduces results/pixelcnn/binarized-mnist-typeA-20k.json \
  --description "type-A multiscale PixelCNN (width 32), dynamically binarized MNIST, 20,000 steps of batch 32"
icml17 pixelcnn eval --weights binarized-mnist-typeA --data-dir "$DATA" --record results/pixelcnn --name binarized-mnist-typeA-20k
