"""``icml17 pixelcnn train | eval | sample`` and the demo section. Thin: parse, validate, call the library.

    icml17 pixelcnn train --preset mnist --model multiscale-b --run-dir runs/pixelcnn/mnist-typeB --time-budget 300
    icml17 pixelcnn eval --run-dir runs/pixelcnn/mnist-typeB --record results/pixelcnn/mnist-typeB.json
    icml17 pixelcnn sample --run-dir runs/pixelcnn/mnist-typeB --n 16
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from icml17.core.config import ConfigError, parse_set_args

DEFAULT_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _cli_command() -> str | None:
    """``'icml17 pixelcnn ...'`` when running under the icml17 CLI (entry point, ``python -m icml17``,
    ``python -m icml17.cli`` or the equivalent ``python -m icml17.pixelcnn``); None when called from Python."""
    name = Path(sys.argv[0]).name
    if name in ("icml17", "cli.py") or (name == "__main__.py" and Path(sys.argv[0]).parent.name == "icml17"):
        return " ".join(["icml17", *sys.argv[1:]])
    if name == "__main__.py" and Path(sys.argv[0]).parent.name == "pixelcnn":
        return " ".join(["icml17", "pixelcnn", *sys.argv[1:]])
    return None


def _data_dir(args: argparse.Namespace) -> Path | None:
    if args.data_dir:
        return Path(args.data_dir)
    return DEFAULT_DATA if DEFAULT_DATA.is_dir() else None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="mnist", help="mnist, binarized-mnist, cifar10-subset, mnist-class, "
                                                     "mnist-caption, mnist-spatial, mnist-superres, digits-demo")
    p.add_argument("--model", choices=["full", "multiscale-a", "multiscale-b"], default=None,
                   help="model type (default: the preset's, multiscale-b)")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--data-dir", default=None, help="dataset root (default: ../shared/data if present, "
                                                    "else $ICML17_DATA)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds (resumable)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def register(subparsers) -> None:
    parser = subparsers.add_parser("pixelcnn", help="parallel multiscale PixelCNN (Reed et al. 2017)")
    sub = parser.add_subparsers(dest="pixelcnn_command", required=True)
    p = sub.add_parser("train", help="train a preset (resumable)")
    _common(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("eval", help="exact test log-likelihood of a trained run")
    _common(p)
    p.add_argument("--n-eval", type=int, default=0, help="score only the first N test images (0: all)")
    p.add_argument("--record", default=None, help="write a results record (JSON) here")
    p.add_argument("--name", default=None, help="the record's experiment name (default: from the config, "
                   "e.g. mnist-typeB); name variants such as a smaller width apart from the preset's run")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("sample", help="sample PNG grids (incl. coarse-to-fine and super-resolution)")
    _common(p)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--out", default=None, help="output folder (default: RUN_DIR/samples)")
    p.set_defaults(func=cmd_sample)


def _config(args: argparse.Namespace):
    from icml17.pixelcnn.presets import make_config

    overrides = parse_set_args(args.set)
    for key in ("iterations", "seed"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    return make_config(args.preset, args.model, overrides)


def _threads(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def cmd_train(args: argparse.Namespace) -> int:
    from icml17.pixelcnn.train import train

    _threads(args)
    cfg = _config(args)
    result = train(cfg, args.run_dir, _data_dir(args), resume=not args.no_resume, time_budget_s=args.time_budget,
                   argv=_cli_command().split(" ") if _cli_command() else None)
    print(json.dumps({"run_dir": str(args.run_dir), "steps": result.steps_done, "of": cfg.iterations,
                      "wall_time_s": round(result.wall_time_s, 1), **result.last_eval}))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from icml17.core.results import write_record
    from icml17.pixelcnn.train import evaluate, load_split, load_trained, test_images, timed

    _threads(args)
    cfg, model, ckpt = load_trained(args.run_dir)
    images, labels = load_split(cfg, _data_dir(args), "test")
    if args.n_eval:
        images, labels = images[:args.n_eval], labels[:args.n_eval]
    ev, seconds = timed(evaluate, model, cfg, test_images(cfg, images), labels)
    binarized = cfg.dataset == "binarized-mnist"
    experiment = args.name or cfg.experiment
    print(json.dumps({"experiment": experiment, "steps": ckpt["step"], "eval_s": round(seconds, 1), **ev}))
    if args.record:
        train_cmd = " ".join(ckpt["argv"]) or f"icml17 pixelcnn train --run-dir {args.run_dir}"
        write_record(args.record, {
            "system": "pixelcnn", "experiment": experiment,
            "metric": "nats" if binarized else "bits_per_dim",
            "value": round(ev["nats"] if binarized else ev["bits_per_dim"], 4),
            "paper": None, "higher_is_better": False, "n_eval": len(images),
            "iterations": int(ckpt["step"]), "wall_time_s": round(float(ckpt.get("wall_time_s", 0.0)), 1),
            "seed": cfg.seed,
            "command": f"{train_cmd}; " + (_cli_command() or
                                           f"icml17 pixelcnn eval --run-dir {args.run_dir} --record {args.record}"),
            "bits_per_dim": round(ev["bits_per_dim"], 4), "nats_per_image": round(ev["nats"], 2),
            "bits_per_dim_by_factor": {k[4:]: round(v, 4) for k, v in ev.items() if k.startswith("bpd/")},
            "model": cfg.model, "hidden": cfg.hidden, "layers": cfg.layers, "batch_size": cfg.batch_size,
            "parameters": sum(p.numel() for p in model.parameters()),
            "binarization": "dynamic (train), fixed seed 0 (test)" if binarized else None,
            "eval_wall_time_s": round(seconds, 1),
        })
    return 0


def to_uint8(x: torch.Tensor, levels: int) -> np.ndarray:
    return (x.long() * 255 // (levels - 1)).to(torch.uint8).numpy()


def upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    f = size // x.shape[-1]
    return x.repeat_interleave(f, -1).repeat_interleave(f, -2)


def save_sample_figures(model, samples, out: Path, prefix: str = "") -> list[Path]:
    """``samples.png`` (grid) and ``coarse_to_fine.png`` (rows: levels, upsampled; columns: samples)."""
    from icml17.core.report import image_grid

    out.mkdir(parents=True, exist_ok=True)
    paths = [image_grid(to_uint8(samples.images, model.levels), out / f"{prefix}samples.png")]
    n = min(8, len(samples.images))
    rows = [upsample(lv[:n], model.image_size) for lv in samples.levels]
    paths.append(image_grid(to_uint8(torch.cat(rows), model.levels), out / f"{prefix}coarse_to_fine.png", nrow=n))
    return paths


def cmd_sample(args: argparse.Namespace) -> int:
    from icml17.core.report import image_grid
    from icml17.pixelcnn.train import load_split, load_trained, make_context, test_images, timed, _raw

    _threads(args)
    cfg, model, _ = load_trained(args.run_dir)
    out = Path(args.out) if args.out else Path(args.run_dir) / "samples"
    gen = torch.Generator().manual_seed(cfg.seed if args.seed is None else args.seed)
    images, _ = load_split(cfg, _data_dir(args), "test")
    x = test_images(cfg, images[:args.n])
    y = torch.arange(args.n) % 10  # conditioned models: digits 0..9 in turn
    context = make_context(cfg, y, _raw(x, cfg))  # spatial models: the test images' occupancy maps
    samples, seconds = timed(model.sample, args.n, context, args.temperature, gen)
    paths = save_sample_figures(model, samples, out)
    info = {"samples": [str(p) for p in paths], "evaluations": samples.evaluations, "seconds": round(seconds, 2)}
    if cfg.model != "full":  # super-resolution from the test images' base grid (7 -> 28, 8 -> 32)
        low = x[:, :, ::model.stride(0), ::model.stride(0)]
        sr, sr_s = timed(model.super_resolve, low, context, args.temperature, gen)
        grid = torch.cat([upsample(low, model.image_size), sr.images, x])
        info["superres"] = str(image_grid(to_uint8(grid, model.levels), out / "superres.png", nrow=args.n))
        info["superres_evaluations"] = sr.evaluations
    print(json.dumps(info))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m icml17.pixelcnn train ...`` == ``icml17 pixelcnn train ...`` (without the other systems)."""
    parser = argparse.ArgumentParser(prog="icml17")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["pixelcnn", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"icml17 pixelcnn: error: {e}", file=sys.stderr)
        return 2


DEMO_OVERRIDES: dict | None = None  # tests shrink the demo through this


def demo_section(report, run_dir: Path, data_dir: Path | None, quick: bool) -> None:
    """Short multiscale training on MNIST (digits fallback without data), samples, and a sampling-speed check."""
    from icml17.data import DatasetError
    from icml17.pixelcnn.presets import build_model, make_config
    from icml17.pixelcnn.sampling import time_full_sampler_band
    from icml17.pixelcnn.train import load_split, train, timed

    run_dir = Path(run_dir)
    data_dir = data_dir or (DEFAULT_DATA if DEFAULT_DATA.is_dir() else None)
    budget = 30.0 if quick else 90.0
    overrides = DEMO_OVERRIDES or {"iterations": 150 if quick else 600, "eval_every": 50 if quick else 200,
                                   "eval_images": 128, "hidden": 24, "batch_size": 16}
    try:
        cfg = make_config("mnist", "multiscale-a", overrides)
        load_split(cfg, data_dir, "test")
    except DatasetError:
        cfg = make_config("digits-demo", "multiscale-a", overrides)
    result = train(cfg, run_dir, data_dir, resume=True, time_budget_s=budget, progress=False)
    from icml17.pixelcnn.train import load_trained

    _, model, _ = load_trained(run_dir)
    gen = torch.Generator().manual_seed(0)
    n = 8 if quick else 16
    samples, ms_s = timed(model.sample, n, None, 1.0, gen)
    paths = save_sample_figures(model, samples, run_dir / "samples")
    full = build_model(make_config(cfg.dataset if cfg.dataset != "digits" else "digits-demo", "full",
                                   {"hidden": cfg.hidden})).eval()
    band_s, band_evals = time_full_sampler_band(full, n, 2, gen)  # 2 rows measured, the rest extrapolated
    full_s = band_s / band_evals * full.image_size ** 2
    text = (f"Type-A multiscale PixelCNN trained {result.steps_done} steps ({result.wall_time_s:.0f} s, dataset "
            f"{cfg.dataset}); test-subset bits/dim {result.last_eval.get('bits_per_dim', float('nan')):.3f}.\n"
            f"Sampling a batch of {n} 28x28 images: multiscale {ms_s:.2f} s with {samples.evaluations} network "
            f"evaluations; the full O(N) PixelCNN of the same width and depth needs {full.image_size ** 2} "
            f"evaluations, {full_s:.1f} s (extrapolated from {band_evals} measured evaluations), "
            f"{full_s / ms_s:.0f}x slower. The coarse-to-fine figure shows each sample at 7x7, 14x14 and 28x28 "
            f"(paper Fig. 1).")
    report.add("Parallel multiscale PixelCNN", text,
               images=[(paths[0], "multiscale PixelCNN samples"), (paths[1], "coarse-to-fine: 7x7, 14x14, 28x28")])
