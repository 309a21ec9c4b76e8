"""Machine-readable result records, and the Markdown built from them: every number in README and on the
documentation's results pages comes from one of these files.

Layout: ``results/<system>/<experiment>.json`` for reproductions (a rerun with another seed under
``results/<system>/seeds/<experiment>-seedN.json``) and ``results/bench/<name>.json`` for speed benchmarks; each
record names the hardware, torch version, seed and the command that produced it. :func:`check_record` is the
schema; :func:`headline_table`, :func:`results_page` and :func:`bench_page` render records for ``icml17 results``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def hardware_description(device: str | torch.device = "cpu") -> str:
    """e.g. ``'2-core CPU (Intel Xeon ...)'`` or ``'NVIDIA H100 80GB HBM3 (CUDA 12.6)'``."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    if device.type == "mps":
        return f"Apple GPU (MPS) beside a {os.cpu_count()}-core CPU"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core CPU ({model})"


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (None where the OS has none): timings mean little without it."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def environment(device: str | torch.device = "cpu") -> dict[str, Any]:
    """The fields every record carries about where and how it was computed."""
    env = {"hardware": hardware_description(device), "device": str(torch.device(device)),
           "torch": torch.__version__.split("+")[0], "threads": torch.get_num_threads(),
           "date": _dt.date.today().isoformat(), "load_average": load_average()}
    if torch.device(device).type == "cuda":  # both flags: PyTorch's default has TF32 convolutions on, matmuls off
        env["tf32"] = {"matmul": bool(torch.backends.cuda.matmul.allow_tf32),
                       "cudnn_conv": bool(torch.backends.cudnn.allow_tf32)}
    return env


# The schema of an experiment record: every number in README and the results pages comes from a file like this.
REQUIRED = {"system": str, "experiment": str, "metric": str, "command": str}
OPTIONAL_NUMBERS = ("ci95", "paper", "paper_ci95", "n_eval", "iterations", "wall_time_s")


def check_record(record: dict[str, Any]) -> None:
    """Refuse a record that could not be read back into README: missing fields, a non-finite or missing
    value, a published number without the publication it comes from."""
    for key, kind in REQUIRED.items():
        if not isinstance(record.get(key), kind) or not record[key]:
            raise ValueError(f"result record lacks {key!r} (a non-empty {kind.__name__}): {record}")
    value = record.get("value")
    if isinstance(value, bool):
        pass
    elif not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"result record {record['experiment']!r} has no finite value: {value!r}")
    for key in OPTIONAL_NUMBERS:
        v = record.get(key)
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v)):
            raise ValueError(f"result record {record['experiment']!r}: {key}={v!r} is not a finite number")
    if record.get("paper") is not None and not record.get("paper_source"):
        raise ValueError(f"result record {record['experiment']!r} quotes a published number without "
                         f"'paper_source' (which paper, which table)")
    if "seed" not in record:
        raise ValueError(f"result record {record['experiment']!r} lacks 'seed' (None if not seeded)")


def write_record(path: str | Path, record: dict[str, Any], device: str | torch.device = "cpu") -> Path:
    """Write ``record`` plus the environment fields (not overriding ones the caller set) as pretty JSON.

    Experiment records (those with an ``experiment`` key) are checked against the schema first.
    """
    if "experiment" in record:
        check_record(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _warn_if_smaller(path, record)
    full = {**environment(device), **record}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(full, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def _warn_if_smaller(path: Path, record: dict[str, Any]) -> None:
    """Say so (stderr) when a record replaces one measured on more examples or a longer training: a short check
    run pointed at results/ would otherwise overwrite a result silently. The write goes ahead (git keeps both)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    smaller = [f"{key} {old[key]} -> {record[key]}" for key in ("n_eval", "iterations")
               if isinstance(old.get(key), (int, float)) and isinstance(record.get(key), (int, float))
               and record[key] < old[key]]
    if smaller:
        print(f"warning: {path} replaced by a smaller measurement ({', '.join(smaller)}); `git checkout {path}` "
              f"restores the committed one", file=sys.stderr)


def read_records(root: str | Path, *, quick: bool = False) -> list[dict[str, Any]]:
    """Every JSON record under ``root`` (recursively, in path order). Records of a ``--quick`` run (tiny sizes, for
    tests) are left out unless ``quick``: they are never results, wherever they were written."""
    records = [json.loads(p.read_text()) for p in sorted(Path(root).rglob("*.json"))]
    return records if quick else [r for r in records if not r.get("quick")]


def _fmt(value: Any, ci: Any = None, metric: str = "") -> str:
    if value is None:
        return "-"
    if metric == "accuracy":
        s = f"{100 * value:.1f}%"
        return s + (f" ± {100 * ci:.1f}" if ci is not None else "")
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
        return " (nats/sub-pixel: {})".format(", ".join(f"{k} {v['nats_per_subpixel']:.4g}"
                                                        for k, v in r["by_split"].items()))
    return ""


def _paper_curve(r: dict[str, Any]) -> str:
    if len(r.get("paper_returns") or ()) > 1:
        returns = r["paper_returns"]
        return " (steps 0-{}: {})".format(len(returns) - 1, ", ".join(f"{v:.1f}" for v in returns))
    if "paper_splits" in r:
        return " (val; test seen {test_seen:.4g}, novel {test_novel:.4g})".format(**r["paper_splits"])
    return ""


def results_table(records: list[dict[str, Any]]) -> str:
    """Markdown table, paper versus ours, one row per experiment record (benchmarks are skipped)."""
    rows = ["| system | experiment | metric | ours | published (source) | n eval | iterations | wall time | hardware "
            "| command |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in records if "experiment" in r), key=lambda r: (r["system"], r["experiment"])):
        wall = r.get("wall_time_s")
        row = "| {system} | {experiment} | {metric} | {ours} | {paper} | {n} | {it} | {wall} | {hw} | `{cmd}` |"
        rows.append(row.format(
            system=r["system"], experiment=r["experiment"], metric=r.get("metric", "-"),
            ours=_fmt(r.get("value"), r.get("ci95"), r.get("metric", "")) + _curve(r),
            paper=_fmt(r.get("paper"), r.get("paper_ci95"), r.get("metric", ""))
            + (_paper_curve(r) if r.get("paper") is not None else "")
            + (f" ({r['paper_source']})" if r.get("paper") is not None and r.get("paper_source") else ""),
            n=r.get("n_eval", "-"), it=r.get("iterations", "-"), wall=f"{wall / 60:.1f} min" if wall else "-",
            hw=r.get("hardware", "-"), cmd=r.get("command", "-")))
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
            rows.append((case["case"], f"{case['ours_ms']:.4g}", name, ms_text,
                         f"{case.get('speedup', {}).get(name, ms / case['ours_ms']):.1f}x", mem_text))
        for v in case.get("variants", []):  # the same method run another way
            base = v["baseline"]
            rows.append((f"{case['case']}, {v['label']}", f"{v['ours_ms']:.4g}", base,
                         f"{case['baselines_ms'][base]:.4g}", f"{v['speedup']:.1f}x",
                         f"{v['peak_mem_mb']:.0f} / {mem.get(base, float('nan')):.0f}"))
    return rows


BENCH_COLUMNS = ("case", "ours (ms)", "baseline", "baseline (ms)", "speedup", "peak memory ours / baseline (MB)")


def bench_table(records: list[dict[str, Any]]) -> str:
    """Markdown table of speed benchmarks: ours versus each baseline, measured in the same run."""
    rows = ["| benchmark | " + " | ".join(BENCH_COLUMNS) + " | hardware |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in records if "benchmark" in r), key=lambda r: r["benchmark"]):
        rows += [f"| {r['benchmark']} | " + " | ".join(row) + f" | {r.get('hardware', '-')} |"
                 for row in _bench_rows(r)]
    return "\n".join(rows)


SEED_SUFFIX = re.compile(r"-seed(\d+)$")


def family(experiment: str) -> str:
    """The family of an experiment: its name without a trailing ``-seedN`` (``point-nav-seed2`` -> ``point-nav``)."""
    return SEED_SUFFIX.sub("", experiment)


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
    cells = (name, _cell(metric or "-"), _cell(_fmt(r.get("value"), r.get("ci95"), metric) + _curve(r)),
             _cell(published), _cell(r.get("n_eval", "-")), _cell(r.get("iterations", "-")),
             f"{wall / 60:.1f} min" if wall else "-", _cell(r.get("hardware", "-")))
    return "| " + " | ".join(cells) + " |"


def _page_table(records: Sequence[dict[str, Any]], link: bool = False) -> list[str]:
    return (["| " + " | ".join(PAGE_COLUMNS) + " |", "|" + "---|" * len(PAGE_COLUMNS)]
            + [_page_row(r, link) for r in records])


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
    lines = [f"{len(experiments)} records in {len(families)} families; a family is an experiment and its reruns "
             f"with other seeds (`-seedN`).", ""]
    for name, members in families.items():
        main = [r for r in members if not SEED_SUFFIX.search(r["experiment"])]
        seeds = sorted((r for r in members if SEED_SUFFIX.search(r["experiment"])),
                       key=lambda r: int(SEED_SUFFIX.search(r["experiment"]).group(1)))
        lines += [f"### {name} {{ #{anchor(name)} }}", ""]
        if main:
            lines += [*_page_table(main), ""]
        if seeds:
            numbers = ", ".join(SEED_SUFFIX.search(r["experiment"]).group(1) for r in seeds)
            lines += [f'??? note "Seed{"s" if len(seeds) > 1 else ""} {numbers} ({len(seeds)} '
                      f'record{"s" if len(seeds) > 1 else ""})"', "", *_indent(_page_table(seeds)), ""]
        sources = _sources(members)
        lines += [*sources, *([""] if sources else []), '??? example "Commands"', ""]
        for r in main + seeds:
            lines += _indent([f"`{r['experiment']}`:", "", "```bash", r.get("command", "-"), "```", ""])
    return "\n".join(lines).rstrip() + "\n"


def bench_page(records: Sequence[dict[str, Any]]) -> str:
    """Markdown for the speed benchmarks: one section per record (a benchmark run), ours against each baseline
    measured in the same run, then the run's hardware, threads, load average, date, note and command."""
    lines: list[str] = []
    runs = sorted((r for r in records if "benchmark" in r), key=lambda r: (r["benchmark"], r.get("threads") or 0))
    for r in runs:
        threads = r.get("threads")
        title = r["benchmark"] + (f", {threads} threads" if threads and threads > 1 else "")
        lines += [f"### {title} {{ #bench-{anchor(title)} }}", "",
                  "| " + " | ".join(BENCH_COLUMNS) + " |", "|" + "---|" * len(BENCH_COLUMNS),
                  *("| " + " | ".join(_cell(c) for c in row) + " |" for row in _bench_rows(r)), ""]
        facts = [f"{r.get('hardware', '-')}", f"{threads} thread{'s' if threads != 1 else ''}" if threads else "",
                 f"load average {r['load_average']}" if r.get("load_average") else "", r.get("date", "")]
        lines += [_cell(", ".join(f for f in facts if f)) + ".", ""]
        if r.get("note"):
            lines += [_cell(r["note"]), ""]
        lines += ["```bash", r.get("command", "-"), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"
HEADLINE_START, HEADLINE_END = "<!-- headline:start -->", "<!-- headline:end -->"
GENERATED = "_Generated by `icml17 results` from `results/**/*.json`; do not edit by hand._"


def update_block(path: str | Path, block: str, *, start: str = MARK_START, end: str = MARK_END,
                 new_page: str | None = None) -> bool:
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
