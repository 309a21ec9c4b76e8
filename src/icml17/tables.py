"""``icml17 results``: write the documentation's results pages and speed tables from the committed JSON records,
README's table of the shipped weights from ``icml17.weights``'s manifest and the records they reproduce; and
``icml17 results seeds | paired``: summarise seed families and compare them (:mod:`icml17.core.seeds`).

The pages are ``docs/results/<system>.md`` (one per system: the headline experiments below in a table of their
own, then every record by family), the speed section of ``docs/benchmarks.md`` and the weights tables of README and
``docs/index.md``; :mod:`icml17.pages` renders them. Only the text between a page's markers (HTML comments) is
rewritten; the prose around it is kept. A page that does not exist yet is created with a short heading.

    icml17 results                                                   # rebuild every generated page
    icml17 results seeds point-nav --record results/maml-rl          # -> results/maml-rl/point-nav-seeds.json
    icml17 results paired cheetah-vel cheetah-vel-pretrained         # -> results/maml-rl/paired.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WEIGHTS_START, WEIGHTS_END = "<!-- weights:start -->", "<!-- weights:end -->"

# system -> (page title, the experiments shown first on its page, in this order)
PAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "maml": (
        "MAML: results",
        (
            "omniglot-5w1s",
            "omniglot-5w5s",
            "sinusoid-k5-step1",
            "sinusoid-k10-step1",
            "sinusoid-k20-step1",
            "sinusoid-k10-step10",
            "sinusoid-k10-step1-pretrained",
            "sinusoid-oracle",
        ),
    ),
    "maml-rl": (
        "MAML-RL: results",
        (
            "point-nav",
            "point-nav-pretrained",
            "point-nav-random",
            "point-nav-oracle",
            "cheetah-vel",
            "cheetah-vel-pretrained",
            "cheetah-vel-random",
            "cheetah-dir",
            "ant-vel",
            "ant-vel-pretrained",
            "ant-dir",
        ),
    ),
    "pixelcnn": (
        "Multiscale PixelCNN: results",
        (
            "mnist-full",
            "mnist-typeA",
            "mnist-typeB",
            "cifar10-subset-full",
            "cifar10-subset-typeA",
            "cifar10-subset-typeB",
            "binarized-mnist-typeA-20k",
            "table1-mnist-class-full",
            "table1-mnist-class-typeB",
            "table1-mnist-text-spatial-full",
            "table1-mnist-text-spatial-typeB",
            "video-o_t-1500",
            "video-o_tlogn-1500",
            "video-vpn-1500",
            "video-convlstm-1500",
        ),
    ),
    "sharpness": (
        "Sharpness: results",
        ("alpha-scaling", "theorem6", "radial-ranking", "whitening", "keskar-gap", "keskar-f1"),
    ),
}
BENCH_PAGE = ("benchmarks.md", "Benchmarks")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "results",
        help="write the docs' results pages and README's weights table from the records",
        description="Rebuild the generated parts of the documentation from results/**/*.json: "
        "docs/results/<system>.md, the speed tables of docs/benchmarks.md, and README's "
        "table of the shipped weights. Run it from the repository root.",
    )
    p.add_argument(
        "--readme",
        type=Path,
        default=Path("README.md"),
        help="the README whose weights table is rebuilt (default README.md: run from the repo root)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="the folder of committed records read recursively (default results)",
    )
    p.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="the documentation folder whose results pages are written (default: docs beside --readme)",
    )
    p.set_defaults(func=_run)
    actions = p.add_subparsers(
        dest="results_command",
        metavar="ACTION",
        help="without one: rebuild the pages; seeds, paired: write a summary record",
    )
    _register_summaries(actions)


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
        data = "" if name.startswith("sinusoid") else " --data-dir DATA"
        command = f"icml17 {e['system']} eval --weights {name}{data}"
        rows.append(
            f"| `{name}` | {e['system']} | {e.get('description', '')} | `{e['record']}` ({value}) | "
            f"{e['bytes'] / 1024:.0f} KB | `{command}` |"
        )
    return "\n".join(rows)


def write_pages(docs: Path, results: Path) -> list[tuple[Path, bool]]:
    """Write every results page and the benchmarks' speed tables under ``docs`` from the records under
    ``results``; returns (page, whether it changed)."""
    from icml17.core.results import read_records
    from icml17.pages import (
        GENERATED,
        HEADLINE_END,
        HEADLINE_START,
        bench_page,
        headline_table,
        results_page,
        update_block,
    )

    records = read_records(results)
    written = []
    for system, (title, headline) in PAGES.items():
        mine = [r for r in records if r.get("system") == system and "experiment" in r]
        page = docs / "results" / f"{system}.md"
        new_page = f"# {title}\n\n## Headline results\n\n{HEADLINE_START}\n{HEADLINE_END}\n\n## Every record, by family"
        changed = update_block(page, f"{GENERATED}\n\n{results_page(mine)}", new_page=new_page)
        changed |= update_block(page, headline_table(mine, headline), start=HEADLINE_START, end=HEADLINE_END)
        written.append((page, changed))
    page = docs / BENCH_PAGE[0]
    block = f"{GENERATED}\n\n{bench_page(records)}"
    written.append((page, update_block(page, block, new_page=f"# {BENCH_PAGE[1]}")))
    return written


def update_weights_table(page: Path, repo: Path) -> bool:
    """Rebuild the weights table between the markers of ``page`` (README.md, the docs' home page) from the
    manifest and the records under ``repo``; returns whether the page changed (False for a page without markers)."""
    if not page.is_file() or WEIGHTS_START not in page.read_text():
        return False
    from icml17.pages import update_block

    return update_block(page, weights_table(repo), start=WEIGHTS_START, end=WEIGHTS_END)


def _run(args: argparse.Namespace) -> int:
    from icml17.core.config import ConfigError

    for path, flag in ((args.readme, "--readme"), (args.results, "--results")):
        if not path.exists():
            raise ConfigError(f"{path} not found: run `icml17 results` from the repository root, or pass {flag}")
    docs = args.docs if args.docs is not None else args.readme.resolve().parent / "docs"
    for page, changed in write_pages(docs, args.results):
        print(f"{page}: {'rewritten' if changed else 'up to date'}")
    repo = args.readme.resolve().parent
    for page in (args.readme, docs / "index.md"):
        if page.is_file() and WEIGHTS_START in page.read_text():
            changed = update_weights_table(page, repo)
            print(f"{page}: weights table {'rewritten' if changed else 'up to date'}")
    return 0


# ------------------------------------------------------------------------------------ icml17 results seeds | paired
def _register_summaries(actions: argparse._SubParsersAction) -> None:
    """``icml17 results seeds`` and ``icml17 results paired``."""
    from icml17.pages import SUMMARY_FIELDS

    where = (
        "the folder of the families' records and of the summary (seed 0: DIR/NAME.json, seed k: "
        "DIR/seeds/NAME-seed<k>.json; default: the one folder under --results holding the first family)"
    )
    fields = (
        f"a record field summarised (repeat it; dotted for nested fields). Default: value and those of "
        f"{', '.join(SUMMARY_FIELDS[1:])} that every record carries"
    )
    s = actions.add_parser(
        "seeds",
        help="summarise experiment families over their seeds (mean, min, max)",
        description="Per family and field: the values by seed, their mean, min and max, and "
        "per seed the descriptive fields (iterations, step sizes). Writes "
        "DIR/FAMILY-seeds.json, or DIR/NAME.json for --name; parts of that record "
        "written by `icml17 results paired --name NAME` are kept.",
    )
    s.add_argument("families", nargs="+", metavar="FAMILY", help="an experiment name, e.g. point-nav")
    s.add_argument("--record", type=Path, default=None, metavar="DIR", help=where)
    s.add_argument(
        "--name", default=None, help="the summary record's name (default FAMILY-seeds; needed for several families)"
    )
    s.add_argument("--field", dest="fields", action="append", default=None, metavar="KEY", help=fields)
    s.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="FIELD",
        help="carry FIELD over unchanged from the summary record being replaced (facts no family "
        "record holds, e.g. a learning curve read from run directories that are gone)",
    )
    s.set_defaults(func=_run_seeds)
    c = actions.add_parser(
        "paired",
        help="compare families: gap of the means, seed pairings, per-task pairs",
        description="For each pair A B: mean(A) - mean(B) per field, in how many (seed of A, "
        "seed of B) pairings A is better and worse, whether the seed ranges are "
        "apart, and where every record keeps per-task numbers on the same tasks, A "
        "minus B per task averaged over seed pairs (i, i) with its 95% t-interval. "
        "Adds or replaces the comparisons in DIR/paired.json (or DIR/NAME.json).",
    )
    c.add_argument("pairs", nargs="+", metavar="A B", help="families, in pairs: each first one minus the second")
    c.add_argument("--record", type=Path, default=None, metavar="DIR", help=where)
    c.add_argument("--name", default="paired", help="the summary record's name (default paired)")
    c.add_argument("--field", dest="fields", action="append", default=None, metavar="KEY", help=fields)
    c.add_argument(
        "--per-task",
        default=None,
        metavar="KEY",
        help=f"the per-task field paired task by task (default {PER_TASK_FIELD} where every record of "
        f"both families has it and the seeds match); 'none' to skip",
    )
    c.add_argument(
        "--headline",
        action="store_true",
        help="make the first pair's gap in value the record's value (default: the headline it had, "
        "else its first comparison)",
    )
    c.set_defaults(func=_run_paired)
    for q in (s, c):
        q.add_argument(
            "--results",
            type=Path,
            default=Path("results"),
            help="where to look for the families' folder when --record is not given (default results)",
        )


PER_TASK_FIELD = "per_task_returns"  # meta-RL: (tasks, steps + 1) returns on the 40 test tasks
LISTED = ("iterations", "parameters", "step_size", "later_step_size", "step_sizes_per_horizon")


def _record_dir(args: argparse.Namespace, family: str) -> Path:
    """--record, or the one folder under --results holding ``family``'s records."""
    from icml17.core.config import ConfigError
    from icml17.core.seeds import family_paths

    if args.record is not None:
        return args.record
    folders = sorted(d for d in args.results.iterdir() if d.is_dir()) if args.results.is_dir() else []
    found = [d for d in folders if family_paths(d, family)]
    if len(found) != 1:
        raise ConfigError(
            f"{'no folder' if not found else 'several folders'} under {args.results} "
            f"hold{'s' if not found else ''} records of {family!r}: pass --record DIR"
        )
    return found[0]


def _fields(args: argparse.Namespace, families: list) -> list[str]:
    """--field, or value and the summary fields every record of ``families`` carries."""
    from icml17.pages import SUMMARY_FIELDS

    if args.fields:
        return list(dict.fromkeys(["value", *args.fields]))
    return [key for key in SUMMARY_FIELDS if key == "value" or all(f.has(key) for f in families)]


def _run_seeds(args: argparse.Namespace) -> int:
    from icml17.cli_args import command_line
    from icml17.core.config import ConfigError
    from icml17.core.seeds import load_family, summarise, update_summary

    if len(args.families) > 1 and args.name is None:
        raise ConfigError("several families go into one summary record: name it with --name")
    directory = _record_dir(args, args.families[0])
    families = [load_family(directory, name) for name in dict.fromkeys(args.families)]
    parts = {f.name: summarise(f, _fields(args, [f]), LISTED) for f in families}
    for name, part in parts.items():
        for key, stats in part["fields"].items():
            print(
                f"{name} {key} over seeds {part['seeds']}: mean {stats['mean']} (min {stats['min']}, "
                f"max {stats['max']})"
            )
    path = directory / f"{args.name or args.families[0] + '-seeds'}.json"
    print(f"wrote {update_summary(path, directory, command_line(args), families=parts, keep=args.keep)}")
    return 0


def _run_paired(args: argparse.Namespace) -> int:
    from icml17.cli_args import command_line
    from icml17.core.config import ConfigError
    from icml17.core.seeds import compare, comparison_key, load_family, update_summary

    if len(args.pairs) % 2:
        raise ConfigError(f"families come in pairs (A B: A minus B), got {len(args.pairs)} names")
    directory = _record_dir(args, args.pairs[0])
    parts = {}
    for a_name, b_name in zip(args.pairs[::2], args.pairs[1::2]):
        a, b = load_family(directory, a_name), load_family(directory, b_name)
        per_task = args.per_task
        if per_task is None:  # by default, wherever it can be done
            pairable = a.has(PER_TASK_FIELD) and b.has(PER_TASK_FIELD) and a.seeds == b.seeds
            per_task = PER_TASK_FIELD if pairable else "none"
        part = compare(a, b, _fields(args, [a, b]), None if per_task == "none" else per_task)
        parts[comparison_key(a_name, b_name)] = part
        for key, stats in part["fields"].items():
            print(
                f"{a_name} - {b_name} {key}: gap of means {stats['gap_of_means']}, {a_name} better in "
                f"{stats['pairings_ahead']} of {stats['pairings']} seed pairings"
            )
        if "task_paired" in part:
            tp = part["task_paired"]
            print(
                f"{a_name} - {b_name} per task ({tp['tasks']} tasks, seed pairs {tp['seed_pairs']}): "
                f"{tp['mean']} +- {tp['ci95']}"
            )
    headline = next(iter(parts)) if args.headline else None
    path = directory / f"{args.name}.json"
    print(f"wrote {update_summary(path, directory, command_line(args), comparisons=parts, headline=headline)}")
    return 0
