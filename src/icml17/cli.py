"""The single ``icml17`` command: parses, validates, dispatches. No model logic lives here.

Each system contributes a thin ``commands`` module with ``register(subparsers)``; the data and demo commands
are registered by :mod:`icml17.data.commands` and :mod:`icml17.demo`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "icml17.demo",
    "icml17.data.commands",
    "icml17.tables",
    "icml17.maml.commands",
    "icml17.pixelcnn.commands",
    "icml17.sharpness.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="icml17",
        description="MAML, parallel multiscale PixelCNN and sharpness under reparametrization (ICML 2017).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the user's input or files: printed as one clear message, not a traceback."""
    from icml17.core import CheckpointError, ConfigError, NonFiniteError
    from icml17.data import DatasetError

    return (ConfigError, DatasetError, CheckpointError, NonFiniteError, FileNotFoundError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _user_errors() as e:
        print(f"icml17 {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept, rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
