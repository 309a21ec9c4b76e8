"""Small trained weights shipped with the package, in safetensors (tensors only: loading never runs code).

``manifest.json`` lists each file with its system, its SHA-256 and the results record it reproduces::

    {"omniglot-5w1s": {"file": "maml-omniglot-5w1s.safetensors", "sha256": "...", "system": "maml",
                       "record": "results/maml/omniglot-5w1s.json", "description": "..."}}

Each file's metadata (strings only, as safetensors allows) holds what is needed to rebuild the model without
the run directory: ``system``, ``config_class``, ``config`` (JSON), ``iterations``, ``wall_time_s`` and the
training command. ``icml17 <system> eval --weights NAME`` loads them; :func:`export_weights` writes them from a
finished run (the maintainer's step, see ``results/*/reproduce.sh``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icml17.core.errors import UserError

WEIGHTS_DIR = Path(__file__).resolve().parent
MANIFEST = WEIGHTS_DIR / "manifest.json"


class WeightsError(UserError):
    """Unknown shipped weights, a damaged file, or weights of another system."""


@dataclass
class ShippedWeights:
    name: str
    system: str
    config: dict[str, Any]  # the training config's fields
    state: dict[str, Any]  # state_dict tensors
    iterations: int
    wall_time_s: float
    train_command: str
    record: str  # the results record these weights reproduce


def manifest() -> dict[str, dict[str, Any]]:
    if not MANIFEST.is_file():
        return {}
    return json.loads(MANIFEST.read_text())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def names(system: str | None = None) -> list[str]:
    return sorted(n for n, e in manifest().items() if system is None or e["system"] == system)


def load_weights(name: str, system: str) -> ShippedWeights:
    """The shipped weights ``name`` of ``system``, checked against the manifest's checksum."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    entries = manifest()
    if name not in entries or entries[name]["system"] != system:
        raise WeightsError(f"no shipped {system} weights named {name!r}; available: {names(system) or 'none'}")
    entry = entries[name]
    path = WEIGHTS_DIR / entry["file"]
    if not path.is_file():
        raise WeightsError(f"{path} is missing from the installed package; reinstall icml17")
    if sha256(path) != entry["sha256"]:
        raise WeightsError(
            f"{path} does not match its checksum in {MANIFEST.name} (damaged or replaced); reinstall icml17"
        )
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return ShippedWeights(
        name=name,
        system=meta["system"],
        config=json.loads(meta["config"]),
        state=load_file(str(path)),
        iterations=int(meta["iterations"]),
        wall_time_s=float(meta["wall_time_s"]),
        train_command=meta.get("train_command", ""),
        record=entry["record"],
    )


def export_weights(
    run_dir: str | Path,
    name: str,
    system: str,
    *,
    state_key: str,
    record: str,
    description: str,
    config_class: type,
    record_key: str | None = None,
    replace: bool = False,
    how_to_train: str | None = None,
) -> Path:
    """Write ``run_dir``'s last checkpoint (its ``state_key`` state) as shipped weights and list it in the
    manifest. The config comes from the checkpoint itself (:func:`icml17.core.runs.read_trained_run`). Shipped
    weights are replaced only when ``replace`` says so, and only by weights whose record exists."""
    from icml17.core.config import ConfigError

    if not Path(record).is_file():
        raise ConfigError(
            f"no such record {record}; name the committed results record these weights reproduce "
            f"(e.g. results/{system}/<experiment>.json)",
            param="record",
        )
    shipped = manifest().get(name)
    if shipped is not None and not replace:
        raise ConfigError(
            f"weights {name!r} are already shipped ({shipped['file']}, reproducing "
            f"{shipped.get('record')}); pass replace=True to overwrite them, or another name",
            param=("replace", "name"),
        )
    import torch
    from safetensors.torch import save_file

    from icml17.core.config import config_to_dict
    from icml17.core.runs import read_trained_run

    run = read_trained_run(run_dir, config_class, state_key, system, how_to_train)
    state = {k: v.contiguous() for k, v in run.model.items() if isinstance(v, torch.Tensor)}
    meta = {
        "system": system,
        "config_class": config_class.__name__,
        "config": json.dumps(config_to_dict(run.cfg)),
        "iterations": str(run.iterations),
        "wall_time_s": str(round(run.wall_time_s, 1)),
        "train_command": run.train_command,
    }
    path = WEIGHTS_DIR / f"{system}-{name}.safetensors"
    save_file(state, str(path), metadata=meta)
    entries = manifest()
    entries[name] = {
        "file": path.name,
        "sha256": sha256(path),
        "system": system,
        "record": record,
        "description": description,
        "bytes": path.stat().st_size,
        "parameters": int(sum(v.numel() for v in state.values())),
    }
    if record_key:  # the value inside the record these weights reproduce, e.g. theta.small-batch.lambda_max
        entries[name]["record_key"] = record_key
    MANIFEST.write_text(json.dumps(dict(sorted(entries.items())), indent=2) + "\n")
    return path
