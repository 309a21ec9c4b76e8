"""What every per-system GPU check shares: its three flags, the device check before any work, and the record."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from icml17.cli import main as icml17
from icml17.core import device as devices
from icml17.core.results import write_record


def parser(doc: str, name: str) -> argparse.ArgumentParser:
    """``--device`` (default cuda), ``--tiny`` and ``--out`` for the check that writes ``<name>-<device>.json``."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: end to end on a CPU in under a minute")
    p.add_argument("--out", type=Path, required=True, help=f"folder for {name}-<device type>.json")
    return p


def finish(p: argparse.ArgumentParser, args: argparse.Namespace, name: str, run: Callable) -> int:
    """Refuse a missing device in one line, run ``run(args) -> (record, device)``, time it, write the record;
    the exit status says whether every check passed."""
    try:
        devices.resolve(args.device)
    except devices.DeviceError as e:
        p.error(str(e))
    t0 = time.perf_counter()
    record, dev = run(args)
    record["total_seconds"] = round(time.perf_counter() - t0, 1)
    path = write_record(args.out / f"{name}-{dev.type}.json", record, device=dev)
    print(json.dumps(record, indent=1))
    print(f"wrote {path}", flush=True)
    return 0 if record["ok"] else 1


def cli(*argv) -> tuple[int, str]:
    """``icml17 ARGV`` in this process, its output echoed.

    Args:
        *argv: the command's words (anything ``str`` turns into one).

    Returns:
        The exit code and the output, stripped.
    """
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = icml17([str(a) for a in argv])
    print(out.getvalue().strip(), flush=True)
    return code, out.getvalue().strip()


def timed_train(dev: torch.device, cli: Callable, *argv) -> tuple[int, str, float]:
    """Run ``cli(*argv)`` (a training command) timed on ``dev``, its peak memory statistics reset first.

    Args:
        dev: the device the command trains on; its queue is drained before and after the clock.
        cli: the script's in-process ``icml17`` caller, returning (exit code, output).
        *argv: the command's words.

    Returns:
        The exit code, the output ``cli`` returned, and the wall-clock seconds.
    """
    if dev.type == "cuda":
        torch.empty(1, device=dev)  # the allocator must exist before its statistics are reset
        torch.cuda.reset_peak_memory_stats(dev)
    devices.synchronize(dev)
    t0 = time.perf_counter()
    code, out = cli(*argv)
    devices.synchronize(dev)
    return code, out, time.perf_counter() - t0


def metrics_log(run_dir: Path) -> list[dict]:
    """Every row of a run's ``metrics.jsonl``.

    Args:
        run_dir: the run folder.

    Returns:
        The rows, oldest first.
    """
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
