"""``icml17 results``: rebuild README's results tables from the committed JSON records."""

from __future__ import annotations

import argparse
from pathlib import Path

from icml17.core.results import update_readme


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="rebuild README.md's results tables from results/**/*.json")
    p.add_argument("--readme", type=Path, default=Path("README.md"))
    p.add_argument("--results", type=Path, default=Path("results"))
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print(update_readme(args.readme, args.results))
    return 0
