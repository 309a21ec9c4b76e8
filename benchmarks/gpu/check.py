"""What every per-system GPU check shares: its three flags, the device check before any work, and the record."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

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
