"""The single ``icml17`` command: parses, validates, dispatches. No model logic lives here.

Each command lives in a thin module with ``register(subparsers)``. Only the module of the command being run
is imported (``icml17 --help`` lists the commands without importing torch, so it answers at once). Errors a
user can fix (:class:`icml17.core.errors.UserError` and missing or unusable files) are printed as one line
naming the problem and the fix; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# command -> (module that registers it, one-line help shown by `icml17 --help`)
COMMANDS = {
    "demo": ("icml17.demo", "a tour of a few minutes: shipped trained models, short live trainings, an HTML report"),
    "data": ("icml17.data.commands", "report or download datasets"),
    "results": ("icml17.tables", "the docs' results pages from the records; seed summaries and paired comparisons"),
    "maml": ("icml17.maml.commands", "Model-Agnostic Meta-Learning (Finn et al. 2017)"),
    "maml-rl": ("icml17.maml.rl.commands", "MAML for reinforcement learning: 2D navigation, MuJoCo locomotion"),
    "pixelcnn": ("icml17.pixelcnn.commands", "parallel multiscale PixelCNN (Reed et al. 2017)"),
    "sharpness": ("icml17.sharpness.commands", "flatness measures under reparametrization (Dinh et al. 2017)"),
}


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error printed as one line (the problem, then where to look) instead of the
    usage block followed by the error. Subcommand parsers inherit this class."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv`` only the invoked command's module is imported (all of them without), and not even
    that one when ``argv`` only asks for its list of commands (:mod:`icml17.cli_listing`)."""
    parser = Parser(
        prog="icml17",
        description="MAML, parallel multiscale PixelCNN and sharpness under reparametrization (ICML 2017).",
    )
    parser.add_argument("--version", action="version", version=f"icml17 {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    from icml17.cli_listing import only_lists, register_listing

    for name, (module, help_text) in COMMANDS.items():
        if argv is not None and name == wanted and only_lists(name, argv):
            register_listing(sub, name, help_text)  # `icml17 maml --help`: no torch to import
        elif argv is None or name == wanted:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("icml17")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _user_errors() -> tuple[type[BaseException], ...]:
    from icml17.core.errors import UserError

    return (UserError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # records quote the command exactly as typed
    from icml17.core import (
        distributed,  # light: torch is imported only by the command being run
    )

    try:
        distributed.setup()  # joins torchrun's process group; nothing for a single process
        return int(args.func(args) or 0)
    except _user_errors() as e:  # first: some user errors (a bad checkpoint) are RuntimeErrors too
        from icml17.cli_args import defer_to_rank0, describe

        defer_to_rank0(e, distributed.context().rank)  # under torchrun, printed once
        print(f"icml17 {args.command}: error: {describe(e, parser, argv)}", file=sys.stderr)  # names the flags
        return 2
    except RuntimeError as e:
        if not distributed.context().enabled:
            raise
        # a collective failed: a peer process died or timed out (torchrun stops the others too)
        print(
            f"icml17 {args.command}: error: rank {distributed.context().rank}: a peer process failed or timed out "
            f"({str(e).splitlines()[0][:200]}); the last complete checkpoint is kept, rerun the same command to "
            f"resume",
            file=sys.stderr,
        )
        return 1
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, with the shell's SIGPIPE status
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(
            f"icml17 {args.command}: interrupted; checkpoints written so far are kept, rerun the same command "
            f"to resume",
            file=sys.stderr,
        )
        return 130
    finally:
        distributed.teardown()


if __name__ == "__main__":
    sys.exit(main())
