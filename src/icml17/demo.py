"""``icml17 demo``: a few minutes of each system at small scale, written up as a report with plots.

The demo runs on any machine: with no dataset at all it still shows every system (MAML on synthetic sinusoid
tasks, PixelCNN and sharpness on scikit-learn's bundled digits) and says how to get the real data.
"""

from __future__ import annotations

import argparse
import importlib
import time
import traceback
from pathlib import Path

import numpy as np

from icml17.core.report import Report, image_grid

SYSTEMS = ("maml", "pixelcnn", "sharpness")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a few minutes of each system and write a report under runs/demo/")
    p.add_argument("--run-dir", type=Path, default=Path("runs/demo"), help="where the report goes")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="datasets folder (default: $ICML17_DATA or ~/.cache/icml17/data)")
    p.add_argument("--quick", action="store_true", help="shorter trainings (for tests)")
    p.add_argument("--only", nargs="*", choices=SYSTEMS, default=list(SYSTEMS), help="run only these systems")
    p.set_defaults(func=lambda a: run_demo(a.run_dir, a.data_dir, quick=a.quick, systems=a.only))


def _data_section(report: Report, data_dir: Path | None) -> None:
    from icml17.data import describe_datasets, load_mnist, load_omniglot, resolve_data_dir

    root = resolve_data_dir(data_dir)
    rows = describe_datasets(root)
    lines = [f"Data folder: `{root}`", ""]
    for r in rows:
        lines.append(f"- {r['name']}: " + (r.get("summary") or r.get("how_to_get", "")))
    images = []
    found = {r["name"] for r in rows if r.get("found")}
    if "omniglot" in found:
        om = load_omniglot(root, image_size=28)
        pick = np.random.default_rng(0).choice(len(om.images), 32, replace=False)
        images.append((image_grid(om.images[pick, 0], report.root / "data" / "omniglot.png", nrow=8),
                       "Omniglot: one drawing of 32 random characters (28x28)"))
    if "mnist" in found:
        x, _ = load_mnist(root, "train")
        images.append((image_grid(x[:32], report.root / "data" / "mnist.png", nrow=8),
                       "MNIST: the first 32 training digits"))
    report.add("Datasets", "\n".join(lines), images)


def run_demo(run_dir: Path, data_dir: Path | None, *, quick: bool = False,
             systems: list[str] | tuple[str, ...] = SYSTEMS) -> int:
    run_dir = Path(run_dir)
    report = Report(run_dir, title="icml17 demo")
    failures = []
    _data_section(report, data_dir)
    for system in systems:
        t0 = time.perf_counter()
        print(f"[demo] {system} ...", flush=True)
        try:
            module = importlib.import_module(f"icml17.{system}.commands")
            module.demo_section(report, run_dir / system, data_dir, quick)
        except Exception:  # the report says which part failed; the exit status says so too
            failures.append(system)
            report.add(f"{system}: FAILED", traceback.format_exc())
        print(f"[demo] {system} done in {time.perf_counter() - t0:.0f}s", flush=True)
        report.write()  # keep what is done so far if a later part is interrupted
    path = report.write()
    print(f"[demo] report: {path.resolve()} (and report.html beside it)")
    if failures:
        print(f"[demo] these parts failed: {failures}; see the report")
        return 1
    return 0
