#!/bin/sh
# The open GPU item, as one prepared run for the lent GPU machine (issue 13, Table 4 on a GPU): our O(T) and
# O(T log N) video samplers and both O(TN) VPN samplers (the paper's windowed one and the caching one) timed in the
# same run, batch 1 and 5, as the CPU record. Checked here without a GPU: every sampler makes its tensors on the
# model's device (tests/pixelcnn/video/test_video_sampling.py). About a minute of GPU time plus the start.
#   device run: sh benchmarks/device-checks.sh     -> $OUT/pixelcnn-video-sampling-cuda.json, $OUT/gpu.txt
# Copy the record to results/bench/ and run `icml17 results` here afterwards.
set -e
OUT=${OUT:-results/bench}
nvidia-smi --query-gpu=name,driver_version,memory.used,utilization.gpu --format=csv > "$OUT/gpu.txt" || true
PYTHONUNBUFFERED=1 python3 benchmarks/pixelcnn-video-sampling.py --device cuda \
  --out "$OUT/pixelcnn-video-sampling-cuda.json"
