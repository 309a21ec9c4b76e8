"""Atomic checkpoint files and a loader that never runs pickled code.

A checkpoint is written to a temporary file in the same directory, flushed to disk and then renamed over the
old one, so a kill at any moment (or a full disk) leaves either the previous complete checkpoint or the new
complete one. Loading uses ``torch.load(weights_only=True)``: only tensors and plain containers are accepted, so
a file with a pickled payload (an object whose ``__reduce__`` runs code) is refused instead of executed.
"""

from __future__ import annotations

import errno
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from icml17.core.errors import UserError

FORMAT = "icml17-checkpoint/1"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, unreadable, unsafe, or belongs to a different run."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically to ``path``: a kill at any moment leaves the old file or the new one, whole.

    Tensors are stored from the CPU whatever device they live on, so a checkpoint written on a GPU resumes or
    evaluates on any machine (optimizers move their state to their parameters' device when loaded).

    Args:
        path: the checkpoint file (its folder is created).
        payload: tensors, numbers, strings, lists and dicts only (what ``weights_only`` loading accepts).

    Returns:
        ``path``.

    Raises:
        CheckpointError: the folder cannot be written or the disk is full (the previous checkpoint is intact).
    """
    path = Path(path)
    payload = _on_cpu(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        kept = f"the previous checkpoint {path} is intact" if path.exists() else "no earlier checkpoint exists"
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CheckpointError(
                f"disk full while writing a checkpoint to {path.parent}; {kept}. Free some space "
                f"and rerun the same command to resume"
            ) from e
        raise CheckpointError(f"cannot write a checkpoint to {path.parent} ({e.strerror or e}); {kept}") from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _on_cpu(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, dict):
        return {k: _on_cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_on_cpu(v) for v in tree)
    return tree


def _is_torch_file(path: Path) -> bool:
    """By its first bytes: torch.save writes a zip archive ("PK\\x03\\x04"); older versions a pickle stream
    (protocol 2). A damaged or truncated checkpoint still starts like one; random bytes do not."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head == b"PK\x03\x04" or head[:2] == b"\x80\x02"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; refuse anything else with a clear message.

    Only tensors and plain containers are read (``torch.load(weights_only=True)``): a file holding pickled
    objects is refused, never executed.

    Args:
        path: the checkpoint file.
        map_location: where to put its tensors.

    Returns:
        The payload.

    Raises:
        CheckpointError: missing, not a checkpoint, truncated or damaged, or holding Python objects.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not _is_torch_file(path):
        raise CheckpointError(
            f"{path} is not a checkpoint (not a file written by torch.save); "
            f"point to checkpoints/last.pt of a run directory"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects other than tensors and plain containers, which "
            f"could run code when loaded. Only checkpoints written by icml17 are accepted"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or damaged): {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an icml17 checkpoint (expected format {FORMAT!r})")
    return payload
