"""``icml17 maml ...``: parse, validate, call the library (no training logic here)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import torch

from icml17.core.config import ConfigError, override_config, parse_set_args
from icml17.maml.presets import PRESETS, get_preset


def demo_section(report, run_dir: Path, data_dir: Path | None, quick: bool) -> None:
    """The MAML section of ``icml17 demo`` (see :mod:`icml17.maml.demo`)."""
    from icml17.maml.demo import demo_section as section

    section(report, run_dir, data_dir, quick)

DEFAULT_RUNS = Path("runs") / "maml"


def _command_line(args: argparse.Namespace, words: list[str]) -> str:
    """The canonical command line of a parsed invocation (rebuilt from ``args``, so it is right whether the
    command came from the shell or from ``main([...])``)."""
    out = ["icml17", *words]
    for key, value in sorted(vars(args).items()):
        if key in ("func", "command", "maml_command") or value in (None, False, [], 0) and key != "seed":
            continue
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, list):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in out)


def cmd_train(args: argparse.Namespace) -> int:
    from icml17.maml.train import train

    cfg = get_preset(args.preset)
    overrides = parse_set_args(args.set)
    if args.iterations is not None:
        overrides["iterations"] = args.iterations
    if args.seed is not None:
        overrides["seed"] = args.seed
    cfg = override_config(cfg, overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir) if args.run_dir else DEFAULT_RUNS / cfg.preset
    result = train(cfg, run_dir, args.data_dir, resume=not args.no_resume, time_budget_s=args.time_budget,
                   progress=not args.no_progress, argv=shlex.split(_command_line(args, ["maml", "train"])))
    print(f"{cfg.preset}: {result.steps_done}/{cfg.iterations} iterations in {run_dir} "
          f"({result.wall_time_s:.0f}s); last eval: {result.last_eval}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from icml17.maml.evaluate import evaluate_run, write_records
    from icml17.core.config import config_from_dict
    from icml17.maml.presets import MAMLConfig
    import json

    if args.threads:
        torch.set_num_threads(args.threads)
    result = evaluate_run(args.run_dir, args.data_dir, tasks=args.tasks, queries=args.queries, steps=args.steps,
                          split=args.split)
    for k, (m, c) in enumerate(zip(result["mean"], result["ci95"])):
        print(f"{result['preset']} {result['split']} {result['metric']} after {k} steps: {m:.4f} +- {c:.4f} "
              f"({result['tasks']} tasks, {result['queries']} queries)")
    if args.record:
        cfg = config_from_dict(MAMLConfig, json.loads((Path(args.run_dir) / "config.json").read_text())["config"])
        train_cmd = " ".join(shlex.quote(a) for a in result["train_argv"])
        for path in write_records(result, cfg, args.record, f"{train_cmd}; {_command_line(args, ['maml', 'eval'])}"):
            print(f"wrote {path}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from icml17.maml.baselines import run_baseline

    if args.threads:
        torch.set_num_threads(args.threads)
    paths = run_baseline(args.kind, args.shots, Path(args.run_dir), iterations=args.iterations, seed=args.seed,
                         record_dir=args.record, command=_command_line(args, ["maml", "baseline"]), progress=not args.no_progress)
    for p in paths:
        print(f"wrote {p}")
    return 0


def cmd_plots(args: argparse.Namespace) -> int:
    from icml17.maml.plots import plot_run

    for p in plot_run(Path(args.run_dir), baselines_dir=Path(args.baselines) if args.baselines else None,
                      out_dir=Path(args.out) if args.out else None):
        print(f"wrote {p}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``maml {train,eval,baseline,plots}`` to the top-level parser."""
    maml = subparsers.add_parser("maml", help="Model-Agnostic Meta-Learning (Finn et al. 2017)")
    sub = maml.add_subparsers(dest="maml_command", required=True)

    t = sub.add_parser("train", help="meta-train a preset (resumes from the run directory's checkpoint)")
    t.add_argument("--preset", required=True, choices=sorted(PRESETS))
    t.add_argument("--run-dir", help=f"default: {DEFAULT_RUNS}/<preset>")
    t.add_argument("--data-dir", help="dataset root (default $ICML17_DATA or ~/.cache/icml17/data)")
    t.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config fields, e.g. first_order=true (repeatable)")
    t.add_argument("--iterations", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    t.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop (after a checkpoint) when spent")
    t.add_argument("--threads", type=int, default=int(os.environ.get("ICML17_THREADS", 0)))
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="meta-test a trained run (600 tasks, 95%% interval)")
    e.add_argument("--run-dir", required=True)
    e.add_argument("--data-dir")
    e.add_argument("--tasks", type=int, default=600)
    e.add_argument("--queries", type=int, help="query examples per class (default: the preset's, K)")
    e.add_argument("--steps", type=int, help="inner steps at test (default: the preset's, 10)")
    e.add_argument("--split", default="test", choices=("val", "test"))
    e.add_argument("--record", metavar="DIR", help="write results records into DIR (e.g. results/maml)")
    e.add_argument("--threads", type=int, default=int(os.environ.get("ICML17_THREADS", 0)))
    e.set_defaults(func=cmd_eval)

    b = sub.add_parser("baseline", help="sinusoid baselines: pretrained + fine-tuned, or oracle")
    b.add_argument("--kind", required=True, choices=("pretrained", "oracle"))
    b.add_argument("--shots", type=int, nargs="+", default=[5, 10, 20], help="K values to evaluate")
    b.add_argument("--run-dir", required=True)
    b.add_argument("--iterations", type=int, default=70000)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--record", metavar="DIR")
    b.add_argument("--threads", type=int, default=int(os.environ.get("ICML17_THREADS", 0)))
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=cmd_baseline)

    p = sub.add_parser("plots", help="figures of a run (Fig. 2/3 for sinusoids, learning curves otherwise)")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--baselines", help="directory holding the pretrained/ and oracle/ baseline runs")
    p.add_argument("--out", help="output directory (default: the run directory)")
    p.set_defaults(func=cmd_plots)
    return maml


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m icml17.maml``), the same parser the ``icml17`` CLI mounts."""
    parser = argparse.ArgumentParser(prog="icml17")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
