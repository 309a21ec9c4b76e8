#!/bin/sh
# Every system on one device, as one prepared run for a lent GPU machine (about 8 minutes of an H100 at full size):
# each system trains briefly, evaluates, samples, and its checkpoint evaluates on the CPU to the same number; torchrun
# with NCCL on one process; and the speed comparisons, both sides on the same device in the same run.
#
#   sh benchmarks/device-checks.sh                       # on the GPU machine: records in $OUT (default results/bench)
#   sh benchmarks/device-checks.sh --device cpu --tiny   # the same script end to end on the CPU, tiny sizes (a test)
#
# Runs from a source tree without installing (PYTHONPATH=src). A step that fails is reported and the others still run;
# the exit status is 1 when any failed. Afterwards copy the *-cuda.json records to results/bench/ and run
# `icml17 results`.
DEVICE=cuda
TINY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --tiny) TINY=--tiny; shift ;;
    *) echo "device-checks.sh: unknown argument $1 (use --device DEVICE and --tiny)" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-results/bench}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
TAG=$(echo "$DEVICE" | cut -d: -f1)
FAILED=""
STEP_TIMEOUT=${STEP_TIMEOUT:-170}  # seconds per step: one slow step must not eat the others' share of the GPU time
step() {  # step NAME COMMAND...: run, time, and remember a failure without stopping the others
  name=$1; shift
  echo "== $name: $*"
  start=$(date +%s)
  if timeout "$STEP_TIMEOUT" "$@"; then echo "== $name: ok in $(( $(date +%s) - start )) s"
  else echo "== $name: FAILED after $(( $(date +%s) - start )) s"; FAILED="$FAILED $name"; fi
}
if [ "$TAG" = cuda ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1 || true
fi
step maml      "$PY" benchmarks/gpu/maml.py      --device "$DEVICE" $TINY --out "$OUT"
step maml-rl   "$PY" benchmarks/gpu/maml_rl.py   --device "$DEVICE" $TINY --out "$OUT"
step pixelcnn  "$PY" benchmarks/gpu/pixelcnn.py  --device "$DEVICE" $TINY --out "$OUT"
step video     "$PY" benchmarks/gpu/video.py     --device "$DEVICE" $TINY --out "$OUT"
step sharpness "$PY" benchmarks/gpu/sharpness.py --device "$DEVICE" $TINY --out "$OUT"
step torchrun  "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 benchmarks/gpu/distributed.py \
  --device "$DEVICE" --iterations "$([ -n "$TINY" ] && echo 3 || echo 20)" --out "$OUT"
if [ -n "$TINY" ]; then
  step video-table4 "$PY" benchmarks/pixelcnn-video-sampling.py --device "$DEVICE" --quick --size 8 --frames 2 \
    --batches 1 --hidden 8 --layers 1 --out "$OUT/pixelcnn-video-sampling-$TAG.json"
else
  step video-table4 "$PY" benchmarks/pixelcnn-video-sampling.py --device "$DEVICE" \
    --out "$OUT/pixelcnn-video-sampling-$TAG.json"
fi
if [ -n "$FAILED" ]; then echo "device-checks: FAILED:$FAILED"; exit 1; fi
echo "device-checks: every step passed on $DEVICE"
