"""``icml17 maml train | eval | baseline | plots | export``: parse, validate, call the library."""

from __future__ import annotations

import argparse
from pathlib import Path

from icml17 import cli_args
from icml17.core import runs
from icml17.core.config import ConfigError

SYSTEM = "maml"


def _preset_names() -> list[str]:
    from icml17.maml.presets import PRESETS

    return sorted(PRESETS)


def _config_class() -> type:
    from icml17.maml.presets import MAMLConfig

    return MAMLConfig


def _run_dir(args: argparse.Namespace, preset: str | None) -> Path:
    if args.run_dir is not None:
        return runs.check_run_dir(args.run_dir)
    if preset is None:
        raise ConfigError("name the run: --run-dir DIR, or --preset NAME for runs/maml/<preset>")
    return runs.default_run_dir(SYSTEM, preset)


def cmd_train(args: argparse.Namespace) -> int:
    from icml17.core.config import override_config
    from icml17.maml.engine import check_training_precision
    from icml17.maml.presets import make_config
    from icml17.maml.train import train

    overrides = cli_args.training_overrides(args, forbidden={"preset": "choose the preset with --preset"})
    cfg = override_config(make_config(args.preset), overrides)
    run_dir = _run_dir(args, cfg.preset)
    device = cli_args.apply_compute(args, training=True)
    check_training_precision(args.precision, device, cfg.first_order, how="--set first_order=true")
    result = train(
        cfg,
        run_dir,
        args.data_dir,
        resume=not args.no_resume,
        time_budget_s=args.time_budget,
        progress=not args.no_progress,
        argv=["icml17", *args.argv],
        tensorboard=args.tensorboard,
        device=device,
        precision=args.precision,
    )
    cli_args.say(
        f"{cfg.preset}: {result.steps_done}/{cfg.iterations} iterations in {run_dir} "
        f"({result.wall_time_s:.0f}s); last eval: {result.last_eval}"
    )
    return 130 if result.interrupted else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from icml17.maml.evaluate import evaluate, load_episodes, load_run, load_shipped, save_result, write_records

    if args.weights and args.run_dir:
        raise ConfigError("give either --weights NAME or --run-dir DIR, not both")
    device = cli_args.apply_compute(args)
    episodes = load_episodes(args.episodes) if args.episodes else None
    if args.record and episodes is not None:
        raise ConfigError("--record writes the protocol's records; it is not available with --episodes")
    run_dir = None if args.weights else _run_dir(args, args.preset)
    trained = (
        load_shipped(args.weights, device=device)
        if args.weights
        else runs.or_shipped_weights(lambda: load_run(run_dir, device=device))
    )
    if args.chunk_size is not None:
        trained.engine.chunk_size = args.chunk_size
    if args.run_dir is not None and args.preset is not None:
        runs.refuse_other_run(
            args.run_dir,
            trained.cfg.preset,
            args.preset,
            f"drop --preset (the run's checkpoint names it) or pass --preset {trained.cfg.preset}",
        )
    result = evaluate(
        trained,
        args.data_dir,
        tasks=args.tasks,
        queries=args.queries,
        steps=args.steps,
        split=args.split,
        episodes=episodes,
    )
    if run_dir is not None and episodes is None:
        save_result(run_dir, result)
    per = "per task" if trained.cfg.task == "sinusoid" else "per class"  # regression has no classes
    for k, (m, c) in enumerate(zip(result["mean"], result["ci95"])):
        print(
            f"{result['preset']} {result['split']} {result['metric']} after {k} step{'' if k == 1 else 's'}: "
            f"{m:.4f} +- {c:.4f} ({result['tasks']} tasks, {result['queries']} queries {per})"
        )
    if args.record:
        command = cli_args.record_command(args, trained.train_command)
        for path in write_records(result, trained.cfg, args.record, command, device=device):
            print(f"wrote {path}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from icml17.maml.baselines import run_baseline

    device = cli_args.apply_compute(args, training=True)
    run_dir = args.run_dir or runs.default_run_dir(SYSTEM, f"baselines/{args.kind}")
    paths = run_baseline(
        args.kind,
        args.shots,
        runs.check_run_dir(run_dir),
        iterations=args.iterations,
        seed=args.seed,
        record_dir=args.record,
        command=cli_args.command_line(args),
        progress=not args.no_progress,
        resume=not args.no_resume,
        device=device,
    )
    for p in paths:
        print(f"wrote {p}")
    return 0


def cmd_plots(args: argparse.Namespace) -> int:
    from icml17.maml.plots import plot_run

    run_dir = _run_dir(args, args.preset)
    for p in plot_run(run_dir, baselines_dir=args.baselines, out_dir=args.out):
        print(f"wrote {p}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from icml17.maml.presets import MAMLConfig
    from icml17.weights import export_weights

    path = export_weights(
        _run_dir(args, args.preset),
        args.name,
        SYSTEM,
        state_key="engine",
        record=args.reproduces,
        description=args.description,
        config_class=MAMLConfig,
        replace=args.replace,
    )
    print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``maml {train,eval,baseline,plots,export}`` to the top-level parser."""
    maml = subparsers.add_parser("maml", help="Model-Agnostic Meta-Learning (Finn et al. 2017)")
    sub = maml.add_subparsers(dest="maml_command", required=True, metavar="COMMAND")
    presets = _preset_names()

    t = sub.add_parser("train", help="meta-train a preset (resumes from the run directory's checkpoint)")
    t.add_argument("--preset", required=True, choices=presets)
    cli_args.add_run_dir(t, SYSTEM)
    cli_args.add_data_dir(t)
    cli_args.add_overrides(t, _config_class())
    cli_args.add_compute(t)
    cli_args.add_precision(t)
    cli_args.add_training(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "eval",
        help="meta-test a trained run or shipped weights (600 tasks, 95%% interval)",
        description="Scores a run directory's checkpoint (--run-dir, or --preset for "
        "runs/maml/<preset>) or shipped weights (--weights) on fresh test tasks, or on given "
        "episodes (--episodes FILE.npz holding support_x (T,S,*x), support_y (T,S) int class "
        "indices in [0, ways), query_x (T,Q,*x), query_y (T,Q); images (C,H,W) floats in [0,1], "
        "Omniglot ink = 1).",
    )
    src = e.add_mutually_exclusive_group()
    src.add_argument("--preset", choices=presets, help="evaluate runs/maml/<preset>")
    src.add_argument("--weights", metavar="NAME", help="evaluate shipped weights (see icml17.weights)")
    cli_args.add_run_dir(e, SYSTEM)
    cli_args.add_data_dir(e)
    e.add_argument("--episodes", type=Path, metavar="FILE.npz", help="score on these given episodes")
    e.add_argument("--tasks", type=cli_args.positive_int, default=600)
    e.add_argument("--queries", type=cli_args.positive_int, help="query examples per class (default: the preset's, K)")
    e.add_argument("--steps", type=cli_args.non_negative_int, help="inner steps at test (default: the preset's, 10)")
    e.add_argument("--split", default="test", choices=("val", "test"))
    e.add_argument(
        "--chunk-size",
        type=cli_args.non_negative_int,
        metavar="N",
        help="tasks adapted at once (default: the run's chunk_size; 0 = 50 at once); lower it when the "
        "device runs out of memory, the scores do not change",
    )
    cli_args.add_record(e, "a directory, e.g. results/maml: one <experiment>.json per reported step count")
    cli_args.add_compute(e)
    e.set_defaults(func=cmd_eval)

    b = sub.add_parser("baseline", help="sinusoid baselines: pretrained + fine-tuned, or oracle")
    b.add_argument("--kind", required=True, choices=("pretrained", "oracle"))
    b.add_argument("--shots", type=cli_args.positive_int, nargs="+", default=[5, 10, 20], help="K values to evaluate")
    cli_args.add_run_dir(b, SYSTEM, what="baselines/<kind>")
    b.add_argument("--iterations", type=cli_args.positive_int, default=70000)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument(
        "--no-resume",
        action="store_true",
        help=f"start over; the old checkpoint and log are moved to RUN_DIR/{runs.PREVIOUS_DIR}/",
    )
    cli_args.add_record(b, "a directory, e.g. results/maml")
    cli_args.add_compute(b)
    cli_args.add_progress(b)
    b.set_defaults(func=cmd_baseline)

    p = sub.add_parser("plots", help="figures of a run (Fig. 2/3 for sinusoids, learning curves otherwise)")
    p.add_argument("--preset", choices=presets, help="plot runs/maml/<preset>")
    cli_args.add_run_dir(p, SYSTEM)
    p.add_argument("--baselines", type=Path, help="directory holding the pretrained/ and oracle/ baseline runs")
    p.add_argument("--out", type=cli_args.output_dir, help="output directory (default: the run directory)")
    p.set_defaults(func=cmd_plots)

    x = sub.add_parser("export", help="write a run's weights into the package's shipped weights (maintainers)")
    x.add_argument("--preset", choices=presets, help="export runs/maml/<preset>")
    cli_args.add_run_dir(x, SYSTEM)
    x.add_argument("--name", required=True, help="the weights' name for --weights")
    x.add_argument("--reproduces", required=True, metavar="RECORD", help="the results record these weights reproduce")
    x.add_argument("--replace", action="store_true", help="overwrite weights already shipped under --name")
    x.add_argument("--description", default="", help="one line for the manifest")
    x.set_defaults(func=cmd_export)
    return maml
