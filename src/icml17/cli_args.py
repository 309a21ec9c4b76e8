"""The flags every command shares, the argparse types, ``--set`` parsing and the command line a record names.

This is the command layer, beside :mod:`icml17.cli`, not a part of :mod:`icml17.core`: the library never sees an
``argparse.Namespace`` (``tests/test_architecture.py`` keeps argparse out of it). Commands (each system's
``commands.py``, ``icml17.demo``, ``icml17.tables``) read their flags here and hand plain values to the library:
run directories to :mod:`icml17.core.runs`, thread and device settings to :mod:`icml17.core.device`.

Importing this module does not import torch, so ``icml17 <system> --help`` answers at once.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from icml17.core.config import ConfigError
from icml17.core.runs import PREVIOUS_DIR, RUNS_ROOT, TENSORBOARD_DIR, file_in_the_way

# icml17.core.device.THREADS_ENV, named here rather than imported: that module imports torch
THREADS_ENV = "ICML17_THREADS"


def apply_compute(args: argparse.Namespace, *, training: bool = False):
    """Apply a command's ``--threads``, ``--device`` and ``--no-tf32`` (see :func:`add_compute`); returns the
    ``torch.device`` the command computes on, checked to exist before any work starts.

    TF32 (on CUDA) is on for training commands unless ``--no-tf32``, and off for every command that reports a
    number (evaluation, likelihoods, curvature), whose results are documented as fp32.
    """
    from icml17.core import device as devices

    return devices.configure(
        getattr(args, "device", None),
        getattr(args, "threads", None),
        tf32=training and not getattr(args, "no_tf32", False),
    )


def say(text: str) -> None:
    """Print a training command's result line once: under torchrun rank 0 alone (the others hold the same)."""
    from icml17.core import distributed

    if distributed.context().is_main:
        print(text)


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


# ------------------------------------------------------------------------------------------------- --set
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


# ----------------------------------------------------------------------------------------- argparse types
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


positive_int = _int_at_least(1)
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


def output_dir(text: str) -> Path:
    """argparse type of a folder that results go into (created when missing): refused while parsing when it, or
    a folder above it, is a file, so a write that must fail is caught before any work is done."""
    path = Path(text)
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise argparse.ArgumentTypeError(f"{path} cannot be a folder: {blocker} is a file; pass another folder")
    return path


def output_file(text: str) -> Path:
    """argparse type of a file that results are written to: refused while parsing when it is a folder or a folder
    above it is a file."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; pass a file name, e.g. {path / 'result.json'}")
    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        raise argparse.ArgumentTypeError(f"cannot write {path}: {blocker} is a file, not a folder")
    return path


# -------------------------------------------------------------------------------------------- shared flags
def add_run_dir(p: argparse.ArgumentParser, system: str, *, what: str = "<preset>") -> None:
    p.add_argument(
        "--run-dir",
        type=Path,
        default=None,  # train commands check it with runs.check_run_dir
        help=f"run directory (default: {RUNS_ROOT / system}/{what})",
    )


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir", type=Path, default=None, help="dataset root (default: $ICML17_DATA, else ~/.cache/icml17/data)"
    )


def add_compute(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--threads`` and ``--no-tf32``: where a command computes (every computing command has them)."""
    # parsed later by device.resolve_threads / device.resolve, so a bad environment variable never breaks --help
    p.add_argument(
        "--device",
        default=None,
        metavar="DEVICE",
        help="auto, cpu, cuda, cuda:N or mps (default: $ICML17_DEVICE, else auto: the GPU when one is "
        "visible, else the CPU; under torchrun with NCCL each process takes its LOCAL_RANK GPU)",
    )
    p.add_argument(
        "--threads", default=None, metavar="N", help=f"intra-op CPU threads (default: ${THREADS_ENV}, else 1)"
    )
    p.add_argument(
        "--no-tf32",
        action="store_true",
        help="full fp32 matrix products and convolutions when training on Ampere and later GPUs (TF32 is on "
        "by default for training there; evaluations always run without it)",
    )


def add_precision(p: argparse.ArgumentParser, allowed: tuple[str, ...] = ("fp32", "bf16", "fp16")) -> None:
    """``--precision``: mixed-precision training (autocast; a gradient scaler for fp16)."""
    p.add_argument(
        "--precision",
        choices=allowed,
        default="fp32",
        help="training precision: fp32, or bf16/fp16 autocast (fp16 with a gradient scaler, GPU only); "
        "likelihoods and evaluations are always computed in fp32",
    )


def add_overrides(p: argparse.ArgumentParser, config: type | None = None) -> None:
    """``--set KEY=VALUE``; with ``config`` (the command's config dataclass) its help ends with the keys accepted."""
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config fields; repeatable and multi-valued (--set a=1 b=2 --set c=3)"
        + ("; the keys are listed below" if config is not None else ""),
    )
    if config is not None:
        import dataclasses

        keys = ", ".join(f.name for f in dataclasses.fields(config) if f.name != "preset")  # that one: --preset
        p.epilog = (p.epilog + "\n\n" if p.epilog else "") + f"--set keys ({config.__name__} fields): {keys}"


def add_record(p: argparse.ArgumentParser, default_hint: str) -> None:
    p.add_argument(
        "--record",
        type=output_dir,
        default=None,
        metavar="PATH",
        help=f"write the results record(s) here ({default_hint})",
    )


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs and CI)")


def add_training(p: argparse.ArgumentParser) -> None:
    """Flags every training command shares (resume, budget, seed, iterations, TensorBoard)."""
    p.add_argument("--iterations", type=non_negative_int, default=None, help="where training stops")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--no-resume",
        action="store_true",
        help=f"start over; the old checkpoint and log are moved to RUN_DIR/{PREVIOUS_DIR}/",
    )
    p.add_argument(
        "--time-budget",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="stop after a checkpoint once this many seconds are spent (resume by rerunning)",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help=f"also log metrics to TensorBoard in RUN_DIR/{TENSORBOARD_DIR} (needs the tensorboard extra)",
    )
    add_progress(p)


# ------------------------------------------------------------------ reporting a UserError with its flags
def describe(error: BaseException, parser: argparse.ArgumentParser | None = None, argv: Sequence[str] = ()) -> str:
    """The one line the CLI prints for ``error``, with the flags that set its parameters.

    Args:
        error: a :class:`UserError` or an ``OSError`` a user can fix (a missing file, a read-only folder).
        parser: the command's parser; the invoked subcommand (followed along ``argv``) maps each parameter named
            by the error to its flag (``chunk_size`` -> ``--chunk-size``), else to ``--set NAME=...`` when the
            subcommand takes ``--set``.
        argv: the command line (without the program name).

    Returns:
        The message's first line, with the file name of an ``OSError`` and a ``(command line: ...)`` hint added
        where they are not in it already.
    """
    text = str(error)
    message = text.splitlines()[0] if text else type(error).__name__
    if isinstance(error, OSError):
        if error.errno is not None and error.strerror and message.startswith(f"[Errno {error.errno}]"):
            message = error.strerror  # the file name is added below
        if error.filename and str(error.filename) not in message:
            message = f"{message}: {error.filename}"
    flags = [f for f in (_flag(p, parser, argv) for p in getattr(error, "params", ())) if f]
    if flags:
        message = f"{message} (command line: {', '.join(dict.fromkeys(flags))})"
    return message


def defer_to_rank0(error: BaseException, rank: int, wait_s: float = 10.0) -> None:
    """Under torchrun, let rank 0 alone report an error that every process raises alike (a bad setting, a missing
    dataset, a batch that does not divide): another rank waits ``wait_s`` first, and torchrun stops it as soon as
    rank 0 has reported and exited. A rank whose error rank 0 does not share still reports it, after the wait."""
    if rank > 0 and getattr(error, "same_on_every_rank", False):
        time.sleep(wait_s)


def _flag(param: str, parser: argparse.ArgumentParser | None, argv: Sequence[str]) -> str | None:
    """The flag of the invoked subcommand that sets ``param``, or ``--set param=...``; None if neither exists."""
    if parser is None:
        return None
    leaf = parser
    for token in argv:  # follow the subcommands named on the command line down to the one that runs
        subs = [a for a in leaf._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and token in subs[0].choices:
            leaf = subs[0].choices[token]
    actions = [a for a in leaf._actions if a.option_strings]
    # the flag's own name first, then its negation (--no-resume sets resume=False), its metavar (--reproduces
    # RECORD sets record; not a one-letter N), a folder parameter (--records sets records_dir)
    matches = (
        lambda a: a.dest == param,
        lambda a: a.dest == f"no_{param}",
        lambda a: isinstance(a.metavar, str) and len(a.metavar) > 1 and a.metavar.lower() == param,
        lambda a: f"{a.dest}_dir" == param,
    )
    for match in matches:
        for a in actions:
            if match(a):
                return max(a.option_strings, key=len)  # the long form
    if any("--set" in a.option_strings for a in actions):  # a config field
        return f"--set {param}=..."
    return None
