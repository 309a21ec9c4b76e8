"""Machine-readable result records: every number in README and on the documentation's results pages comes from
one of these files.

Layout: ``results/<system>/<experiment>.json`` for reproductions (a rerun with another seed under
``results/<system>/seeds/<experiment>-seedN.json``, :mod:`icml17.core.seeds`) and ``results/bench/<name>.json`` for
speed benchmarks; each record names the hardware, torch version, seed and the command that produced it.
:func:`check_record` is the schema, :func:`write_record` the one writer, :func:`read_records` the reader;
:mod:`icml17.pages` renders records as Markdown for ``icml17 results``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def hardware_description(device: str | torch.device = "cpu") -> str:
    """e.g. ``'2-core CPU (Intel Xeon ...)'`` or ``'NVIDIA H100 80GB HBM3 (CUDA 12.6)'``."""
    import torch  # here, not at the top: `icml17 results --help` must not wait seconds for torch

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
    import torch

    env = {
        "hardware": hardware_description(device),
        "device": str(torch.device(device)),
        "torch": torch.__version__.split("+")[0],
        "threads": torch.get_num_threads(),
        "date": _dt.date.today().isoformat(),
        "load_average": load_average(),
    }
    if torch.device(device).type == "cuda":  # both flags: PyTorch's default has TF32 convolutions on, matmuls off
        env["tf32"] = {
            "matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn_conv": bool(torch.backends.cudnn.allow_tf32),
        }
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
        raise ValueError(
            f"result record {record['experiment']!r} quotes a published number without "
            f"'paper_source' (which paper, which table)"
        )
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
    smaller = [
        f"{key} {old[key]} -> {record[key]}"
        for key in ("n_eval", "iterations")
        if isinstance(old.get(key), (int, float))
        and isinstance(record.get(key), (int, float))
        and record[key] < old[key]
    ]
    if smaller:
        print(
            f"warning: {path} replaced by a smaller measurement ({', '.join(smaller)}); `git checkout {path}` "
            f"restores the committed one",
            file=sys.stderr,
        )


def read_records(root: str | Path, *, quick: bool = False) -> list[dict[str, Any]]:
    """Every JSON record under ``root`` (recursively, in path order). Records of a ``--quick`` run (tiny sizes, for
    tests) are left out unless ``quick``: they are never results, wherever they were written."""
    records = [json.loads(p.read_text()) for p in sorted(Path(root).rglob("*.json"))]
    return records if quick else [r for r in records if not r.get("quick")]
