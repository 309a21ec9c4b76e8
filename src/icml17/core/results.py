"""Machine-readable result records: every number in README comes from one of these files.

Layout and fields follow DESIGN.md: ``results/<system>/<experiment>.json`` for reproductions and
``results/bench/<name>.json`` for speed benchmarks; each record names the hardware, torch version, seed and the
command that produced it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch


def hardware_description(device: str | torch.device = "cpu") -> str:
    """e.g. ``'2-core CPU (Intel Xeon ...)'`` or ``'NVIDIA H100 80GB HBM3'``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core CPU ({model})"


def environment(device: str | torch.device = "cpu") -> dict[str, Any]:
    return {"hardware": hardware_description(device), "torch": torch.__version__.split("+")[0],
            "threads": torch.get_num_threads(), "date": _dt.date.today().isoformat()}


def write_record(path: str | Path, record: dict[str, Any], device: str | torch.device = "cpu") -> Path:
    """Write ``record`` plus the environment fields (not overriding ones the caller set) as pretty JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {**environment(device), **record}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(full, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def read_records(root: str | Path) -> list[dict[str, Any]]:
    root = Path(root)
    return [json.loads(p.read_text()) for p in sorted(root.rglob("*.json"))]
