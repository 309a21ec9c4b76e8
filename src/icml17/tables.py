"""``icml17 results``: rebuild README's results tables from the committed JSON records, and its table of the
shipped weights from ``icml17.weights``'s manifest and the records they reproduce."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WEIGHTS_START, WEIGHTS_END = "<!-- weights:start -->", "<!-- weights:end -->"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="rebuild README.md's results tables from results/**/*.json")
    p.add_argument("--readme", type=Path, default=Path("README.md"),
                   help="the README whose generated blocks are rebuilt (default README.md: run from the repo root)")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="the folder of committed records read recursively (default results)")
    p.set_defaults(func=_run)


def weights_table(repo: Path) -> str:
    """Markdown: name, system, what it is, the record it reproduces, that record's value, the command."""
    from icml17.weights import manifest

    rows = ["| weights | system | what | reproduces | size | command |", "|---|---|---|---|---|---|"]
    for name, e in manifest().items():
        record = repo / e["record"]
        value = "-"
        if record.is_file():
            r = json.loads(record.read_text())
            metric, v = r.get("metric"), r.get("value")
            if e.get("record_key"):  # a value inside the record, e.g. theta.small-batch.lambda_max
                metric = e["record_key"]
                for key in metric.split("."):
                    r = r[key]
                v = r
            value = f"{100 * v:.1f}%" if metric == "accuracy" else (f"{v:.4g}" if isinstance(v, float) else str(v))
            value = f"{metric} {value}"
        command = f"icml17 {e['system']} eval --weights {name}" + ("" if name.startswith("sinusoid") else " --data-dir DATA")
        rows.append(f"| `{name}` | {e['system']} | {e.get('description', '')} | `{e['record']}` ({value}) | "
                    f"{e['bytes'] / 1024:.0f} KB | `{command}` |")
    return "\n".join(rows)


def _run(args: argparse.Namespace) -> int:
    from icml17.core.config import ConfigError
    from icml17.core.results import update_readme

    for path, flag in ((args.readme, "--readme"), (args.results, "--results")):
        if not path.exists():
            raise ConfigError(f"{path} not found: run `icml17 results` from the repository root, or pass {flag}")
    print(update_readme(args.readme, args.results))
    text = args.readme.read_text()
    if WEIGHTS_START in text and WEIGHTS_END in text:
        head, rest = text.split(WEIGHTS_START, 1)
        _, tail = rest.split(WEIGHTS_END, 1)
        table = weights_table(args.readme.resolve().parent)
        args.readme.write_text(f"{head}{WEIGHTS_START}\n{table}\n{WEIGHTS_END}{tail}")
        print(table)
    return 0
