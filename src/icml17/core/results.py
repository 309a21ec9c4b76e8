"""Machine-readable result records: every number in README comes from one of these files.

Layout and fields follow DESIGN.md: ``results/<system>/<experiment>.json`` for reproductions and
``results/bench/<name>.json`` for speed benchmarks; each record names the hardware, torch version, seed and the
command that produced it.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
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
    if torch.device(device).type == "cuda":
        env["tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return env


# The schema of an experiment record (DESIGN.md): every number in README comes from a file like this.
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


def read_records(root: str | Path) -> list[dict[str, Any]]:
    root = Path(root)
    return [json.loads(p.read_text()) for p in sorted(root.rglob("*.json"))]


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
    if "returns" in r:
        return " (steps 0-{}: {})".format(len(r["returns"]) - 1, ", ".join(f"{v:.1f}" for v in r["returns"]))
    if "test_novel" in r:
        return f" (val; test seen {r['test_seen']:.4g}, novel {r['test_novel']:.4g})"
    if "by_split" in r:
        return " (nats/sub-pixel: {})".format(", ".join(f"{k} {v['nats_per_subpixel']:.4g}"
                                                        for k, v in r["by_split"].items()))
    return ""


def _paper_curve(r: dict[str, Any]) -> str:
    if "paper_returns" in r:
        return " (steps 0-{}: {})".format(len(r["paper_returns"]) - 1, ", ".join(f"{v:.1f}" for v in r["paper_returns"]))
    if "paper_splits" in r:
        return " (val; test seen {test_seen:.4g}, novel {test_novel:.4g})".format(**r["paper_splits"])
    return ""


def results_table(records: list[dict[str, Any]]) -> str:
    """Markdown table, paper versus ours, one row per experiment record (benchmarks are skipped)."""
    rows = ["| system | experiment | metric | ours | published (source) | n eval | iterations | wall time | hardware "
            "| command |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in records if "experiment" in r), key=lambda r: (r["system"], r["experiment"])):
        wall = r.get("wall_time_s")
        rows.append("| {system} | {experiment} | {metric} | {ours} | {paper} | {n} | {it} | {wall} | {hw} | `{cmd}` |".format(
            system=r["system"], experiment=r["experiment"], metric=r.get("metric", "-"),
            ours=_fmt(r.get("value"), r.get("ci95"), r.get("metric", "")) + _curve(r),
            paper=_fmt(r.get("paper"), r.get("paper_ci95"), r.get("metric", ""))
            + (_paper_curve(r) if r.get("paper") is not None else "")
            + (f" ({r['paper_source']})" if r.get("paper") is not None and r.get("paper_source") else ""),
            n=r.get("n_eval", "-"), it=r.get("iterations", "-"), wall=f"{wall / 60:.1f} min" if wall else "-",
            hw=r.get("hardware", "-"), cmd=r.get("command", "-")))
    return "\n".join(rows)


def bench_table(records: list[dict[str, Any]]) -> str:
    """Markdown table of speed benchmarks: ours versus each baseline, measured in the same run."""
    rows = ["| benchmark | case | ours (ms) | baseline | baseline (ms) | speedup | peak memory ours / baseline (MB) "
            "| hardware |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in records if "benchmark" in r), key=lambda r: r["benchmark"]):
        for case in r.get("cases", []):
            mem = case.get("peak_mem_mb", {})
            for name, ms in case.get("baselines_ms", {}).items():
                # a baseline too slow to run end to end is timed on some evaluations and scaled: say so
                n = case.get(f"{name}_s_extrapolated_from_n_evals")
                ms_text = f"{ms:.4g}" + (f" (extrapolated from {n} timed evaluations)" if n else "")
                mem_text = f"{mem['ours']:.0f} / {mem[name]:.0f}" if "ours" in mem and name in mem else "-"
                rows.append(f"| {r['benchmark']} | {case['case']} | {case['ours_ms']:.4g} | {name} | {ms_text} | "
                            f"{case.get('speedup', {}).get(name, ms / case['ours_ms']):.1f}x | {mem_text} | "
                            f"{r.get('hardware', '-')} |")
            for v in case.get("variants", []):  # the same method run another way
                base = v["baseline"]
                rows.append(f"| {r['benchmark']} | {case['case']}, {v['label']} | {v['ours_ms']:.4g} | {base} | "
                            f"{case['baselines_ms'][base]:.4g} | {v['speedup']:.1f}x | "
                            f"{v['peak_mem_mb']:.0f} / {mem.get(base, float('nan')):.0f} | {r.get('hardware', '-')} |")
    return "\n".join(rows)


MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"


def update_readme(readme: str | Path, results_root: str | Path) -> str:
    """Rebuild the README's results block (between the markers) from the records under ``results_root``."""
    readme = Path(readme)
    # a --quick run's record (tiny sizes, for tests) is never a result, wherever it was written
    records = [r for r in read_records(results_root) if not r.get("quick")]
    block = (f"{MARK_START}\n_Generated by `icml17 results` from `results/**/*.json`; do not edit by hand._\n\n"
             f"### Reproductions\n\n{results_table(records)}\n\n### Speed (ratios measured side by side in one run)"
             f"\n\n{bench_table(records)}\n{MARK_END}")
    text = readme.read_text()
    if MARK_START not in text or MARK_END not in text:
        raise ValueError(f"{readme} lacks the markers {MARK_START} ... {MARK_END}")
    head, rest = text.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    readme.write_text(head + block + tail)
    return block
