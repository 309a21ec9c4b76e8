"""``icml17 pixelcnn train | eval | sample | export``: parse, validate, call the library.

icml17 pixelcnn train --preset mnist --model multiscale-b --time-budget 300      # runs/pixelcnn/mnist-typeB
icml17 pixelcnn eval --preset mnist --model multiscale-b --record results/pixelcnn
icml17 pixelcnn sample --weights binarized-mnist-typeA --n 16
icml17 pixelcnn video train --preset cpu --model o_t                               # runs/pixelcnn/video-o_t
icml17 pixelcnn video eval --preset cpu --model o_t --record results/pixelcnn
icml17 pixelcnn video sample --preset cpu --model o_t
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from icml17 import cli_args
from icml17.core import runs
from icml17.core.config import ConfigError

SYSTEM = "pixelcnn"
MODELS = ("full", "multiscale-a", "multiscale-b")


def _config(args: argparse.Namespace, make_config=None):
    """The config of --preset/--model with --set, --iterations and --seed applied (image models by default;
    the video commands pass their own ``make_config``)."""
    if make_config is None:
        from icml17.pixelcnn.presets import make_config

    overrides = cli_args.training_overrides(args, forbidden={"model": "choose the model with --model"})
    return make_config(args.preset, args.model, overrides)


def _run_dir(args: argparse.Namespace) -> Path:
    """--run-dir, else runs/pixelcnn/<experiment> of --preset/--model (e.g. runs/pixelcnn/mnist-typeB)."""
    if args.run_dir is not None:
        return runs.check_run_dir(args.run_dir)
    if args.preset is None:
        raise ConfigError("name the run: --run-dir DIR, or --preset NAME [--model M] for runs/pixelcnn/<experiment>")
    from icml17.pixelcnn.presets import make_config

    return runs.default_run_dir(SYSTEM, make_config(args.preset, args.model).experiment)


def _trained(args: argparse.Namespace):
    from icml17.pixelcnn.evaluate import load_run, load_shipped

    if args.weights and (args.run_dir or args.preset):
        raise ConfigError("give either --weights NAME or a run (--run-dir / --preset), not both")
    if args.weights:
        return load_shipped(args.weights)
    trained = runs.or_shipped_weights(lambda: load_run(_run_dir(args)))
    if args.run_dir is not None and args.preset is not None:  # both named: they must agree, never one ignored
        from icml17.pixelcnn.presets import make_config

        asked = make_config(args.preset, args.model or trained.cfg.model).experiment
        runs.refuse_other_run(
            args.run_dir,
            trained.cfg.experiment,
            asked,
            "drop --preset and --model (the run's checkpoint names them) or pass matching ones",
        )
    return trained


def _train(args: argparse.Namespace, cfg, train) -> int:
    """Train ``cfg`` with ``train`` (the image or the video loop) into --run-dir or the default run directory."""
    run_dir = args.run_dir if args.run_dir is not None else runs.default_run_dir(SYSTEM, cfg.experiment)
    runs.check_run_dir(run_dir)
    result = train(
        cfg,
        run_dir,
        args.data_dir,
        resume=not args.no_resume,
        time_budget_s=args.time_budget,
        progress=not args.no_progress,
        argv=["icml17", *args.argv],
        tensorboard=args.tensorboard,
    )
    cli_args.say(
        json.dumps(
            {
                "run_dir": str(run_dir),
                "steps": result.steps_done,
                "of": cfg.iterations,
                "wall_time_s": round(result.wall_time_s, 1),
                **result.last_eval,
            }
        )
    )
    return 130 if result.interrupted else 0


def cmd_train(args: argparse.Namespace) -> int:
    from functools import partial

    from icml17.pixelcnn.train import train

    cfg = _config(args)
    device = cli_args.apply_compute(args, training=True)
    return _train(args, cfg, partial(train, device=device, precision=args.precision))


def cmd_eval(args: argparse.Namespace) -> int:
    from icml17.pixelcnn.evaluate import evaluate_splits, write_result

    trained = _trained(args)
    device = cli_args.apply_compute(args)
    trained.model.to(device)
    splits = list(dict.fromkeys(args.splits))
    ev, by_split = evaluate_splits(trained, args.data_dir, args.n_eval, splits)
    print(
        json.dumps(
            {
                "experiment": args.name or trained.cfg.experiment,
                "steps": trained.iterations,
                **{k: round(v, 4) if isinstance(v, float) else v for k, v in ev.items()},
                **({"by_split": by_split} if splits != ["test"] else {}),
            }
        )
    )
    if args.record:
        command = cli_args.record_command(args, trained.train_command)
        path = write_result(trained, ev, args.record, command, args.name, by_split if splits != ["test"] else None)
        print(f"wrote {path}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from icml17.pixelcnn.plots import sample_and_plot

    trained = _trained(args)
    device = cli_args.apply_compute(args)
    trained.model.to(device)
    out = args.out or (Path("runs") / SYSTEM / "samples" / args.weights if args.weights else _run_dir(args) / "samples")
    print(
        json.dumps(
            sample_and_plot(trained, args.data_dir, out, n=args.samples, temperature=args.temperature, seed=args.seed)
        )
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from icml17.pixelcnn.presets import PixelCNNConfig
    from icml17.weights import export_weights

    path = export_weights(
        _run_dir(args),
        args.name,
        SYSTEM,
        state_key="model",
        record=args.reproduces,
        description=args.description,
        config_class=PixelCNNConfig,
        replace=args.replace,
    )
    print(f"wrote {path}")
    return 0


# ------------------------------------------------------------------------------------------------ video
def _video_config(args: argparse.Namespace):
    from icml17.pixelcnn.video.presets import make_config

    return _config(args, make_config)


def _video_run_dir(args: argparse.Namespace) -> Path:
    """--run-dir, else runs/pixelcnn/video-<model>[-<preset tag>]."""
    if args.run_dir is not None:
        return runs.check_run_dir(args.run_dir)
    if args.preset is None:
        raise ConfigError("name the run: --run-dir DIR, or --preset NAME --model M for runs/pixelcnn/video-<model>")
    from icml17.pixelcnn.video.presets import make_config

    return runs.default_run_dir(SYSTEM, make_config(args.preset, args.model).experiment)


def _video_trained(args: argparse.Namespace):
    """The run of --run-dir (or of --preset/--model); where both are named they must agree, never one ignored."""
    from icml17.pixelcnn.video.evaluate import load_run
    from icml17.pixelcnn.video.presets import make_config

    run_dir = _video_run_dir(args)
    trained = load_run(run_dir)
    if args.run_dir is not None and (args.preset is not None or args.model is not None):
        model = args.model or trained.cfg.model
        asked = make_config(args.preset, model).experiment if args.preset else f"video-{model}{trained.cfg.tag}"
        runs.refuse_other_run(
            run_dir,
            trained.cfg.experiment,
            asked,
            "drop --preset and --model (the run's checkpoint names them) or pass matching ones",
        )
    return run_dir, trained


def cmd_video_train(args: argparse.Namespace) -> int:
    from functools import partial

    from icml17.pixelcnn.video.train import train

    cfg = _video_config(args)
    device = cli_args.apply_compute(args, training=True)
    return _train(args, cfg, partial(train, device=device, precision=args.precision))


def cmd_video_eval(args: argparse.Namespace) -> int:
    from icml17.pixelcnn.video.evaluate import evaluate, write_result

    _, trained = _video_trained(args)
    device = cli_args.apply_compute(args)
    trained.model.to(device)
    ev = evaluate(trained, args.data_dir, args.n_eval, shuffle_actions=args.shuffle_actions)
    print(
        json.dumps(
            {
                "experiment": args.name or trained.cfg.experiment,
                "steps": trained.iterations,
                **{
                    k: round(v, 4) if isinstance(v, float) else v for k, v in ev.items() if not k.endswith("_by_factor")
                },
                "val_by_factor": ev["val_by_factor"],
            }
        )
    )
    if args.record:
        command = cli_args.record_command(args, trained.train_command)
        print(f"wrote {write_result(trained, ev, args.record, command, args.name)}")
    return 0


def cmd_video_sample(args: argparse.Namespace) -> int:
    from icml17.pixelcnn.video.data import load_video_split
    from icml17.pixelcnn.video.plots import sample_and_plot

    run_dir, trained = _video_trained(args)
    if args.sampler is not None and trained.cfg.model != "vpn":
        raise ConfigError(
            f"--sampler chooses how the O(TN) vpn model is sampled; {trained.cfg.model} samples "
            f"each frame in a fixed number of evaluations: drop --sampler"
        )
    device = cli_args.apply_compute(args)
    trained.model.to(device)
    videos = load_video_split(trained.cfg, args.data_dir, args.split, args.samples)
    if len(videos) < args.samples:
        raise ConfigError(
            f"--samples {args.samples} asks for more videos than the {args.split} split holds "
            f"({len(videos)}, the run's eval_sequences): pass --samples {len(videos)} or fewer"
        )
    out = args.out or run_dir / "samples"
    print(
        json.dumps(
            sample_and_plot(
                trained.model,
                videos,
                out,
                n=args.samples,
                seed=args.seed,
                temperature=args.temperature,
                sampler=args.sampler or "cached",
            )
        )
    )
    return 0


def _video_model_args(p: argparse.ArgumentParser, required_preset: bool) -> None:
    from icml17.pixelcnn.video.frames import FRAME_MODELS
    from icml17.pixelcnn.video.presets import PRESETS as VIDEO_PRESETS

    p.add_argument(
        "--preset",
        required=required_preset,
        default=None,
        choices=sorted(VIDEO_PRESETS),
        help="paper (64x64, GPU-sized), cpu (32x32, the records here), tiny (seconds)",
    )
    p.add_argument(
        "--model",
        choices=FRAME_MODELS,
        default=None,
        help="o_t, o_tlogn (ours), convlstm (O(T) baseline), vpn (O(TN) baseline); default o_t",
    )
    cli_args.add_run_dir(p, SYSTEM, what="video-<model>[-64|-tiny]")
    cli_args.add_data_dir(p)
    cli_args.add_compute(p)


def _register_video(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("video", help="action-conditional video: O(T), O(T log N), ConvLSTM and VPN models")
    vsub = parser.add_subparsers(dest="video_command", required=True, metavar="COMMAND")
    t = vsub.add_parser("train", help="train a video model (resumes from the run directory's checkpoint)")
    _video_model_args(t, required_preset=True)
    from icml17.pixelcnn.video.presets import VideoConfig

    cli_args.add_overrides(t, VideoConfig)
    cli_args.add_training(t)
    cli_args.add_precision(t)
    t.set_defaults(func=cmd_video_train)

    e = vsub.add_parser("eval", help="exact nats per sub-pixel on val, test_seen and test_novel")
    _video_model_args(e, required_preset=False)
    e.add_argument(
        "--n-eval",
        type=cli_args.non_negative_int,
        default=0,
        help="score the first N videos of each split (0: the config's eval_sequences)",
    )
    cli_args.add_record(e, "a directory, e.g. results/pixelcnn: writes video-<model>.json")
    e.add_argument("--name", default=None, help="the record's experiment name (default: video-<model>)")
    e.add_argument(
        "--shuffle-actions",
        action="store_true",
        help="also score every split with each video's actions taken from another video: the "
        "likelihood the model gains from the actions (<split>_action_cost)",
    )
    e.set_defaults(func=cmd_video_eval)

    s = vsub.add_parser("sample", help="continue videos: frame strip (PNG) and animation (GIF)")
    _video_model_args(s, required_preset=False)
    s.add_argument("--samples", type=cli_args.positive_int, default=4, help="how many videos")
    s.add_argument("--split", choices=("val", "test_seen", "test_novel"), default="val")
    s.add_argument(
        "--sampler",
        choices=("cached", "windowed", "generic-cached"),
        default=None,
        help="vpn only: the lean activation-caching sampler (default), the network rerun per pixel "
        "(windowed, the paper's) or the image PixelCNN's caching sampler (generic-cached)",
    )
    s.add_argument("--temperature", type=cli_args.positive_float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=cli_args.output_dir, default=None, help="output folder (default: RUN_DIR/samples)")
    s.set_defaults(func=cmd_video_sample)


def _model_args(p: argparse.ArgumentParser, required_preset: bool) -> None:
    from icml17.pixelcnn.presets import PRESETS

    p.add_argument(
        "--preset", required=required_preset, default=None, choices=sorted(PRESETS), help="dataset and conditioning"
    )
    p.add_argument("--model", choices=MODELS, default=None, help="model type (default: the preset's, multiscale-b)")
    cli_args.add_run_dir(p, SYSTEM, what="<dataset>[-<condition>]-<full|typeA|typeB>")


def _trained_args(p: argparse.ArgumentParser) -> None:
    _model_args(p, required_preset=False)
    p.add_argument("--weights", metavar="NAME", help="use shipped weights instead of a run (see icml17.weights)")
    cli_args.add_data_dir(p)
    cli_args.add_compute(p)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pixelcnn", help="parallel multiscale PixelCNN (Reed et al. 2017)")
    sub = parser.add_subparsers(dest="pixelcnn_command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a preset (resumes from the run directory's checkpoint)")
    _model_args(t, required_preset=True)
    cli_args.add_data_dir(t)
    from icml17.pixelcnn.presets import PixelCNNConfig

    cli_args.add_overrides(t, PixelCNNConfig)
    cli_args.add_compute(t)
    cli_args.add_training(t)
    cli_args.add_precision(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="exact test log-likelihood of a trained run or shipped weights")
    _trained_args(e)
    e.add_argument(
        "--n-eval",
        type=cli_args.non_negative_int,
        default=0,
        help="score only the first N images of each split (0: all)",
    )
    e.add_argument(
        "--splits",
        nargs="+",
        choices=("train", "val", "test"),
        default=["test"],
        help="splits to score (default test; val needs a run trained with --set val_images=N)",
    )
    cli_args.add_record(e, "a directory, e.g. results/pixelcnn: writes <experiment>.json")
    e.add_argument(
        "--name",
        default=None,
        help="the record's experiment name (default: from the config, "
        "e.g. mnist-typeB); name variants such as a smaller width apart from the preset's run",
    )
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("sample", help="sample PNG grids (coarse-to-fine and super-resolution for multiscale models)")
    _trained_args(s)
    s.add_argument("--samples", type=cli_args.positive_int, default=16, help="how many images")
    s.add_argument("--temperature", type=cli_args.positive_float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=cli_args.output_dir, default=None, help="output folder (default: RUN_DIR/samples)")
    s.set_defaults(func=cmd_sample)

    x = sub.add_parser("export", help="write a run's weights into the package's shipped weights (maintainers)")
    _model_args(x, required_preset=False)
    x.add_argument("--name", required=True)
    x.add_argument("--reproduces", required=True, metavar="RECORD")
    x.add_argument("--replace", action="store_true", help="overwrite weights already shipped under --name")
    x.add_argument("--description", default="")
    x.set_defaults(func=cmd_export)

    _register_video(sub)
