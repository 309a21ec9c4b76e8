"""``icml17 results``: write the documentation's results pages and speed tables from the committed JSON records,
and README's table of the shipped weights from ``icml17.weights``'s manifest and the records they reproduce.

The pages are ``docs/results/<system>.md`` (one per system: the headline experiments below in a table of their
own, then every record by family), the speed section of ``docs/benchmarks.md`` and the weights tables of README and
``docs/index.md``. Only the text between a page's markers (HTML comments) is rewritten; the prose around it is
kept. A page that does not exist yet is created with a short heading.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WEIGHTS_START, WEIGHTS_END = "<!-- weights:start -->", "<!-- weights:end -->"

# system -> (page title, the experiments shown first on its page, in this order)
PAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "maml": ("MAML: results", (
        "omniglot-5w1s", "omniglot-5w5s", "sinusoid-k5-step1", "sinusoid-k10-step1", "sinusoid-k20-step1",
        "sinusoid-k10-step10", "sinusoid-k10-step1-pretrained", "sinusoid-oracle")),
    "maml-rl": ("MAML-RL: results", (
        "point-nav", "point-nav-pretrained", "point-nav-random", "point-nav-oracle", "cheetah-vel",
        "cheetah-vel-pretrained", "cheetah-vel-random", "cheetah-dir", "ant-vel", "ant-vel-pretrained", "ant-dir")),
    "pixelcnn": ("Multiscale PixelCNN: results", (
        "mnist-full", "mnist-typeA", "mnist-typeB", "cifar10-subset-full", "cifar10-subset-typeA",
        "cifar10-subset-typeB", "binarized-mnist-typeA-20k", "table1-mnist-class-full", "table1-mnist-class-typeB",
        "table1-mnist-text-spatial-full", "table1-mnist-text-spatial-typeB", "video-o_t-1500", "video-o_tlogn-1500",
        "video-vpn-1500", "video-convlstm-1500")),
    "sharpness": ("Sharpness: results", (
        "alpha-scaling", "theorem6", "radial-ranking", "whitening", "keskar-gap", "keskar-f1")),
}
BENCH_PAGE = ("benchmarks.md", "Benchmarks")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="write the docs' results pages and README's weights table from the records",
                       description="Rebuild the generated parts of the documentation from results/**/*.json: "
                                   "docs/results/<system>.md, the speed tables of docs/benchmarks.md, and README's "
                                   "table of the shipped weights. Run it from the repository root.")
    p.add_argument("--readme", type=Path, default=Path("README.md"),
                   help="the README whose weights table is rebuilt (default README.md: run from the repo root)")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="the folder of committed records read recursively (default results)")
    p.add_argument("--docs", type=Path, default=None,
                   help="the documentation folder whose results pages are written (default: docs beside --readme)")
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
        data = "" if name.startswith("sinusoid") else " --data-dir DATA"
        command = f"icml17 {e['system']} eval --weights {name}{data}"
        rows.append(f"| `{name}` | {e['system']} | {e.get('description', '')} | `{e['record']}` ({value}) | "
                    f"{e['bytes'] / 1024:.0f} KB | `{command}` |")
    return "\n".join(rows)


def write_pages(docs: Path, results: Path) -> list[tuple[Path, bool]]:
    """Write every results page and the benchmarks' speed tables under ``docs`` from the records under
    ``results``; returns (page, whether it changed)."""
    from icml17.core.results import (GENERATED, HEADLINE_END, HEADLINE_START, bench_page, headline_table,
                                     read_records, results_page, update_block)

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
    from icml17.core.results import update_block

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
