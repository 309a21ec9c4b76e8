"""``icml17 demo``: a tour of the three papers' systems (MAML for few-shot learning and for RL) in a few minutes,
written up as an HTML report.

Each system shows its shipped trained weights (``icml17.weights``) at work and trains briefly live, so both
what the models can do and that training works are visible. Sections run one after another; a section that
fails is marked FAILED in the report and the command exits non-zero naming it. Without datasets the demo still
runs (sinusoid tasks, PixelCNN samples, scikit-learn's digits) and says how to get the rest.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import time
import traceback
from pathlib import Path

SYSTEMS = ("maml", "maml-rl", "pixelcnn", "sharpness")  # maml-rl: the package icml17.maml.rl


def register(sub: argparse._SubParsersAction) -> None:
    from icml17 import cli_args

    # the same words as icml17.cli.COMMANDS["demo"] (that table lists commands without importing them)
    p = sub.add_parser(
        "demo", help="a tour of a few minutes: shipped trained models, short live trainings, an HTML report"
    )
    p.add_argument(
        "--run-dir",
        type=cli_args.output_dir,
        default=Path("runs/demo"),
        help="where the report goes (default runs/demo)",
    )
    cli_args.add_data_dir(p)
    cli_args.add_compute(p)
    p.add_argument("--quick", action="store_true", help="shorter live trainings and fewer tasks (for tests)")
    p.add_argument("--only", nargs="+", choices=SYSTEMS, default=list(SYSTEMS), help="run only these systems")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from icml17.cli_args import apply_compute

    device = apply_compute(args)
    return run_demo(
        args.run_dir, args.data_dir, quick=args.quick, systems=args.only, threads=torch_threads(), device=device
    )


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _log(system: str):
    def log(message: str) -> None:
        print(f"[demo] {system}: {message}", flush=True)

    return log


def _data_section(report, data_dir: Path | None) -> None:
    from icml17.data import describe_datasets, resolve_data_dir

    root = resolve_data_dir(data_dir)
    rows = describe_datasets(root)
    lines = [f"Data folder: `{root}` (from `--data-dir`, else `$ICML17_DATA`, else `~/.cache/icml17/data`).", ""]
    for r in rows:
        status = "found" if r.get("found") else r.get("status", "missing")
        lines.append(f"- **{r['name']}** ({status}): " + (r.get("summary") or r.get("how_to_get", "")))
    report.add("Datasets", "\n".join(lines))


def run_demo(
    run_dir: Path,
    data_dir: Path | None,
    *,
    quick: bool = False,
    systems: list[str] | tuple[str, ...] = SYSTEMS,
    threads: int = 1,
    device=None,
) -> int:
    import torch

    device = torch.device("cpu") if device is None else torch.device(device)
    from icml17.core.report import Report
    from icml17.core.results import hardware_description, load_average

    run_dir = Path(run_dir)
    for system in systems:  # each section writes afresh: a previous demo's files never mix with this one's
        shutil.rmtree(run_dir / system, ignore_errors=True)
    t_start, load = time.perf_counter(), load_average()
    report = Report(
        run_dir,
        title="icml17 demo",
        intro=f"Three ICML 2017 papers, run on this machine ({hardware_description(device)}, {threads} "
        f"CPU thread{'s' if threads > 1 else ''}). Shipped weights show what the trained models do; "
        f"the short live trainings show that training works here.",
    )
    _data_section(report, data_dir)
    for system in systems:
        log = _log(system)
        t0 = time.perf_counter()
        log("starting")
        try:
            module = importlib.import_module(f"icml17.{system.replace('-', '.')}.demo")
            module.demo_section(report, run_dir / system, data_dir, quick, log=log, device=device)
            report.sections[-1].seconds = time.perf_counter() - t0
            log(f"done in {time.perf_counter() - t0:.0f} s")
        except Exception as e:  # the report and the exit status say which part failed; the rest still runs
            report.add(system, "```\n" + traceback.format_exc() + "```", failed=True, seconds=time.perf_counter() - t0)
            log(f"FAILED after {time.perf_counter() - t0:.0f} s: {type(e).__name__}: {e}")
        report.write()  # keep what is done so far if a later part is interrupted
    total = time.perf_counter() - t_start
    busy = f" (load average {load[0]:g} when it started: other jobs slow it down)" if load else ""
    report.intro += f" This tour took {total:.0f} s here{busy}; each section gives its own time."
    path = report.write()
    if report.failures:
        print(f"[demo] FAILED sections: {', '.join(report.failures)} ({total:.0f} s); see {path.resolve()}")
        return 1
    print(
        f"[demo] every section ran ({len(systems)} of {len(SYSTEMS)} systems) in {total:.0f} s; "
        f"report: {path.resolve()}"
    )
    return 0
