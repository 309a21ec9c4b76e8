"""Atomic checkpoint files and a loader that never runs pickled code.

A checkpoint is written to a temporary file in the same directory, flushed to disk and then renamed over the
old one, so a kill at any moment leaves either the previous complete checkpoint or the new complete one.
Loading uses ``torch.load(weights_only=True)``: only tensors and plain containers are accepted, so a file with
a pickled payload (an object whose ``__reduce__`` runs code) is refused instead of executed.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "icml17-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, unsafe, or belongs to a different run."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists, dicts) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; refuse anything else with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to load {path}: it contains objects other than tensors and plain containers "
            f"(possibly code to execute). Only checkpoints written by icml17 are accepted. Detail: {e}"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a torch file): {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an icml17 checkpoint (expected format {FORMAT!r})")
    return payload
