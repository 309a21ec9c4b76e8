"""``icml17 maml-rl train | eval | plots``: parse, validate, call the library.

icml17 maml-rl train --preset point-nav                          # runs/maml-rl/point-nav
icml17 maml-rl train --preset point-nav --mode pretrained        # runs/maml-rl/point-nav-pretrained
icml17 maml-rl eval --preset point-nav --record results/maml-rl  # results/maml-rl/point-nav.json
icml17 maml-rl eval --preset point-nav --method random --record results/maml-rl
icml17 maml-rl plots --preset point-nav
"""

from __future__ import annotations

import argparse
from pathlib import Path

from icml17 import cli_args
from icml17.core import runs
from icml17.core.config import ConfigError

SYSTEM = "maml-rl"
MODES = ("maml", "pretrained", "oracle")
METHODS = ("maml", "pretrained", "random", "oracle")


def _preset_names() -> list[str]:
    from icml17.maml.rl.presets import PRESETS

    return list(PRESETS)


def _experiment(preset: str, mode: str) -> str:
    return preset if mode == "maml" else f"{preset}-{mode}"


def cmd_train(args: argparse.Namespace) -> int:
    from icml17.core.config import override_config
    from icml17.maml.rl.presets import make_config
    from icml17.maml.rl.train import train

    overrides = cli_args.training_overrides(
        args, forbidden={"preset": "choose the preset with --preset", "mode": "choose the mode with --mode"}
    )
    cfg = override_config(make_config(args.preset, args.mode), overrides)
    run_dir = runs.check_run_dir(args.run_dir or runs.default_run_dir(SYSTEM, cfg.experiment))
    device = cli_args.apply_compute(args, training=True)
    result = train(
        cfg,
        run_dir,
        resume=not args.no_resume,
        time_budget_s=args.time_budget,
        progress=not args.no_progress,
        argv=["icml17", *args.argv],
        tensorboard=args.tensorboard,
        device=device,
    )
    cli_args.say(
        f"{cfg.experiment}: {result.steps_done}/{cfg.iterations} meta-iterations in {run_dir} "
        f"({result.wall_time_s:.0f}s); last eval: {result.last_eval}"
    )
    return 130 if result.interrupted else 0


def _step_sizes(text: str) -> tuple[float, ...]:
    """argparse type: comma-separated step sizes, each a finite number > 0."""
    return tuple(cli_args.positive_float(x) for x in text.split(","))


def cmd_eval(args: argparse.Namespace) -> int:
    from icml17.maml.rl.evaluate import (
        evaluate,
        load_run,
        random_init,
        save_result,
        write_result_record,
    )

    device = cli_args.apply_compute(args)
    run_dir = None
    if args.method == "random":
        if args.run_dir is not None:
            raise ConfigError("--method random evaluates a fresh initialisation; it takes no --run-dir")
        trained = random_init(args.preset, args.seed, device=device)
    else:
        run_dir = runs.check_run_dir(
            args.run_dir or runs.default_run_dir(SYSTEM, _experiment(args.preset, args.method))
        )
        trained = load_run(run_dir, device=device)
        _check_run_matches(trained.cfg, args, run_dir)
    result = evaluate(
        trained,
        args.method,
        tasks=args.tasks,
        steps=args.steps,
        lr=args.lr,
        batch_steps=args.batch_steps,
        later_steps=args.later_steps,
        grid=args.grid,
        tune_tasks=args.tune_tasks,
        per_horizon=args.per_horizon,
    )
    if run_dir is not None:
        save_result(run_dir, result)
    sizes = result.get("step_sizes_per_horizon")
    for k, (m, c) in enumerate(zip(result["returns"], result["returns_ci95"])):
        size = (
            "before any step"
            if k == 0
            else f"every step at {sizes[k - 1]:g}"
            if sizes
            else f"step size {result['lr']:g}"
        )
        print(
            f"{args.preset} {args.method}: return after {k} step{'' if k == 1 else 's'} {m:.2f} +- {c:.2f} "
            f"({result['tasks']} tasks, {size})"
        )
    if args.record:
        command = cli_args.record_command(args, trained.train_command)
        print(f"wrote {write_result_record(result, trained, args.record, command, name=args.name)}")
    return 0


def _check_run_matches(cfg, args: argparse.Namespace, run_dir: Path) -> None:
    """The run must be of --preset, trained with the mode --method names (maml, pretrained and oracle are both)."""
    runs.refuse_other_run(
        run_dir, cfg.preset, args.preset, f"pass --preset {cfg.preset}, or the --run-dir of a {args.preset} run"
    )
    runs.refuse_other_run(
        run_dir,
        f"--mode {cfg.mode}",
        f"--mode {args.method}",
        f"pass --method {cfg.mode}, or the --run-dir of a run trained with --mode {args.method}",
    )


def cmd_plots(args: argparse.Namespace) -> int:
    from icml17.maml.rl.plots import plot_returns, plot_trajectories

    out = Path(args.out)
    family = args.family or args.preset
    paths = [plot_returns(args.records, args.preset, out / f"{family}-returns.png", family)]
    run_dir = args.run_dir or runs.default_run_dir(SYSTEM, args.preset)
    if args.preset == "point-nav" and (Path(run_dir) / "checkpoints").exists():
        paths.append(plot_trajectories(run_dir, out / "point-nav-trajectories.png"))
    for p in paths:
        print(f"wrote {p}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``maml-rl {train,eval,plots}`` to the top-level parser."""
    top = subparsers.add_parser("maml-rl", help="MAML for reinforcement learning (Finn et al. 2017, section 5.3)")
    sub = top.add_subparsers(dest="maml_rl_command", required=True, metavar="COMMAND")
    presets = _preset_names()
    from icml17.maml.rl.presets import LR_GRID, TUNE_TASKS, MAMLRLConfig

    t = sub.add_parser("train", help="meta-train a preset (resumes from the run directory's checkpoint)")
    t.add_argument("--preset", required=True, choices=presets)
    t.add_argument(
        "--mode",
        default="maml",
        choices=MODES,
        help="maml (default); pretrained: one policy for all tasks; oracle: the task in the observation",
    )
    cli_args.add_run_dir(t, SYSTEM, what="<preset>[-<mode>]")
    cli_args.add_overrides(t, MAMLRLConfig)
    cli_args.add_compute(t)
    cli_args.add_training(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="returns after 0-3 policy-gradient steps on 40 test tasks (Figure 5)")
    e.add_argument("--preset", required=True, choices=presets)
    e.add_argument(
        "--method",
        default="maml",
        choices=METHODS,
        help="maml, pretrained or oracle evaluate runs/maml-rl/<preset>[-<method>]; random needs no run",
    )
    cli_args.add_run_dir(e, SYSTEM, what="<preset>[-<method>]")
    e.add_argument("--tasks", type=cli_args.positive_int, default=40)
    e.add_argument("--steps", type=cli_args.non_negative_int, default=3)
    e.add_argument(
        "--lr",
        type=cli_args.positive_float,
        default=None,
        help="step size at test (default: the inner one for maml/oracle, tuned for pretrained/random)",
    )
    e.add_argument(
        "--batch-steps",
        type=cli_args.non_negative_int,
        default=None,
        help="batch of each step in time steps of whole paths: copies restart finished paths until the "
        "finished ones hold this many steps, then finish the paths in flight (default: the reference's, "
        "4000 for point-nav; 0: the config's eval_rollouts full rollouts)",
    )
    e.add_argument(
        "--later-steps",
        choices=("half", "tuned"),
        default="half",
        help="size of steps 2-3: half the first (the reference's rule, default) or tuned on the "
        "validation tasks from the step-size grid (every method alike)",
    )
    e.add_argument(
        "--per-horizon",
        action="store_true",
        help="for each number of steps k, one size for all k steps, the grid's best after k steps on "
        "the validation tasks, for every method alike (MAML's first step included; the default grid "
        "adds the preset's inner step size); instead of --lr/--later-steps",
    )
    e.add_argument(
        "--grid",
        type=_step_sizes,
        default=None,
        help=f"step sizes tried on the validation tasks, comma-separated (default "
        f"{','.join(map(str, LR_GRID))}); only where something is tuned",
    )
    e.add_argument(
        "--tune-tasks",
        type=cli_args.positive_int,
        default=None,
        help=f"validation tasks on which step sizes are tuned (default {TUNE_TASKS}); only where something is tuned",
    )
    e.add_argument("--seed", type=int, default=0, help="initialisation seed of --method random")
    cli_args.add_record(e, "a directory, e.g. results/maml-rl: writes <preset>[-<method>].json")
    e.add_argument(
        "--name",
        default=None,
        help="the record's experiment name (default <preset>[-<method>]); name "
        "variants such as a longer run apart from the preset's",
    )
    cli_args.add_compute(e)
    e.set_defaults(func=cmd_eval)

    p = sub.add_parser("plots", help="return versus gradient steps (Figure 5); 2D-navigation paths (Figure 4)")
    p.add_argument("--preset", required=True, choices=presets)
    p.add_argument("--records", type=Path, default=Path("results/maml-rl"), help="where the eval records are")
    p.add_argument(
        "--family",
        default=None,
        help="the records' name (default: the preset's), e.g. point-nav-per-horizon; its "
        "<family>-seeds.json summary, when there is one, gives the mean over seeds",
    )
    cli_args.add_run_dir(p, SYSTEM, what="<preset> (for the point-nav trajectories)")
    p.add_argument("--out", type=cli_args.output_dir, default=Path("runs/maml-rl/plots"))
    p.set_defaults(func=cmd_plots)
    return top
