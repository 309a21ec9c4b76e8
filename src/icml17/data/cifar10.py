"""CIFAR-10 (Krizhevsky 2009) from the official binary batches.

Two layouts under the data root:
- ``cifar10/cifar-10-batches-bin/``: the full dataset as extracted from ``cifar-10-binary.tar.gz``
  (``data_batch_1..5.bin`` of 10,000 records each, ``test_batch.bin``).
- ``cifar10-subset/cifar-10-batches-bin/``: the same format with fewer records (the shared copy holds the first
  4,000 training and 1,000 test images). Likelihoods on the subset compare only with the subset.

Each record is 1 label byte followed by 3072 pixel bytes, channel-major (R, G, B planes of 32x32). Decoding
is a single ``frombuffer``, so nothing is cached.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import DatasetError, how_to_get, not_found
from .paths import resolve_data_dir

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
RECORD_BYTES = 1 + 3 * 32 * 32
FULL_BATCHES = 5
FULL_BATCH_RECORDS = 10_000
VARIANTS = {"full": "cifar10", "subset": "cifar10-subset"}


def cifar10_dir(data_dir: str | Path | None = None, variant: str | None = None) -> Path:
    """The ``cifar-10-batches-bin`` folder of ``variant``: 'full', 'subset', or None (full if present)."""
    root = resolve_data_dir(data_dir)
    if variant is None:
        full = root / VARIANTS["full"] / "cifar-10-batches-bin"
        return full if full.is_dir() else root / VARIANTS["subset"] / "cifar-10-batches-bin"
    if variant not in VARIANTS:
        raise ValueError(f"variant must be 'full', 'subset' or None, got {variant!r}")
    return root / VARIANTS[variant] / "cifar-10-batches-bin"


def cifar10_files(data_dir: str | Path | None = None, split: str = "train", variant: str | None = None) -> list[Path]:
    """The batch files of ``split``: every ``data_batch_<i>.bin`` (numbered 1..n) or ``test_batch.bin``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = cifar10_dir(data_dir, variant)
    full = folder.parent.name == VARIANTS["full"]
    where = how_to_get("cifar10", folder.parent.parent)
    if not folder.is_dir():
        raise not_found(
            "CIFAR-10 folder (the binary batches of cifar-10-binary.tar.gz)",
            folder,
            folder.parent.name,
            folder.parent.parent,
        )
    if split == "test":
        return [folder / "test_batch.bin"]
    numbers = sorted(int(m.group(1)) for p in folder.iterdir() if (m := re.fullmatch(r"data_batch_(\d+)\.bin", p.name)))
    expected = list(range(1, (FULL_BATCHES if full else max(numbers, default=1)) + 1))
    if numbers != expected:
        raise DatasetError(
            f"CIFAR-10 folder {folder} holds training batches {numbers or 'none'}, "
            f"expected data_batch_{expected[0]}..{expected[-1]}.bin; {where}"
        )
    return [folder / f"data_batch_{i}.bin" for i in numbers]


def load_cifar10(
    data_dir: str | Path | None = None, split: str = "train", *, variant: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) of ``split`` ('train' or 'test').

    ``variant`` picks 'full' (``cifar10/``) or 'subset' (``cifar10-subset/``); None takes the full dataset
    when it is present and the subset otherwise.
    """
    files = cifar10_files(data_dir, split, variant)
    full = files[0].parent.parent.name == VARIANTS["full"]
    records = np.concatenate([read_batch(f, FULL_BATCH_RECORDS if full else None) for f in files])
    # concatenate copied the read-only buffers; make the image block contiguous for torch.from_numpy.
    return np.ascontiguousarray(records[:, 1:]).reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)


def read_batch(path: Path, n_records: int | None) -> np.ndarray:
    """Records uint8 (n, 3073) of one batch file; ``n_records`` None accepts any positive count."""
    where = how_to_get("cifar10", path.parent.parent.parent)
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise not_found("CIFAR-10 file", path, path.parent.parent.name, path.parent.parent.parent) from e
    except OSError as e:
        raise DatasetError(f"CIFAR-10 file {path} cannot be read ({e}); {where}") from e
    if len(data) == 0 or len(data) % RECORD_BYTES:
        raise DatasetError(
            f"CIFAR-10 file {path} holds {len(data)} bytes, expected a positive multiple of the record "
            f"length {RECORD_BYTES} (1 label byte + 3072 pixels); it may be truncated; {where}"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    if n_records is not None and len(records) != n_records:
        raise DatasetError(f"CIFAR-10 file {path} holds {len(records)} records, expected {n_records}; {where}")
    if records[:, 0].max() >= len(CIFAR10_CLASSES):
        raise DatasetError(
            f"CIFAR-10 file {path} has label {records[:, 0].max()}, expected 0..9: not a CIFAR-10 binary batch "
            f"(CIFAR-100 has 2 label bytes); {where}"
        )
    return records
