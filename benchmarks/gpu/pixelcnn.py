"""GPU check of the image PixelCNN (issue 27): training, exact likelihood, samplers and sampling speed on one device.
One record: ``OUT/pixelcnn-<device type>.json``.

1. MNIST (8-bit, logistic mixture, the ``mnist`` preset's model) type A and type B train briefly on ``--device``
   (``--data-dir``, else synthetic MNIST written in the official gzipped IDX format into a temporary folder). The
   exact test likelihood is computed on the device (TF32 on, as the CLI runs by default, and off) and, from the
   saved checkpoint reloaded on the CPU, on the CPU; the record holds the bits/dim and their differences
   (``agree``: the fp32 device number, TF32 off, within 1e-4 bits/dim of the CPU's). Samples and a
   super-resolution (7x7 -> 28x28) are drawn on the device, the noise from a generator there.
2. Mixed precision: type A trains a few steps in bf16 (and fp16 with its gradient scaler, on CUDA); the periodic
   likelihood stays fp32.
3. Speed, same device, same run: multiscale type A and type B sampling vs the full PixelCNN's activation-caching
   O(N) sampler (the strongest O(N) baseline) at 32x32, 64x64 and 128x128, with the model sizes of
   ``benchmarks/pixelcnn-sampling.py`` (RGB, logistic mixture, width 32, depth 4, base 4x4, M = 4, batch 30),
   randomly initialised; one warm-up, then the median of the same number of batches for every sampler. The O(N)
   sampler runs one sequential step per pixel (16,384 at 128x128), so where ``--full-rows`` R is below the image
   size S it is timed as completions of the bottom R2 = min(R, S/2) and R1 = R2/4 rows (each costs every row's
   vertical stack + R x S pixel steps) and extrapolated linearly to all S rows (``cached_extrapolated_from_rows``);
   at the smallest size (32x32) it is timed both end to end and so, to check the extrapolation
   (``cached_extrapolation_check``).

    PYTHONPATH=src python3 benchmarks/gpu/pixelcnn.py --device cuda --out /tmp/gpu-pixelcnn
    PYTHONPATH=src python3 benchmarks/gpu/pixelcnn.py --device cpu --tiny --out /tmp/gpu-pixelcnn   # ~1 min
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from icml17.core import device as devices
from icml17.core.results import write_record
from icml17.pixelcnn.data import load_split, make_context, raw_levels, test_images, to_model_device
from icml17.pixelcnn.evaluate import likelihood, load_run
from icml17.pixelcnn.multiscale import MultiscalePixelCNN
from icml17.pixelcnn.pixelcnn import PixelCNN
from icml17.pixelcnn.presets import make_config
from icml17.pixelcnn.train import train

AGREE_BPD = 1e-4  # fp32 on the device (TF32 off) vs the CPU, bits/dim


def say(msg: str) -> None:
    print(msg, flush=True)


def timed(fn, on: torch.device, /, *args, **kwargs):
    """(result, seconds) of ``fn(*args, **kwargs)``, waiting for the device ``on`` at both ends."""
    devices.synchronize(on)
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    devices.synchronize(on)
    return out, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------------ data
def synthetic_mnist(root: Path) -> Path:
    """Synthetic MNIST (60,000 / 10,000 digit-like images) in the official gzipped IDX files under ``root/mnist``."""
    try:
        from icml17.data import write_synthetic_datasets

        write_synthetic_datasets(root, seed=0, only=["mnist"])
    except ImportError:  # a peer of the data package missing: the same format from random strokes
        import gzip
        import struct

        import numpy as np

        rng = np.random.default_rng(0)
        folder = root / "mnist"
        folder.mkdir(parents=True, exist_ok=True)
        for prefix, n in (("train", 60_000), ("t10k", 10_000)):
            labels = (np.arange(n) % 10).astype(np.uint8)
            images = np.zeros((n, 28, 28), dtype=np.uint8)
            for d in range(10):
                images[labels == d, 4 + d : 24 - d // 2, 6 : 22 - d] = 255
            images = (images * (rng.random(images.shape) < 0.9)).astype(np.uint8)
            for name, arr, magic in (
                (f"{prefix}-images-idx3-ubyte.gz", images, 2051),
                (f"{prefix}-labels-idx1-ubyte.gz", labels, 2049),
            ):
                with gzip.open(folder / name, "wb", compresslevel=1) as f:
                    f.write(struct.pack(f">{1 + arr.ndim}I", magic, *arr.shape) + arr.tobytes())
    return root


# --------------------------------------------------------------------------------------------- train / eval
def train_eval_sample(model: str, data_dir: Path, runs: Path, device: torch.device, tiny: bool) -> dict:
    steps = 20 if tiny else 200
    overrides = {
        "iterations": steps,
        "eval_every": steps,
        "checkpoint_every": steps,
        "eval_images": 16 if tiny else 200,
        **({"hidden": 8, "layers": 2, "resnet_blocks": 1} if tiny else {}),
    }
    cfg = make_config("mnist", model, overrides)
    run_dir = runs / cfg.experiment
    say(f"[{cfg.experiment}] training {steps} steps on {device}")
    result, train_s = timed(train, device, cfg, run_dir, data_dir, resume=False, progress=False, device=device)
    out = {
        "model": model,
        "steps": result.steps_done,
        "train_s": round(train_s, 2),
        "ms_per_step": round(train_s / max(result.steps_done, 1) * 1e3, 2),
        "first_train_bpd": round(result.first_metrics["bits_per_dim"], 4),
        "last_train_bpd": round(result.last_metrics["bits_per_dim"], 4),
        "periodic_eval_bpd": round(result.last_eval["bits_per_dim"], 4),
    }

    images, labels = load_split(cfg, data_dir, "test")
    n_eval = 32 if tiny else 200
    x, y = test_images(cfg, images[:n_eval]), labels[:n_eval]
    trained = load_run(run_dir, device)  # the checkpoint (CPU tensors) onto the device
    model_dev = trained.model
    tf32_before = devices.tf32_enabled()
    devices.set_tf32(True)
    ev_tf32, s_tf32 = timed(likelihood, device, model_dev, cfg, x, y)
    devices.set_tf32(False)
    ev_dev, s_dev = timed(likelihood, device, model_dev, cfg, x, y)
    devices.set_tf32(tf32_before)
    cpu = load_run(run_dir)  # the same checkpoint on the CPU
    ev_cpu, s_cpu = timed(likelihood, torch.device("cpu"), cpu.model, cfg, x, y)
    diff = abs(ev_dev["bits_per_dim"] - ev_cpu["bits_per_dim"])
    out["likelihood"] = {
        "n_images": n_eval,
        "device_bpd": ev_dev["bits_per_dim"],
        "device_tf32_bpd": ev_tf32["bits_per_dim"],
        "cpu_bpd_from_checkpoint": ev_cpu["bits_per_dim"],
        "abs_diff_bpd": diff,
        "abs_diff_tf32_bpd": abs(ev_tf32["bits_per_dim"] - ev_cpu["bits_per_dim"]),
        "max_factor_abs_diff_bpd": max(abs(ev_dev[k] - ev_cpu[k]) for k in ev_cpu if k.startswith("bpd/")),
        "tolerance_bpd": AGREE_BPD,
        "agree": diff <= AGREE_BPD,
        "device_s": round(s_dev, 3),
        "device_tf32_s": round(s_tf32, 3),
        "cpu_s": round(s_cpu, 3),
    }
    say(
        f"[{cfg.experiment}] bits/dim device {ev_dev['bits_per_dim']:.6f} (TF32 {ev_tf32['bits_per_dim']:.6f}), "
        f"CPU from checkpoint {ev_cpu['bits_per_dim']:.6f}: |diff| {diff:.2e}"
    )

    n = 8 if tiny else 16
    gen = devices.generator(device, 0)
    samples, sample_s = timed(model_dev.sample, device, n, None, 1.0, gen)
    xs = to_model_device(x[:n], device)
    context = to_model_device(make_context(cfg, y[:n], raw_levels(x[:n], cfg)), device)
    low = xs[:, :, :: model_dev.stride(0), :: model_dev.stride(0)]
    sr, sr_s = timed(model_dev.super_resolve, device, low, context, 1.0, gen)
    kept = bool(torch.equal(sr.images[:, :, :: model_dev.stride(0), :: model_dev.stride(0)], low))
    imgs = samples.images
    out["samples"] = {
        "n": n,
        "device": str(imgs.device),
        "evaluations": samples.evaluations,
        "seconds": round(sample_s, 3),
        "in_range": bool(imgs.min() >= 0 and imgs.max() < model_dev.levels),
        "mean_level": round(imgs.float().mean().item(), 2),
        "superres_evaluations": sr.evaluations,
        "superres_seconds": round(sr_s, 3),
        "superres_keeps_low_resolution": kept,
    }
    return out


def precision_check(data_dir: Path, runs: Path, device: torch.device, tiny: bool) -> dict:
    out = {}
    steps = 10 if tiny else 50
    for precision in ("bf16", "fp16"):
        try:
            devices.check_precision(precision, device)
        except devices.DeviceError as e:
            out[precision] = {"skipped": str(e)}
            continue
        cfg = make_config(
            "mnist",
            "multiscale-a",
            {
                "iterations": steps,
                "eval_every": steps,
                "checkpoint_every": steps,
                "eval_images": 16 if tiny else 100,
                **({"hidden": 8, "layers": 2, "resnet_blocks": 1} if tiny else {}),
            },
        )
        say(f"[precision] type A, {precision}, {steps} steps")
        result, sec = timed(
            train,
            device,
            cfg,
            runs / f"precision-{precision}",
            data_dir,
            resume=False,
            progress=False,
            device=device,
            precision=precision,
        )
        out[precision] = {
            "steps": result.steps_done,
            "seconds": round(sec, 2),
            "first_train_bpd": round(result.first_metrics["bits_per_dim"], 4),
            "last_train_bpd": round(result.last_metrics["bits_per_dim"], 4),
            "eval_bpd_fp32": round(result.last_eval["bits_per_dim"], 4),
            **({"loss_scale": result.last_metrics["loss_scale"]} if "loss_scale" in result.last_metrics else {}),
        }
    return out


# ------------------------------------------------------------------------------------------------------ speed
def bottom_rows(model: PixelCNN, n: int, rows: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    s = model.image_size
    known = torch.ones(s, s, dtype=torch.bool, device=device)
    known[s - rows :] = False
    return torch.zeros(n, model.n_channels, s, s, dtype=torch.long, device=device), known


def median_of(repeats: int, fn, device) -> tuple[float, object]:
    runs = [timed(fn, device) for _ in range(repeats)]
    return statistics.median(sec for _, sec in runs), runs[0][0]


def speed(device: torch.device, tiny: bool, sizes: list[int], full_rows: int, repeats: int) -> list[dict]:
    batch, hidden, layers = (4, 8, 2) if tiny else (30, 32, 4)
    cases = []
    for size in sizes:
        torch.manual_seed(0)
        common = {"image_size": size, "n_channels": 3, "bits": 8, "head": "logistic", "hidden": hidden}
        full = PixelCNN(layers=layers, **common).to(device).eval()
        ms = {
            v: MultiscalePixelCNN(
                variant=v,
                base_size=4,
                base_layers=layers,
                resnet_blocks=layers // 2,
                shallow_layers=2,
                patch=4,
                **common,
            )
            .to(device)
            .eval()
            for v in "ab"
        }
        gen = devices.generator(device, 0)
        entry = {"case": f"{size}x{size}-rgb", "batch": batch, "repeats": repeats}
        for v, model in ms.items():
            model.sample(2, generator=gen)  # warm-up (cuDNN / oneDNN set-up)
            sec, smp = median_of(repeats, partial(model.sample, batch, generator=gen), device)
            entry[f"type{v.upper()}_ms"] = round(sec * 1e3, 2)
            entry[f"type{v.upper()}_evaluations"] = smp.evaluations
        full.sample(batch, None, 1.0, gen, *bottom_rows(full, batch, 1, device))  # warm-up
        steps = size * size  # one step per pixel with the mixture head
        end_to_end = full_rows >= size
        check = size == min(sizes)  # the smallest size: end to end and extrapolated, to check the extrapolation
        if end_to_end or check:
            sec, smp = median_of(repeats, partial(full.sample, batch, generator=gen), device)
            assert smp.evaluations == steps
            cached_s = measured = sec
        if not end_to_end or check:  # t(R) = a + c R (a: every row's vertical stack; c: a row of pixel steps)
            r2 = min(full_rows, size // 2)
            r1 = max(1, r2 // 4)
            t1, t2 = (
                median_of(
                    repeats, partial(full.sample, batch, None, 1.0, gen, *bottom_rows(full, batch, r, device)), device
                )[0]
                for r in (r1, r2)
            )
            extrapolated = t1 + (t2 - t1) / (r2 - r1) * (size - r1)
            rows = {"rows": [r1, r2], "rows_ms": [round(t1 * 1e3, 2), round(t2 * 1e3, 2)]}
            if end_to_end or check:
                entry["cached_extrapolation_check"] = {
                    "measured_end_to_end_ms": round(measured * 1e3, 2),
                    "extrapolated_ms": round(extrapolated * 1e3, 2),
                    **rows,
                }
            if not (end_to_end or check):
                cached_s = extrapolated
                entry["cached_extrapolated_from_rows"] = rows
        entry["cached_ms"] = round(cached_s * 1e3, 2)
        entry["cached_evaluations"] = steps
        entry["cached_measured_end_to_end"] = end_to_end or check
        entry["speedup_typeA_vs_cached"] = round(cached_s / (entry["typeA_ms"] / 1e3), 1)
        entry["speedup_typeB_vs_cached"] = round(cached_s / (entry["typeB_ms"] / 1e3), 1)
        say(json.dumps(entry))
        cases.append(entry)
    return cases


# ------------------------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: end to end on a CPU in about a minute")
    parser.add_argument("--out", type=Path, required=True, help="folder for pixelcnn-<device type>.json")
    parser.add_argument("--data-dir", type=Path, default=None, help="a folder holding mnist/ (default: synthetic)")
    parser.add_argument(
        "--full-rows",
        type=int,
        default=None,
        help="sizes S above R time the O(N) sampler on the bottom min(R, S/2) rows and a quarter "
        "of that, and extrapolate; the smallest size is timed both ways (default 32; tiny: 4)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="batches timed per sampler (median)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="image sizes (default 32 64 128; tiny: 8 16)"
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=("train", "precision", "speed"))
    args = parser.parse_args()
    device = devices.resolve(args.device)
    if device.type == "cuda":
        devices.set_tf32(True)  # as the CLI runs by default; the likelihood check also runs with it off
    sizes = args.sizes or ([8, 16] if args.tiny else [32, 64, 128])
    full_rows = args.full_rows or (4 if args.tiny else 32)
    if args.tiny:
        torch.set_num_threads(1)
    t_start = time.perf_counter()
    record = {
        "benchmark": "gpu-pixelcnn",
        "device": str(device),
        "tiny": args.tiny,
        "command": " ".join(["python3 benchmarks/gpu/pixelcnn.py"] + sys.argv[1:]),
        "errors": {},
    }
    scratch = Path(tempfile.mkdtemp(prefix="gpu-pixelcnn-"))
    try:
        data_dir = args.data_dir
        if "train" not in args.skip or "precision" not in args.skip:
            if data_dir is None:
                t0 = time.perf_counter()
                data_dir = synthetic_mnist(scratch / "data")
                record["data"] = f"synthetic MNIST (IDX, seed 0), written in {time.perf_counter() - t0:.1f} s"
            else:
                record["data"] = str(data_dir)
        sections = {
            "train": lambda: [
                train_eval_sample(m, data_dir, scratch / "runs", device, args.tiny)
                for m in ("multiscale-a", "multiscale-b")
            ],
            "precision": lambda: precision_check(data_dir, scratch / "runs", device, args.tiny),
            "speed": lambda: speed(device, args.tiny, sizes, full_rows, args.repeats),
        }
        for name, run in sections.items():
            if name in args.skip:
                continue
            t0 = time.perf_counter()
            try:
                record[name] = run()
            except Exception as e:  # noqa: BLE001 - a failing section must not lose the others' numbers; exits 1
                traceback.print_exc()
                record["errors"][name] = f"{type(e).__name__}: {e}"
            record[f"{name}_wall_s"] = round(time.perf_counter() - t0, 1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record["wall_s"] = round(time.perf_counter() - t_start, 1)
    if device.type == "cuda":
        record["max_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    path = write_record(args.out / f"pixelcnn-{device.type}.json", record, device=device)
    say(f"wrote {path} in {record['wall_s']} s; errors: {record['errors'] or 'none'}")
    return 1 if record["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
