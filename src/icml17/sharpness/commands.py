"""``icml17 sharpness measure | eval | reproduce | export``: parse, validate, call the library.

``measure`` computes any measure of a trained run, shipped weights or a preset (optionally trained a few SGD
steps first); ``eval`` measures a trained minimum with the reproductions' protocol (so shipped weights
reproduce their record); ``reproduce`` runs the paper's reparametrization experiments. Each computes on
``--device`` (the model and the data are moved there once); curvature is always float32 or float64.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from icml17 import cli_args
from icml17.core import runs
from icml17.core.config import ConfigError

SYSTEM = "sharpness"
DTYPES = ("float32", "float64")


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "float64": torch.float64}[name]


def _trained(args: argparse.Namespace, device):
    from icml17.sharpness.evaluate import load_run, load_shipped

    if args.weights:
        return load_shipped(args.weights, device)
    return load_run(args.run_dir, device)


def _check_dtype(args: argparse.Namespace, device) -> None:
    from icml17.core.device import DeviceError

    if args.dtype == "float64" and device.type == "mps":
        raise DeviceError(
            "--dtype float64 is not available on MPS (Apple GPUs have no float64); use --dtype float32 or --device cpu"
        )


def cmd_measure(args: argparse.Namespace) -> int:
    from icml17.core.device import explain_out_of_memory, to_device
    from icml17.sharpness.data import batches, mnist_subset
    from icml17.sharpness.evaluate import CE, check_data, load_factory, load_npz, mse_loss
    from icml17.sharpness.presets import build_sharpness_model
    from icml17.sharpness.registry import (
        FlatnessOptions,
        check_measure_names,
        compute_measures,
    )
    from icml17.sharpness.train import TrainConfig, accuracy, train_classifier
    from icml17.sharpness.transforms import AlphaScaling, relu_chain

    names = check_measure_names([s.strip() for s in args.measures.split(",") if s.strip()])
    if args.train_steps and args.model is None:
        raise ConfigError(
            "--train-steps trains a --model preset from its initialisation; runs, shipped weights "
            "and factories come trained: drop --train-steps"
        )
    if args.state is not None and args.factory is None:
        raise ConfigError(
            "--state holds the weights of a --factory network; the other sources carry their own: drop --state"
        )
    device = cli_args.apply_compute(args)
    _check_dtype(args, device)
    if args.data is not None:
        x, y = load_npz(args.data)
        dataset = f"{args.data} [{len(y)}]"
    else:
        try:
            x, y = mnist_subset(args.data_dir, args.split, args.examples, args.seed)
        except ConfigError as e:  # the library's message names no flag: say which one
            raise ConfigError(f"--examples {args.examples}: {e}") from e
        dataset = f"mnist-{args.split}[{args.examples}]"
    loss_fn = CE if args.loss == "cross_entropy" else mse_loss
    x, y = to_device((x, y), device)  # once; the batches below are views of it
    if args.factory is not None:
        model, source = load_factory(args.factory, args.state).to(device), args.factory
    elif args.model is not None:
        model, source = build_sharpness_model(args.model, args.seed).to(device), f"preset {args.model}"
    else:
        trained = _trained(args, device)
        model, source = trained.model, args.weights or str(args.run_dir)
    y = check_data(model, x, y, args.loss)  # one-line errors for data the model or the loss cannot take
    if args.train_steps:  # a --model preset (checked above)
        run_dir = args.run_dir or runs.default_run_dir(SYSTEM, f"measure-{args.model}-{args.train_steps}-s{args.seed}")
        cfg = TrainConfig(args.model, args.train_steps, 64, seed=args.seed, n_train=args.examples)
        train_classifier(model, x, y, cfg, run_dir, device=device)
    if args.alpha is not None:
        model = AlphaScaling.pair(args.alpha, len(relu_chain(model, "alpha-scaling (--alpha)")))(model).model
    from icml17.core import distributed

    ctx = distributed.context()  # under torchrun each rank measures its share of the batches (all-reduced)
    data = batches(x, y, args.batch_size)[ctx.rank :: ctx.world_size]
    try:
        with explain_out_of_memory(
            "--batch-size (products are summed over batches of this size) or --examples", device
        ):
            out = compute_measures(
                model,
                loss_fn,
                data,
                names,
                dtype=_dtype(args.dtype),
                mode=args.mode,
                options=FlatnessOptions(probes=args.probes, seed=args.seed),
                sharded=ctx.enabled,
            )
    except ValueError as e:  # the model or data cannot be measured as asked (frozen, empty, dropout in train mode)
        raise ConfigError(str(e)) from e
    if not ctx.is_main:
        return 0
    out = {
        "source": source,
        "dataset": dataset,
        "alpha": args.alpha,
        "device": str(device),
        "accuracy": accuracy(model, x, y) if args.loss == "cross_entropy" else None,
        **out,
    }
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from icml17.sharpness.evaluate import evaluate

    device = cli_args.apply_compute(args)
    _check_dtype(args, device)
    trained = _trained(args, device)
    out = evaluate(trained, args.data_dir, dtype=_dtype(args.dtype))
    print(
        json.dumps(
            {
                "weights": trained.weights,
                "run": None if trained.weights else str(args.run_dir),
                "device": str(device),
                "model": trained.cfg.model,
                "train_batch_size": trained.cfg.batch_size,
                "iterations": trained.iterations,
                **out,
            },
            indent=2,
            default=str,
        )
    )
    if trained.record:
        print(f"(shipped weights: compare with {trained.record})")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from icml17.core.device import explain_out_of_memory
    from icml17.sharpness.reproductions import reproduce

    if args.time_subset and args.which != "correlation":
        raise ConfigError("--time-subset times the correlation grid: use it with --which correlation")
    if args.families and args.which != "correlation":
        raise ConfigError("--families picks the correlation grid's families: use it with --which correlation")
    device = cli_args.apply_compute(args)
    # the committed records under results/ are replaced only when --record names them: by default a rerun (or a
    # --quick run's tiny sizes, for tests) writes beside its training cache
    record = args.record or args.run_dir / ("quick-records" if args.quick else "records")
    with explain_out_of_memory(
        "the sizes: the reproductions' are fixed, --quick runs them small (or use --device cpu)", device
    ):
        figures = reproduce(
            args.which,
            record,
            args.data_dir,
            args.run_dir,
            quick=args.quick,
            command=cli_args.command_line(args),
            seed=args.seed,
            device=device,
            time_subset=args.time_subset,
            families=args.families,
        )
    for f in figures:
        print(f"wrote {f} and {f.with_suffix('.json')}")
    return 0


def cmd_invariance(args: argparse.Namespace) -> int:
    from icml17.sharpness.invariance_study import NETWORKS, run_invariance_study
    from icml17.sharpness.registry import REGISTRY, TRANSFORMS

    subset = {k: getattr(args, k) for k in ("measures", "transforms", "networks") if getattr(args, k) is not None}
    if args.all == bool(subset):
        raise ConfigError(
            "give --all (every measure, transform and network: the committed table) or a subset with "
            "--measures / --transforms / --networks, not both"
        )

    def split(key: str, default) -> list[str]:
        return [s.strip() for s in subset[key].split(",") if s.strip()] if key in subset else list(default)

    device = cli_args.apply_compute(args)
    record = args.record or args.run_dir / ("quick-records" if args.quick else "records")
    fig = run_invariance_study(
        record,
        args.data_dir,
        args.run_dir,
        names=split("measures", REGISTRY),
        transforms=split("transforms", TRANSFORMS),
        networks=split("networks", NETWORKS),
        quick=args.quick,
        command=cli_args.command_line(args),
        seed=args.seed,
        device=device,
    )
    print(f"wrote {fig} and {fig.with_suffix('.json')}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from icml17.sharpness.evaluate import TRAINED_BY
    from icml17.sharpness.train import TrainConfig
    from icml17.weights import export_weights

    path = export_weights(
        args.run_dir,
        args.name,
        SYSTEM,
        state_key="model",
        record=args.reproduces,
        description=args.description,
        config_class=TrainConfig,
        record_key=args.record_key,
        replace=args.replace,
        how_to_train=TRAINED_BY,
    )
    print(f"wrote {path}")
    return 0


def _source(p: argparse.ArgumentParser, *, preset: bool) -> None:
    from icml17.sharpness.presets import PRESETS

    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-dir", type=Path, help="a sharpness training run (its checkpoints/last.pt)")
    src.add_argument("--weights", metavar="NAME", help="shipped weights: small-batch or large-batch")
    if preset:
        src.add_argument("--model", choices=sorted(PRESETS), help="a preset network (random init unless --train-steps)")
        src.add_argument(
            "--factory",
            metavar="MODULE:FUNCTION",
            help="your own model: an importable function returning an nn.Module (cwd is importable)",
        )


def _study_args(p: argparse.ArgumentParser, committed: str) -> None:
    """--record, --data-dir, --run-dir, --quick and --seed of the study commands (reproduce, invariance)."""
    cli_args.add_record(
        p,
        "a directory; default RUN_DIR/records, with --quick RUN_DIR/quick-records; the "
        f"committed {committed}: --record results/sharpness",
    )
    cli_args.add_data_dir(p)
    p.add_argument(
        "--run-dir",
        type=cli_args.output_dir,
        default=runs.RUNS_ROOT / SYSTEM,
        help="training cache (default runs/sharpness)",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes (for tests; not results)")
    p.add_argument("--seed", type=int, default=0)


def register(subparsers: argparse._SubParsersAction) -> None:
    from icml17.sharpness.measures import MEASURES
    from icml17.sharpness.registry import REGISTRY
    from icml17.sharpness.reproductions import WHICH

    p = subparsers.add_parser("sharpness", help="flatness measures under reparametrization (Dinh et al. 2017)")
    sub = p.add_subparsers(dest="sharpness_command", required=True, metavar="COMMAND")

    m = sub.add_parser("measure", help="Hessian / sharpness measures of a run, shipped weights or a preset")
    _source(m, preset=True)
    m.add_argument("--state", type=Path, default=None, help="weights for --factory (safetensors or a state dict)")
    m.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="FILE.npz",
        help="your own data: arrays x (N, ...) and y (N,) instead of an MNIST subset",
    )
    m.add_argument("--loss", choices=["cross_entropy", "mse"], default="cross_entropy")
    m.add_argument("--split", choices=["train", "test"], default="train")
    m.add_argument("--examples", type=cli_args.positive_int, default=1000, help="MNIST examples (a seeded subset)")
    m.add_argument(
        "--batch-size",
        type=cli_args.positive_int,
        default=1000,
        help="products are accumulated over batches this size (under torchrun the batches are shared "
        "out over the processes)",
    )
    m.add_argument(
        "--measures",
        default="loss,lambda_max,trace,adaptive_lambda_max",
        help=f"comma-separated, from {','.join(dict.fromkeys([*REGISTRY, *MEASURES]))}, or 'all' (every "
        "measure of the registry; those undefined for the model are listed under not_applicable)",
    )
    cli_args.add_data_dir(m)
    m.add_argument("--dtype", choices=DTYPES, default="float32")
    m.add_argument("--mode", choices=["eval", "train"], default="eval")
    m.add_argument(
        "--train-steps",
        type=cli_args.non_negative_int,
        default=0,
        help="SGD steps (batch 64) on the subset before measuring (with --model)",
    )
    m.add_argument(
        "--alpha",
        type=cli_args.positive_float,
        default=None,
        help="measure T_alpha = (a, 1, ..., 1/a) of the model (a > 0)",
    )
    m.add_argument("--probes", type=cli_args.positive_int, default=64)
    m.add_argument("--seed", type=int, default=0)
    cli_args.add_compute(m)
    m.add_argument("--out", type=cli_args.output_file, default=None, help="also write the JSON here")
    m.set_defaults(func=cmd_measure)

    e = sub.add_parser("eval", help="measure a trained minimum with the reproductions' protocol")
    _source(e, preset=False)
    cli_args.add_data_dir(e)
    e.add_argument("--dtype", choices=DTYPES, default="float32")
    cli_args.add_compute(e)
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("reproduce", help="the paper's reparametrization experiments on MNIST subsets")
    r.add_argument("--which", choices=[*WHICH, "all"], default="all")
    _study_args(r, "records")
    r.add_argument(
        "--time-subset",
        action="store_true",
        help="with --which correlation: time the grid's corners (4 networks) and write "
        "correlation-timing.json with the full grid's estimated wall time, instead of the grid",
    )
    r.add_argument(
        "--families",
        nargs="+",
        choices=["mnist-mlp", "cifar-cnn"],
        default=None,
        help="with --which correlation: train only these families now (default both); each network is saved "
        "as it finishes and a rerun skips those done; the record covers every network on disk and says how many",
    )
    cli_args.add_compute(r)
    r.set_defaults(func=cmd_reproduce)

    v = sub.add_parser(
        "invariance",
        help="every flatness measure through every function-preserving transform",
        description="Train small MNIST minima (an MLP, a CNN, an MLP with batch norm), sweep every "
        "transform over four orders of magnitude of its parameter, and write one table "
        "of verdicts (unchanged / bounded / arbitrary) per measure and transform, with "
        "each measure's cost as a ratio to lambda_max. About an hour on one CPU thread "
        "with --all.",
    )
    v.add_argument("--all", action="store_true", help="every measure, transform and network (the committed table)")
    v.add_argument("--measures", default=None, help=f"comma-separated, from {','.join(REGISTRY)}")
    v.add_argument(
        "--transforms", default=None, help="comma-separated, from alpha,per-neuron,bn-scale,input-scale,radial"
    )
    v.add_argument("--networks", default=None, help="comma-separated, from mlp,cnn,bn-mlp")
    _study_args(v, "record")
    cli_args.add_compute(v)
    v.set_defaults(func=cmd_invariance)

    x = sub.add_parser("export", help="write a training run's weights into the package's shipped weights")
    x.add_argument("--run-dir", type=Path, required=True)
    x.add_argument("--name", required=True)
    x.add_argument("--reproduces", required=True, metavar="RECORD")
    x.add_argument("--replace", action="store_true", help="overwrite weights already shipped under --name")
    x.add_argument("--description", default="")
    x.add_argument("--record-key", default=None, help="the value inside the record, e.g. theta.small-batch.lambda_max")
    x.set_defaults(func=cmd_export)
