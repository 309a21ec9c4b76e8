"""What ``icml17 <system> --help`` lists, known without importing the system.

Registering a system's commands imports the system (its presets name the choices of ``--preset``), and with it
torch: seconds, only to print five lines. A listing of a system's commands needs only their names and one-line
helps, kept here; :func:`icml17.cli.build_parser` uses them when the command line asks for nothing more
(``icml17 maml``, ``icml17 maml --help``). ``tests/test_new_user.py`` checks that each listing prints exactly
what the full parser prints, so a command added or reworded in a ``commands.py`` fails the tests until it is
added here too.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

# system -> (its subcommands, with the help each commands.py gives it), in the order they are registered
SUBCOMMANDS: dict[str, tuple[tuple[str, str], ...]] = {
    "maml": (
        ("train", "meta-train a preset (resumes from the run directory's checkpoint)"),
        ("eval", "meta-test a trained run or shipped weights (600 tasks, 95%% interval)"),
        ("baseline", "sinusoid baselines: pretrained + fine-tuned, or oracle"),
        ("plots", "figures of a run (Fig. 2/3 for sinusoids, learning curves otherwise)"),
        ("export", "write a run's weights into the package's shipped weights (maintainers)"),
    ),
    "maml-rl": (
        ("train", "meta-train a preset (resumes from the run directory's checkpoint)"),
        ("eval", "returns after 0-3 policy-gradient steps on 40 test tasks (Figure 5)"),
        ("plots", "return versus gradient steps (Figure 5); 2D-navigation paths (Figure 4)"),
    ),
    "pixelcnn": (
        ("train", "train a preset (resumes from the run directory's checkpoint)"),
        ("eval", "exact test log-likelihood of a trained run or shipped weights"),
        ("sample", "sample PNG grids (coarse-to-fine and super-resolution for multiscale models)"),
        ("export", "write a run's weights into the package's shipped weights (maintainers)"),
        ("video", "action-conditional video: O(T), O(T log N), ConvLSTM and VPN models"),
    ),
    "sharpness": (
        ("measure", "Hessian / sharpness measures of a run, shipped weights or a preset"),
        ("eval", "measure a trained minimum with the reproductions' protocol"),
        ("reproduce", "the paper's reparametrization experiments on MNIST subsets"),
        ("invariance", "every flatness measure through every function-preserving transform"),
        ("export", "write a training run's weights into the package's shipped weights"),
    ),
}


def only_lists(system: str, argv: Sequence[str]) -> bool:
    """Whether ``argv`` asks no more of ``system`` than its list of commands (nothing, or only ``-h``/``--help``)."""
    if system not in SUBCOMMANDS or system not in argv:
        return False
    rest = list(argv)[list(argv).index(system) + 1 :]
    return all(a in ("-h", "--help") for a in rest)


def register_listing(subparsers: argparse._SubParsersAction, system: str, help_text: str) -> None:
    """Add ``system`` with its subcommands' names and helps only (none of their options): enough to list them, or
    to say that a command is missing."""
    parser = subparsers.add_parser(system, help=help_text)
    sub = parser.add_subparsers(dest=f"{system.replace('-', '_')}_command", required=True, metavar="COMMAND")
    for name, text in SUBCOMMANDS[system]:
        sub.add_parser(name, help=text)
