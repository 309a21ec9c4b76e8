"""The Markdown of the documentation's results pages and speed tables, rendered from result records.

Every number on a results page comes from a record (:mod:`icml17.core.results`); this module knows which record
fields a system uses beside ``value`` (the returns after 0..k policy-gradient steps of meta-RL, the three splits of
a video record, the per-split likelihoods of a conditional model) and how benchmark records list their cases.
``icml17 results`` (:mod:`icml17.tables`) writes the pages with :func:`update_block`, which rewrites only the
generated text between a page's markers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from icml17.core.seeds import SEED_SUFFIX, family

# The record fields a page shows beside ``value``, and a seed summary summarises by default (icml17 results seeds):
# meta-RL's returns after 0..k steps, a video model's test splits, a conditional model's per-split likelihoods.
SUMMARY_FIELDS = (
    "value",
    "returns",
    "test_seen",
    "test_novel",
    *(f"by_split.{split}.nats_per_subpixel" for split in ("train", "val", "test")),
)


def _fmt(value: Any, ci: Any = None, metric: str = "") -> str:
    if value is None:
        return "-"
    if metric == "accuracy":
        s = f"{100 * value:.1f}%"
        return s + (f" ± {100 * ci:.1f}" if ci is not None else "")
    if ci is not None and isinstance(value, (int, float)) and ci > 0:
        # the value to the interval's second significant digit: "-12.4 ± 2.4", not "-12.42 ± 2.4"
        decimals = max(0, 1 - math.floor(math.log10(ci)))
        return f"{value:.{decimals}f} ± {ci:.{decimals}f}"
    s = f"{value:.4g}" if isinstance(value, float) else str(value)
    return s + (f" ± {ci:.2g}" if ci is not None else "")


def _curve(r: dict[str, Any]) -> str:
    """The extra numbers some records carry beside ``value``: returns after 0..k policy-gradient steps (meta-RL),
    the three splits of a video record."""
    if len(r.get("returns") or ()) > 1:
        return " (steps 0-{}: {})".format(len(r["returns"]) - 1, ", ".join(f"{v:.1f}" for v in r["returns"]))
    if "test_novel" in r:
        return f" (val; test seen {r['test_seen']:.4g}, novel {r['test_novel']:.4g})"
    if "by_split" in r:
        return " (nats/sub-pixel: {})".format(
            ", ".join(f"{k} {v['nats_per_subpixel']:.4g}" for k, v in r["by_split"].items())
        )
    return ""


def _paper_curve(r: dict[str, Any]) -> str:
    if len(r.get("paper_returns") or ()) > 1:
        returns = r["paper_returns"]
        return " (steps 0-{}: {})".format(len(returns) - 1, ", ".join(f"{v:.1f}" for v in returns))
    if "paper_splits" in r:
        return " (val; test seen {test_seen:.4g}, novel {test_novel:.4g})".format(**r["paper_splits"])
    return ""


def shown_command(record: dict[str, Any]) -> str:
    """A record's command as a reader can run it: the data folder of the machine that ran it becomes ``DATA``."""
    return re.sub(r"(--data-dir[= ])(?:\.\./)+shared/data\b", r"\1DATA", record.get("command", "-"))


def results_table(records: list[dict[str, Any]]) -> str:
    """Markdown table, paper versus ours, one row per experiment record (benchmarks are skipped)."""
    rows = [
        (
            "| system | experiment | metric | ours | published (source) | n eval | iterations | wall time | hardware "
            "| command |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted((r for r in records if "experiment" in r), key=lambda r: (r["system"], r["experiment"])):
        wall = r.get("wall_time_s")
        row = "| {system} | {experiment} | {metric} | {ours} | {paper} | {n} | {it} | {wall} | {hw} | `{cmd}` |"
        rows.append(
            row.format(
                system=r["system"],
                experiment=r["experiment"],
                metric=r.get("metric", "-"),
                ours=_fmt(r.get("value"), r.get("ci95"), r.get("metric", "")) + _curve(r),
                paper=_fmt(r.get("paper"), r.get("paper_ci95"), r.get("metric", ""))
                + (_paper_curve(r) if r.get("paper") is not None else "")
                + (f" ({r['paper_source']})" if r.get("paper") is not None and r.get("paper_source") else ""),
                n=r.get("n_eval", "-"),
                it=r.get("iterations", "-"),
                wall=f"{wall / 60:.1f} min" if wall else "-",
                hw=r.get("hardware", "-"),
                cmd=shown_command(r),
            )
        )
    return "\n".join(rows)


def _bench_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    """(case, ours ms, baseline, baseline ms, speedup, peak memory) for every baseline of one benchmark record."""
    rows = []
    for case in r.get("cases", []):
        mem = case.get("peak_mem_mb", {})
        for name, ms in case.get("baselines_ms", {}).items():
            # a baseline too slow to run end to end is timed on some evaluations and scaled: say so
            n = case.get(f"{name}_s_extrapolated_from_n_evals")
            ms_text = f"{ms:.4g}" + (f" (extrapolated from {n} timed evaluations)" if n else "")
            mem_text = f"{mem['ours']:.0f} / {mem[name]:.0f}" if "ours" in mem and name in mem else "-"
            rows.append(
                (
                    case["case"],
                    f"{case['ours_ms']:.4g}",
                    name,
                    ms_text,
                    f"{case.get('speedup', {}).get(name, ms / case['ours_ms']):.1f}x",
                    mem_text,
                )
            )
        for v in case.get("variants", []):  # the same method run another way
            base = v["baseline"]
            rows.append(
                (
                    f"{case['case']}, {v['label']}",
                    f"{v['ours_ms']:.4g}",
                    base,
                    f"{case['baselines_ms'][base]:.4g}",
                    f"{v['speedup']:.1f}x",
                    f"{v['peak_mem_mb']:.0f} / {mem.get(base, float('nan')):.0f}",
                )
            )
    return rows


BENCH_COLUMNS = ("case", "ours (ms)", "baseline", "baseline (ms)", "speedup", "peak memory ours / baseline (MB)")


def bench_table(records: list[dict[str, Any]]) -> str:
    """Markdown table of speed benchmarks: ours versus each baseline, measured in the same run."""
    rows = ["| benchmark | " + " | ".join(BENCH_COLUMNS) + " | hardware |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in records if "benchmark" in r), key=lambda r: r["benchmark"]):
        rows += [
            f"| {r['benchmark']} | " + " | ".join(row) + f" | {r.get('hardware', '-')} |" for row in _bench_rows(r)
        ]
    return "\n".join(rows)


def _cell(text: Any) -> str:
    """Text made safe for a Markdown table cell: no column breaks, no characters read as HTML."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def anchor(name: str) -> str:
    """The HTML id of an experiment family's heading on a results page."""
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")


PAGE_COLUMNS = ("experiment", "metric", "ours", "published", "n eval", "iterations", "wall time", "hardware")


def _page_row(r: dict[str, Any], link: bool = False) -> str:
    metric = r.get("metric", "")
    published = "-"
    if r.get("paper") is not None:
        published = _fmt(r["paper"], r.get("paper_ci95"), metric) + _paper_curve(r)
    wall = r.get("wall_time_s")
    name = f"[{_cell(r['experiment'])}](#{anchor(family(r['experiment']))})" if link else _cell(r["experiment"])
    cells = (
        name,
        _cell(metric or "-"),
        _cell(_fmt(r.get("value"), r.get("ci95"), metric) + _curve(r)),
        _cell(published),
        _cell(r.get("n_eval", "-")),
        _cell(r.get("iterations", "-")),
        f"{wall / 60:.1f} min" if wall else "-",
        _cell(r.get("hardware", "-")),
    )
    return "| " + " | ".join(cells) + " |"


def _page_table(records: Sequence[dict[str, Any]], link: bool = False) -> list[str]:
    return ["| " + " | ".join(PAGE_COLUMNS) + " |", "|" + "---|" * len(PAGE_COLUMNS)] + [
        _page_row(r, link) for r in records
    ]


def _sources(records: Sequence[dict[str, Any]]) -> list[str]:
    seen = dict.fromkeys(r["paper_source"] for r in records if r.get("paper") is not None and r.get("paper_source"))
    if len(seen) == 1:
        return [f"Published numbers: {_cell(next(iter(seen)))}."]
    return ["Published numbers, from:", "", *(f"- {_cell(s)}" for s in seen)] if seen else []


def _indent(lines: Sequence[str]) -> list[str]:
    return [("    " + line) if line else "" for line in lines]


def headline_table(records: Sequence[dict[str, Any]], headline: Sequence[str]) -> str:
    """Markdown table of the ``headline`` experiments, in that order, each linking to its family's section on the
    page that :func:`results_page` writes; the published numbers' sources below it.

    Raises:
        ValueError: a headline experiment has no record.
    """
    experiments = {r["experiment"]: r for r in records if "experiment" in r}
    missing = [name for name in headline if name not in experiments]
    if missing:
        raise ValueError(f"headline experiment(s) without a record: {', '.join(missing)}")
    chosen = [experiments[name] for name in headline]
    return "\n".join([*_page_table(chosen, link=True), "", *_sources(chosen)]).rstrip() + "\n"


def results_page(records: Sequence[dict[str, Any]]) -> str:
    """Markdown of every experiment record, family by family (an experiment and its ``-seedN`` reruns) under a
    heading of its own: the family's record in a table, its per-seed reruns folded in a collapsible block, the
    commands that wrote the records in another."""
    experiments = {r["experiment"]: r for r in records if "experiment" in r}
    families: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(experiments):
        families.setdefault(family(name), []).append(experiments[name])
    lines = [
        (
            f"{len(experiments)} records in {len(families)} families; a family is an experiment and its reruns "
            f"with other seeds (`-seedN`)."
        ),
        "",
    ]
    for name, members in families.items():
        main = [r for r in members if not SEED_SUFFIX.search(r["experiment"])]
        seeds = sorted(
            (r for r in members if SEED_SUFFIX.search(r["experiment"])),
            key=lambda r: int(SEED_SUFFIX.search(r["experiment"]).group(1)),
        )
        lines += [f"### {name} {{ #{anchor(name)} }}", ""]
        if main:
            lines += [*_page_table(main), ""]
        if seeds:
            numbers = ", ".join(SEED_SUFFIX.search(r["experiment"]).group(1) for r in seeds)
            lines += [
                (
                    f'??? note "Seed{"s" if len(seeds) > 1 else ""} {numbers} ({len(seeds)} '
                    f'record{"s" if len(seeds) > 1 else ""})"'
                ),
                "",
                *_indent(_page_table(seeds)),
                "",
            ]
        sources = _sources(members)
        lines += [*sources, *([""] if sources else []), '??? example "Commands (DATA: the data folder)"', ""]
        for r in main + seeds:
            lines += _indent([f"`{r['experiment']}`:", "", "```bash", shown_command(r), "```", ""])
    return "\n".join(lines).rstrip() + "\n"


def bench_page(records: Sequence[dict[str, Any]]) -> str:
    """Markdown for the speed benchmarks: one section per record (a benchmark run), ours against each baseline
    measured in the same run, then the run's hardware, threads, load average, date, note and command."""
    lines: list[str] = []
    runs = sorted((r for r in records if "benchmark" in r), key=lambda r: (r["benchmark"], r.get("threads") or 0))
    for r in runs:
        threads = r.get("threads")
        title = r["benchmark"] + (f", {threads} threads" if threads and threads > 1 else "")
        lines += [
            f"### {title} {{ #bench-{anchor(title)} }}",
            "",
            "| " + " | ".join(BENCH_COLUMNS) + " |",
            "|" + "---|" * len(BENCH_COLUMNS),
            *("| " + " | ".join(_cell(c) for c in row) + " |" for row in _bench_rows(r)),
            "",
        ]
        facts = [
            f"{r.get('hardware', '-')}",
            f"{threads} thread{'s' if threads != 1 else ''}" if threads else "",
            f"load average {r['load_average']}" if r.get("load_average") else "",
            r.get("date", ""),
        ]
        lines += [_cell(", ".join(f for f in facts if f)) + ".", ""]
        if r.get("note"):
            lines += [_cell(r["note"]), ""]
        lines += ["```bash", shown_command(r), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"
HEADLINE_START, HEADLINE_END = "<!-- headline:start -->", "<!-- headline:end -->"
GENERATED = "_Generated by `icml17 results` from `results/**/*.json`; do not edit by hand._"


def update_block(
    path: str | Path, block: str, *, start: str = MARK_START, end: str = MARK_END, new_page: str | None = None
) -> bool:
    """Replace the text between ``start`` and ``end`` in ``path`` by ``block``; returns whether the file changed.

    A missing file is created from ``new_page`` (a heading and an introduction) followed by the markers when
    ``new_page`` is given.

    Raises:
        ValueError: the file exists but lacks the markers.
        FileNotFoundError: the file is missing and no ``new_page`` was given.
    """
    path = Path(path)
    if not path.exists() and new_page is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"{new_page.rstrip()}\n\n{start}\n{end}\n"
    else:
        text = path.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{path} lacks the markers {start} ... {end}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{start}\n{block.rstrip()}\n{end}{tail}"
    changed = not path.exists() or new != path.read_text()
    if changed:
        path.write_text(new)
    return changed
