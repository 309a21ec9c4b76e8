"""``icml17 sharpness measure|reproduce`` and the sharpness part of ``icml17 demo``: parse, validate, call.

``measure`` loads a sharpness training checkpoint (``runs/sharpness/<run>/checkpoints/last.pt``, whose config
names its preset) or builds a preset (optionally training it a few SGD steps first), and prints the requested
measures as JSON. ``reproduce`` runs the reproductions of :mod:`icml17.sharpness.reproductions`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from icml17.core.checkpoint import CheckpointError, load_checkpoint
from icml17.core.config import ConfigError
from icml17.core.report import Report
from icml17.data import DatasetError, load_digits_fallback, load_mnist
from icml17.sharpness import plots
from icml17.sharpness.data import batches, mnist_subset
from icml17.sharpness.measures import MEASURES, MeasureOptions, check_names, measure
from icml17.sharpness.models import PRESETS, build_model, count_parameters
from icml17.sharpness.reproductions import WHICH, reproduce
from icml17.sharpness.train import TrainConfig, accuracy, train_classifier
from icml17.sharpness.transforms import AlphaScaling, relu_chain

CE = nn.functional.cross_entropy
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sharpness", help="flatness measures under reparametrization (Dinh et al. 2017)")
    sub = p.add_subparsers(dest="sharpness_command", required=True, metavar="{measure,reproduce}")

    m = sub.add_parser("measure", help="Hessian / sharpness measures of a checkpoint or a preset on a dataset")
    src = m.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="a sharpness training checkpoint (last.pt)")
    src.add_argument("--model", choices=sorted(PRESETS), help="a preset network (random init unless --train-steps)")
    m.add_argument("--dataset", choices=["mnist"], default="mnist")
    m.add_argument("--split", choices=["train", "test"], default="train")
    m.add_argument("--n", type=int, default=1000, help="examples (a seeded subset)")
    m.add_argument("--batch-size", type=int, default=1000, help="products are accumulated over batches this size")
    m.add_argument("--measures", default="loss,lambda_max,trace,adaptive_lambda_max",
                   help=f"comma-separated, from {','.join(MEASURES)}")
    m.add_argument("--data-dir", type=Path, default=None)
    m.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    m.add_argument("--mode", choices=["eval", "train"], default="eval")
    m.add_argument("--train-steps", type=int, default=0, help="SGD steps (batch 64) on the subset before measuring")
    m.add_argument("--alpha", type=float, default=None, help="measure T_alpha = (a, 1, ..., 1/a) of the model")
    m.add_argument("--probes", type=int, default=64)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    m.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    m.set_defaults(func=_measure)

    r = sub.add_parser("reproduce", help="the paper's reparametrization experiments on MNIST subsets")
    r.add_argument("--which", choices=[*WHICH, "all"], default="all")
    r.add_argument("--out", type=Path, default=Path("results/sharpness"))
    r.add_argument("--data-dir", type=Path, default=None)
    r.add_argument("--run-dir", type=Path, default=Path("runs/sharpness"), help="training cache")
    r.add_argument("--quick", action="store_true", help="tiny sizes (for tests; not results)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these small nets)")
    r.set_defaults(func=_reproduce)


@contextmanager
def _threads(n: int | None):
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _command() -> str:
    return "icml17 " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def load_model(checkpoint: Path) -> nn.Module:
    """The network of a sharpness training checkpoint (its config names the preset)."""
    ckpt = load_checkpoint(checkpoint)
    config = json.loads(ckpt.get("config") or "{}")
    preset = config.get("model")
    if preset not in PRESETS or "model" not in ckpt.get("state", {}):
        raise CheckpointError(f"{checkpoint} is not a sharpness training checkpoint (its config names no preset "
                              f"of {sorted(PRESETS)}); train one with `icml17 sharpness reproduce` or pass --model")
    model = build_model(preset)
    model.load_state_dict(ckpt["state"]["model"])
    return model


def _measure(args: argparse.Namespace) -> int:
    try:
        names = check_names([s.strip() for s in args.measures.split(",") if s.strip()])
        with _threads(args.threads):
            x, y = mnist_subset(args.data_dir, args.split, args.n, args.seed)
            if args.checkpoint is not None:
                model, source = load_model(args.checkpoint), str(args.checkpoint)
            else:
                model, source = build_model(args.model, args.seed), f"preset {args.model}"
                if args.train_steps:
                    train_classifier(model, x, y, TrainConfig(args.model, args.train_steps, 64, seed=args.seed,
                                                              n_train=args.n),
                                     Path("runs/sharpness") / f"measure-{args.model}-{args.train_steps}-s{args.seed}")
            if args.alpha is not None:
                model = AlphaScaling.pair(args.alpha, len(relu_chain(model)))(model).model
            out = measure(model, CE, batches(x, y, args.batch_size), names, dtype=DTYPES[args.dtype],
                          mode=args.mode, options=MeasureOptions(probes=args.probes, seed=args.seed))
    except ValueError as e:  # bad measure names, frozen models, empty data, refused transforms
        raise ConfigError(str(e)) from e
    out = {"source": source, "dataset": f"mnist-{args.split}[{args.n}]", "alpha": args.alpha,
           "accuracy": accuracy(model, x, y), **out}
    text = json.dumps(out, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    with _threads(args.threads):
        figures = reproduce(args.which, args.out, args.data_dir, args.run_dir, quick=args.quick,
                            command=_command(), seed=args.seed)
    for f in figures:
        print(f"wrote {f} and {f.with_suffix('.json')}")
    return 0


def _demo_data(data_dir: Path | None, n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        load_mnist(data_dir, "train")
        x, y = mnist_subset(data_dir, "train", n, 0)
        return x, y, f"MNIST (seeded subset of {n})"
    except DatasetError:
        images, labels = load_digits_fallback()
        idx = np.random.default_rng(0).choice(len(labels), size=min(n, len(labels)), replace=False)
        x = torch.from_numpy(images[idx]).float().div_(255.0).unsqueeze(1)
        return x, torch.from_numpy(labels[idx]), "scikit-learn digits (MNIST not found: stand-in only)"


def demo_section(report: Report, run_dir: Path, data_dir: Path | None, quick: bool) -> None:
    """Train a 784-32-10 ReLU MLP briefly, then show lambda_max under alpha-scaling with identical outputs."""
    with _threads(1):  # tiny products: thread hand-offs cost more than they save
        n, steps = (300, 100) if quick else (1000, 400)
        x, y, source = _demo_data(data_dir, n)
        model = build_model("mlp-784-32-10", 0)
        train_classifier(model, x, y, TrainConfig("mlp-784-32-10", steps, 64, n_train=n), run_dir / "train")
        model.eval()
        data = (x[:min(n, 500)], y[:min(n, 500)])
        alphas = [0.1, 0.3, 1.0, 3.0, 10.0] if not quick else [0.1, 1.0, 10.0]
        rows = []
        for a in alphas:
            rep = AlphaScaling.pair(a, 2)(model)
            m = measure(rep.model, CE, data, ["lambda_max", "adaptive_lambda_max"],
                        options=MeasureOptions(lanczos_tol=1e-3))
            with torch.no_grad():
                diff = float((rep.model(data[0]) - model(data[0])).abs().max())
            rows.append((a, m["lambda_max"], m["adaptive_lambda_max"], diff))
        fig = plots.alpha_sweep([r[0] for r in rows], {"lambda_max": [r[1] for r in rows],
                                                       "adaptive lambda_max": [r[2] for r in rows]},
                                run_dir / "alpha-scaling.png", "T_alpha on a 784-32-10 ReLU MLP: same outputs, "
                                "different lambda_max", ylabel="top Hessian eigenvalue")
    lines = [f"Data: {source}; network 784-32-10 ReLU MLP ({count_parameters(model)} parameters), {steps} SGD "
             f"steps, train accuracy {accuracy(model, x, y):.3f}. Curvature on {len(data[1])} examples, eval mode.",
             "", "alpha | lambda_max | adaptive lambda_max | max |output difference|"]
    lines += [f"{a:g} | {lam:.4g} | {ad:.4g} | {d:.1e}" for a, lam, ad, d in rows]
    lines += ["", "T_alpha multiplies the first layer by alpha and the second by 1/alpha: the function is the same, "
              "lambda_max is not (Dinh et al. 2017); the adaptive Hessian diag|theta| H diag|theta| does not move."]
    report.add("Sharpness: alpha-scaling changes lambda_max, not the function", "\n".join(lines),
               images=[(fig, "lambda_max vs alpha (log-log); identical outputs for every alpha")])
