"""The video PixelCNN on a device: the O(T) model trains briefly there on generated moving digits (the
library's generator over synthetic MNIST digits, nothing to download), its exact likelihood is computed there and
from the checkpoint on the CPU (the same number within float32 rounding; with TF32 on, within TF32's), it samples
there (seeded by a generator on the device: the same frames twice), and bf16 and fp16 training run a few steps.
The CLI's ``video train`` and ``video sample`` run with ``--device``. One record: ``OUT/video-<device type>.json``.

The Table 4 speed comparison is ``benchmarks/pixelcnn-video-sampling.py --device cuda`` (not repeated here).

    PYTHONPATH=src python3 benchmarks/gpu/video.py --device cuda --out results/bench      # about 1 min on an H100
    PYTHONPATH=src python3 benchmarks/gpu/video.py --device cpu --tiny --out /tmp/video    # the same, tiny, on a CPU
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import check  # benchmarks/gpu/check.py, beside this script

from icml17.cli import main as icml17  # noqa: E402
from icml17.core import device as devices  # noqa: E402
from icml17.data import write_synthetic_datasets  # noqa: E402
from icml17.pixelcnn.video import sample_video  # noqa: E402
from icml17.pixelcnn.video.data import load_video_split  # noqa: E402
from icml17.pixelcnn.video.evaluate import likelihood, load_run  # noqa: E402
from icml17.pixelcnn.video.presets import make_config  # noqa: E402
from icml17.pixelcnn.video.train import train  # noqa: E402

# (preset, overrides, iterations of the fp32 run, iterations of each mixed-precision run, videos scored, sampled)
FULL = ("cpu", {"batch_size": 16, "train_sequences": 2000, "eval_sequences": 64, "eval_periodic": 64}, 300, 30, 64, 4)
TINY = (
    "tiny",
    {"frame_size": 8, "frames": 4, "batch_size": 4, "train_sequences": 64, "eval_sequences": 8, "eval_periodic": 8},
    10,
    3,
    8,
    2,
)
STRICT_TOL = 1e-4  # nats per sub-pixel: device (TF32 off) vs CPU, float32 rounding only
TF32_TOL = 1e-2  # device with TF32 convolutions (about 10 mantissa bits) vs CPU


def cli(*argv) -> tuple[int, str]:
    """``icml17 ARGV`` in this process: exit code and the last line it printed (its JSON summary)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = icml17([str(a) for a in argv])
    lines = out.getvalue().strip().splitlines()
    print("\n".join(lines), flush=True)
    return code, lines[-1] if lines else ""


def overrides(d: dict) -> list[str]:
    return [f"{k}={v}" for k, v in d.items()]


def run(args: argparse.Namespace) -> tuple[dict, torch.device]:
    dev = devices.resolve(args.device)
    preset, extra, iters, mixed_iters, n_eval, n_samples = TINY if args.tiny else FULL
    extra = {**extra, "eval_every": iters, "checkpoint_every": iters}
    cfg = make_config(preset, "o_t", {**extra, "iterations": iters})
    rec: dict = {
        "benchmark": "device-check-video",
        "model": "o_t",
        "preset": preset,
        "tiny": args.tiny,
        "frame_size": cfg.frame_size,
        "frames": cfg.frames,
        "batch_size": cfg.batch_size,
        "data": "moving digits from the library's generator over synthetic MNIST (no download)",
        "command": "python3 benchmarks/gpu/video.py " + " ".join(sys.argv[1:]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ICML17_CACHE"] = f"{tmp}/cache"  # the generated videos' cache: not the user's
        data = write_synthetic_datasets(f"{tmp}/data", seed=0, only=["mnist"])
        run_dir = Path(tmp) / "o_t"

        # 1. train on the device through the CLI (--device, TF32 as the CLI sets it)
        code, last, seconds = check.timed_train(
            dev,
            cli,
            "pixelcnn",
            "video",
            "train",
            "--preset",
            preset,
            "--model",
            "o_t",
            "--run-dir",
            run_dir,
            "--data-dir",
            data,
            "--device",
            args.device,
            "--iterations",
            iters,
            "--no-progress",
            "--set",
            *overrides(extra),
        )
        log = check.metrics_log(run_dir)
        losses = [r["nats_per_subpixel"] for r in log if r["split"] == "train"]
        rec["train"] = {
            "exit_code": code,
            "iterations": iters,
            "seconds": round(seconds, 2),
            "steps_per_s": round(iters / seconds, 2),
            "first_loss": round(losses[0], 4),
            "last_loss": round(losses[-1], 4),
            "learned": losses[-1] < losses[0],
            "tf32": devices.tf32_enabled() if dev.type == "cuda" else None,
            "summary": last,
        }
        if dev.type == "cuda":
            rec["train"]["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 3)

        # 2. exact likelihood: on the device (TF32 as trained, and strict float32), then from the checkpoint on the CPU
        val = load_video_split(cfg, data, "val", n_eval)
        on_dev = load_run(run_dir, device=dev)
        t0 = time.perf_counter()
        nll_dev = likelihood(on_dev.model, val)
        devices.synchronize(dev)
        dev_s = time.perf_counter() - t0
        tf32 = devices.tf32_enabled()
        devices.set_tf32(False)
        nll_strict = likelihood(on_dev.model, val)
        devices.set_tf32(tf32)
        t0 = time.perf_counter()
        nll_cpu = likelihood(load_run(run_dir).model, val)
        cpu_s = time.perf_counter() - t0
        rec["likelihood"] = {
            "videos": len(val),
            "unit": "nats per sub-pixel of the predicted frames",
            "device": round(nll_dev, 6),
            "device_strict_fp32": round(nll_strict, 6),
            "cpu_from_checkpoint": round(nll_cpu, 6),
            "difference_strict": abs(nll_strict - nll_cpu),
            "difference_as_trained": abs(nll_dev - nll_cpu),
            "tolerance_strict": STRICT_TOL,
            "tolerance_tf32": TF32_TOL,
            "agree": abs(nll_strict - nll_cpu) < STRICT_TOL and abs(nll_dev - nll_cpu) < TF32_TOL,
            "device_seconds": round(dev_s, 3),
            "cpu_seconds": round(cpu_s, 3),
        }

        # 3. samples on the device, noise from a generator there: the same seed draws the same frames
        v = val.take(slice(0, n_samples))
        n_ctx, n_new = cfg.context_frames, cfg.frames - cfg.context_frames
        draw = lambda: sample_video(
            on_dev.model, v.frames[:, :n_ctx], v.actions, v.states, n_new, generator=devices.generator(dev, 0)
        )
        first, again = draw(), draw()
        frames = first.frames
        rec["samples"] = {
            "videos": n_samples,
            "new_frames": n_new,
            "on_device": frames.device.type == dev.type,
            "reproducible": bool(torch.equal(first.frames, again.frames)),
            "in_range": bool(((frames >= 0) & (frames < on_dev.model.levels)).all()),
            "context_kept": bool(torch.equal(frames[:, :n_ctx].cpu(), v.frames[:, :n_ctx])),
            "evaluations_per_frame": first.evaluations[0],
            "ms_per_frame": round(1e3 * sum(again.seconds) / len(again.seconds), 3),
        }
        code, _ = cli(
            "pixelcnn",
            "video",
            "sample",
            "--run-dir",
            run_dir,
            "--data-dir",
            data,
            "--device",
            args.device,
            "--samples",
            2,
            "--out",
            Path(tmp) / "samples",
        )
        rec["samples"]["cli_exit_code"] = code

        # 4. mixed precision: a few steps each, finite losses (fp16 needs a GPU)
        rec["precision"] = {}
        for precision in ("bf16", "fp16"):
            try:
                devices.check_precision(precision, dev)
            except devices.DeviceError as e:
                rec["precision"][precision] = {"skipped": str(e)}
                continue
            short = make_config(
                preset,
                "o_t",
                {**extra, "iterations": mixed_iters, "eval_every": mixed_iters, "checkpoint_every": mixed_iters},
            )
            t0 = time.perf_counter()
            result = train(short, Path(tmp) / precision, data, progress=False, device=dev, precision=precision)
            devices.synchronize(dev)
            loss = result.last_metrics["nats_per_subpixel"]
            rec["precision"][precision] = {
                "iterations": result.steps_done,
                "last_loss": round(loss, 4),
                "eval_nats_per_subpixel": round(result.last_eval["nats_per_subpixel"], 4),
                "finite": math.isfinite(loss),
                "seconds": round(time.perf_counter() - t0, 2),
            }
    ok = (
        rec["train"]["exit_code"] == 0
        and rec["likelihood"]["agree"]
        and rec["samples"]["reproducible"]
        and rec["samples"]["in_range"]
        and rec["samples"]["on_device"]
        and rec["samples"]["context_kept"]
        and rec["samples"]["cli_exit_code"] == 0
        and all(p.get("finite", True) for p in rec["precision"].values())
    )
    rec["ok"] = bool(ok)
    return rec, dev


def main() -> int:
    p = check.parser(__doc__, "video")
    args = p.parse_args()
    return check.finish(p, args, "video", run)


if __name__ == "__main__":
    sys.exit(main())
