"""The shell every system shares: run directories, resume checks, thread settings and the common CLI flags.

A run directory holds::

    config.json              the resolved config, its class and the command line (for people; never loaded back)
    metrics.jsonl            one JSON object per logged step
    checkpoints/last.pt      model/optimizer/RNG state, step, wall time and the config the run was trained with
    tensorboard/             event files, with --tensorboard
    previous/<time>/         what --no-resume moved aside (nothing computed is deleted)

Two rules keep a run honest. A resume is checked against the checkpoint's own config *before* anything is
written, and refused naming the keys that differ (keys that do not change what is trained, such as checkpoint
or evaluation intervals, may differ). Evaluation rebuilds the model from the checkpoint's own config, never from
``config.json``, which describes the last command that ran, not necessarily the weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from icml17.core.config import ConfigError, config_from_dict, config_to_dict, config_value

T = TypeVar("T")

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = Path("checkpoints") / "last.pt"
TENSORBOARD_DIR = "tensorboard"
PREVIOUS_DIR = "previous"
RUNS_ROOT = Path("runs")
THREADS_ENV = "ICML17_THREADS"

# Keys that say how often to report or save, never what is trained: a resume may change them.
ALWAYS_RESUME_FREE = ("checkpoint_every", "eval_every", "log_every")


# ----------------------------------------------------------------------------------------------- threads
def resolve_threads(value: int | str | None = None) -> int:
    """The intra-op thread count: ``value`` (``--threads``), else ``$ICML17_THREADS``, else 1.

    One thread per process is the default because small convolutions run many times slower when two jobs
    share two cores with several threads each; ask for more with ``--threads N``.
    """
    source = "--threads"
    if value is None:
        value, source = os.environ.get(THREADS_ENV), THREADS_ENV
        if value is None or value == "":
            return 1
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}={value!r} is not a whole number; give a thread count >= 1 "
                          f"(for example {source if source != '--threads' else '--threads'} 1)") from None
    if n < 1:
        raise ConfigError(f"{source}={n} is not a valid thread count; give 1 or more (cores here: {os.cpu_count()})")
    return n


def apply_threads(value: int | str | None = None) -> int:
    """Resolve the thread count and hand it to torch (warning when it exceeds the cores); returns it."""
    import torch

    n = resolve_threads(value)
    cores = os.cpu_count() or 1
    if n > cores:
        print(f"warning: {n} threads on a machine with {cores} cores; threads beyond the cores slow the work down",
              file=sys.stderr)
    torch.set_num_threads(n)
    return n


def apply_compute(args: argparse.Namespace, *, training: bool = False):
    """Apply a command's ``--threads``, ``--device`` and ``--no-tf32`` (see :func:`add_compute`); returns the
    ``torch.device`` the command computes on, checked to exist before any work starts.

    TF32 (on CUDA) is on for training commands unless ``--no-tf32``, and off for every command that reports a
    number (evaluation, likelihoods, curvature), whose results are documented as fp32.
    """
    from icml17.core import device as devices

    apply_threads(getattr(args, "threads", None))
    dev = devices.resolve(getattr(args, "device", None))
    if dev.type == "cuda":
        devices.set_tf32(training and not getattr(args, "no_tf32", False))
    return dev


# ------------------------------------------------------------------------------------------ run directory
class NotTrainedError(ConfigError):
    """The run directory holds no trained run (no last checkpoint)."""


def or_shipped_weights(load: Callable[[], T]) -> T:
    """``load()``; for the commands that also take ``--weights``, a missing run's error names that way too."""
    try:
        return load()
    except NotTrainedError as e:
        raise NotTrainedError(f"{e}; or use shipped weights: --weights NAME") from e


def refuse_other_run(run_dir: str | Path, holds: str, asked: str, fix: str) -> None:
    """A run evaluated as something it is not would print and record the wrong name: when the run ``holds``
    something other than what the flags ``asked`` for, stop and say ``fix``."""
    if holds != asked:
        raise ConfigError(f"{run_dir} holds a {holds} run, not {asked}: {fix}")


def say(text: str) -> None:
    """Print a training command's result line once: under torchrun rank 0 alone (the others hold the same)."""
    from icml17.core import distributed

    if distributed.context().is_main:
        print(text)


def default_run_dir(system: str, experiment: str) -> Path:
    """``runs/<system>/<experiment>``: the one default every command uses."""
    return RUNS_ROOT / system / experiment


def check_run_dir(run_dir: str | Path) -> Path:
    """A usable run directory path (it may not exist yet), or a ConfigError saying why not."""
    run_dir = Path(run_dir)
    blocker = _file_in_the_way(run_dir)
    if blocker is not None:
        raise ConfigError(f"run directory {run_dir} cannot be used: {blocker} is a file; pass another --run-dir")
    return run_dir


def _file_in_the_way(folder: Path) -> Path | None:
    """The file (if any) at ``folder`` or above it that stops ``folder`` from being a directory."""
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)


def output_dir(text: str) -> Path:
    """argparse type of a folder that results go into (created when missing): refused while parsing when it, or
    a folder above it, is a file, so a write that must fail is caught before any work is done."""
    path = Path(text)
    blocker = _file_in_the_way(path)
    if blocker is not None:
        raise argparse.ArgumentTypeError(f"{path} cannot be a folder: {blocker} is a file; pass another folder")
    return path


def output_file(text: str) -> Path:
    """argparse type of a file that results are written to: refused while parsing when it is a folder or a folder
    above it is a file."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; pass a file name, e.g. {path / 'result.json'}")
    blocker = _file_in_the_way(path.parent)
    if blocker is not None:
        raise argparse.ArgumentTypeError(f"cannot write {path}: {blocker} is a file, not a folder")
    return path


def resume_free_keys(cfg: Any) -> tuple[str, ...]:
    """Config keys a resume may change: the intervals, plus the config class's own ``RESUME_FREE``."""
    return ALWAYS_RESUME_FREE + tuple(getattr(cfg, "RESUME_FREE", ()))


def config_values(cfg: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(cfg):
        return config_to_dict(cfg)
    return dict(cfg or {})


def config_differences(stored: Mapping[str, Any], current: Mapping[str, Any],
                       free: Iterable[str] = ()) -> list[str]:
    """``['inner_lr: 0.4 -> 0.1', ...]`` for every key whose value differs, except ``free`` keys."""
    free = set(free)
    out = []
    for key in sorted(set(stored) | set(current)):
        if key in free:
            continue
        a, b = stored.get(key, "<absent>"), current.get(key, "<absent>")
        if json.dumps(a, default=str) != json.dumps(b, default=str):
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def checkpoint_config(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """The config stored in a checkpoint (a JSON string, so the file stays loadable with weights_only)."""
    raw = ckpt.get("config")
    if isinstance(raw, str):
        return json.loads(raw) if raw else {}
    return dict(raw or {})


def _with_added_defaults(stored: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """``stored`` plus the default of every config field added after it was written: those runs trained with it."""
    if not dataclasses.is_dataclass(cfg):
        return stored
    added = {}
    for f in dataclasses.fields(cfg):
        if f.name in stored:
            continue
        if f.default is not dataclasses.MISSING:
            added[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            added[f.name] = f.default_factory()
    return {**{k: config_value(v) for k, v in added.items()}, **stored}


def check_resume(run_dir: Path, ckpt: Mapping[str, Any], cfg: Any) -> None:
    """Refuse to resume ``ckpt`` with a config that changes what is trained; name the keys and the fixes."""
    stored = _with_added_defaults(checkpoint_config(ckpt), cfg)
    diffs = config_differences(stored, config_values(cfg), resume_free_keys(cfg))
    if diffs:
        raise ConfigError(
            f"{run_dir} holds a checkpoint (step {int(ckpt.get('step', 0))}) trained with another config: "
            f"{'; '.join(diffs)}. Resuming would mix two experiments: use another --run-dir, pass --no-resume to "
            f"start over (the old run is kept under {run_dir / PREVIOUS_DIR}), or undo those changes")


def set_aside_previous(run_dir: Path) -> Path | None:
    """Move an earlier run's checkpoint, log, config and event files to ``previous/<time>/`` (--no-resume)."""
    names = [CONFIG_FILE, METRICS_FILE, str(CHECKPOINT_FILE.parent), TENSORBOARD_DIR]
    present = [n for n in names if (run_dir / n).exists()]
    if not present:
        return None
    dest = run_dir / PREVIOUS_DIR / _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    dest.mkdir(parents=True)
    for n in present:
        shutil.move(str(run_dir / n), str(dest / n))
    return dest


def write_config(run_dir: Path, cfg: Any, argv: list[str] | None) -> Path:
    """``config.json``: the resolved config, its class and the command line (written after resume checks)."""
    path = run_dir / CONFIG_FILE
    record = {"config_class": type(cfg).__name__ if dataclasses.is_dataclass(cfg) else None,
              "config": config_values(cfg), "argv": list(argv) if argv is not None else None}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
    return path


def read_argv(run_dir: str | Path) -> list[str]:
    """The command line recorded in ``config.json`` (empty when unknown)."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        return list(json.loads(path.read_text()).get("argv") or [])
    except (OSError, json.JSONDecodeError):
        return []


@dataclasses.dataclass
class Checkpointed:
    """What evaluation needs from a run directory: the config the weights were trained with and the weights."""

    cfg: Any
    state: dict[str, Any]
    iterations: int
    wall_time_s: float
    train_command: str


def load_trained_run(run_dir: str | Path, config_cls: type, state_key: str, system: str,
                     how_to_train: str | None = None) -> Checkpointed:
    """Read ``run_dir``'s last checkpoint and the config it was trained with (never ``config.json``'s).
    ``how_to_train`` ends the error for a missing run (default: the system's train command)."""
    from icml17.core.checkpoint import load_checkpoint

    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT_FILE
    if not path.is_file():
        how_to_train = how_to_train or f"train it first with `icml17 {system} train --run-dir {run_dir} ...`"
        raise NotTrainedError(f"{run_dir} is not a trained {system} run (no {CHECKPOINT_FILE}); {how_to_train}")
    ckpt = load_checkpoint(path)
    if state_key not in ckpt.get("state", {}):
        raise ConfigError(f"{path} is not a {system} checkpoint (it holds no {state_key!r} state)")
    return Checkpointed(load_run_config(config_cls, run_dir, ckpt), ckpt["state"][state_key], int(ckpt["step"]),
                        float(ckpt.get("wall_time_s", 0.0)), " ".join(read_argv(run_dir)))


def load_run_config(config_cls: type, run_dir: str | Path, ckpt: Mapping[str, Any]) -> Any:
    """Rebuild the config a checkpoint was trained with.

    Checkpoints written before the full config was stored lack the resume-free keys (``iterations`` for
    MAML); those few are filled from ``config.json`` or the class defaults, which do not change the weights.
    """
    values = checkpoint_config(ckpt)
    known = {f.name for f in dataclasses.fields(config_cls)}
    missing = known - set(values)
    if missing:
        try:
            written = json.loads((Path(run_dir) / CONFIG_FILE).read_text()).get("config", {})
        except (OSError, json.JSONDecodeError):
            written = {}
        free = set(ALWAYS_RESUME_FREE) | set(getattr(config_cls, "RESUME_FREE", ()))
        values.update({k: written[k] for k in missing & free if k in written})
    return config_from_dict(config_cls, {k: v for k, v in values.items() if k in known})


# --------------------------------------------------------------------------------------------- CLI shell
def command_line(args: argparse.Namespace) -> str:
    """The command as the user typed it (``icml17 ...``), for records; the CLI stores argv on ``args``."""
    argv = getattr(args, "argv", None)
    if argv is None:
        argv = sys.argv[1:]
    return "icml17 " + shlex.join(argv)


def record_command(args: argparse.Namespace, train_command: str = "") -> str:
    """The command a record names: the run's own training command (when known), then this one."""
    command = command_line(args)
    return f"{train_command}; {command}" if train_command else command


def parse_overrides(items: list[str] | None, *, forbidden: Mapping[str, str] | None = None) -> dict[str, str]:
    """``--set`` values (``['a=1', 'b=2']``, from repeated or multi-valued flags) -> ``{'a': '1', 'b': '2'}``.

    ``forbidden`` maps keys that must not be set this way to the flag to use instead (a preset is chosen with
    ``--preset``, not relabelled with ``--set preset=...``).
    """
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if forbidden and key in forbidden:
            raise ConfigError(f"--set {key}=... is not allowed: {forbidden[key]}")
        if key in out and out[key] != value.strip():
            raise ConfigError(f"--set {key} is given twice ({out[key]} and {value.strip()}): keep one")
        out[key] = value.strip()
    return out


def training_overrides(args: argparse.Namespace, forbidden: Mapping[str, str]) -> dict[str, Any]:
    """A training command's ``--set`` values with ``--iterations`` and ``--seed`` added; a value given both ways is
    refused rather than one of them silently winning."""
    out: dict[str, Any] = parse_overrides(args.set, forbidden=forbidden)
    for key in ("iterations", "seed"):
        value = getattr(args, key, None)
        if value is None:
            continue
        if key in out:
            raise ConfigError(f"--{key} {value} and --set {key}={out[key]} both given: keep one")
        out[key] = value
    return out


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {n}")
        return n
    return parse


positive_int = _int_at_least(1)        # argparse types
non_negative_int = _int_at_least(0)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (x > 0 and x != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return x


def add_run_dir(p: argparse.ArgumentParser, system: str, *, what: str = "<preset>") -> None:
    p.add_argument("--run-dir", type=Path, default=None,  # train commands check it with check_run_dir
                   help=f"run directory (default: {RUNS_ROOT / system}/{what})")


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None,
                   help="dataset root (default: $ICML17_DATA, else ~/.cache/icml17/data)")


def add_compute(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--threads`` and ``--no-tf32``: where a command computes (every computing command has them)."""
    # parsed later by resolve_threads / device.resolve, so a bad environment variable never breaks --help
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="auto, cpu, cuda, cuda:N or mps (default: $ICML17_DEVICE, else auto: the GPU when one is "
                        "visible, else the CPU; under torchrun with NCCL each process takes its LOCAL_RANK GPU)")
    p.add_argument("--threads", default=None, metavar="N",
                   help=f"intra-op CPU threads (default: ${THREADS_ENV}, else 1)")
    p.add_argument("--no-tf32", action="store_true",
                   help="full fp32 matrix products and convolutions when training on Ampere and later GPUs (TF32 is on "
                        "by default for training there; evaluations always run without it)")


def add_precision(p: argparse.ArgumentParser, allowed: tuple[str, ...] = ("fp32", "bf16", "fp16")) -> None:
    """``--precision``: mixed-precision training (autocast; a gradient scaler for fp16)."""
    p.add_argument("--precision", choices=allowed, default="fp32",
                   help="training precision: fp32, or bf16/fp16 autocast (fp16 with a gradient scaler, GPU only); "
                        "likelihoods and evaluations are always computed in fp32")


def add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config fields; repeatable and multi-valued (--set a=1 b=2 --set c=3)")


def add_record(p: argparse.ArgumentParser, default_hint: str) -> None:
    p.add_argument("--record", type=output_dir, default=None, metavar="PATH",
                   help=f"write the results record(s) here ({default_hint})")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs and CI)")


def add_training(p: argparse.ArgumentParser) -> None:
    """Flags every training command shares (resume, budget, seed, iterations, TensorBoard)."""
    p.add_argument("--iterations", type=non_negative_int, default=None, help="where training stops")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-resume", action="store_true",
                   help=f"start over; the old checkpoint and log are moved to RUN_DIR/{PREVIOUS_DIR}/")
    p.add_argument("--time-budget", type=positive_float, default=None, metavar="SECONDS",
                   help="stop after a checkpoint once this many seconds are spent (resume by rerunning)")
    p.add_argument("--tensorboard", action="store_true",
                   help=f"also log metrics to TensorBoard in RUN_DIR/{TENSORBOARD_DIR} (needs the tensorboard extra)")
    add_progress(p)
