"""torchrun's GPU path: one process joins with NCCL on a GPU (gloo on the CPU), takes its LOCAL_RANK device,
all-reduces a tensor there and trains a short MAML run through the CLI; rank 0 writes one record.

    torchrun --standalone --nproc_per_node=1 benchmarks/gpu/distributed.py --device cuda --out DIR
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from icml17.cli import main as icml17
from icml17.core import device as devices
from icml17.core import distributed
from icml17.core.results import write_record


def run(args: argparse.Namespace) -> dict:
    ctx = distributed.setup()
    dev = devices.resolve(args.device)
    ones = torch.ones(4, device=dev)
    if torch.distributed.is_initialized():  # even one process issues a real collective on its backend
        torch.distributed.all_reduce(ones)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        code = icml17(
            [
                "maml",
                "train",
                "--preset",
                "sinusoid-k5",
                "--iterations",
                str(args.iterations),
                "--run-dir",
                f"{tmp}/run",
                "--no-progress",
                "--device",
                args.device,
            ]
        )
        seconds = time.perf_counter() - t0
    return {
        "benchmark": "device-check-distributed",
        "backend": ctx.backend or "none (one process)",
        "world_size": ctx.world_size,
        "rank_device": str(dev),
        "all_reduce_ok": bool(ones.eq(ctx.world_size).all()),
        "train_exit_code": code,
        "train_iterations": args.iterations,
        "train_seconds": round(seconds, 2),
        "command": "torchrun --standalone --nproc_per_node=1 " + " ".join(sys.argv),
    }, dev


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda")
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    record, dev = run(a)
    if distributed.context().is_main:
        name = f"distributed-{torch.device(dev).type}.json"
        write_record(a.out / name, record, device=dev)
        print(record)
    ok = record["train_exit_code"] == 0 and record["all_reduce_ok"]
    distributed.teardown()
    sys.exit(0 if ok else 1)
