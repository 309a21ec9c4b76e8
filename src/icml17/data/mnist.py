"""MNIST (LeCun et al. 1998) from the four gzipped IDX files of the official distribution.

Decoding is a gzip read plus one ``frombuffer`` (well under a second), so nothing is cached.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DatasetError, how_to_get, not_found
from .paths import resolve_data_dir

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SIZES = {"train": 60_000, "test": 10_000}
IMAGES_MAGIC = 2051  # IDX: unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # IDX: unsigned byte, 1 dimension


def mnist_files(data_dir: str | Path | None = None, split: str = "train") -> tuple[Path, Path]:
    """Paths of the (images, labels) files of ``split`` under ``<data_dir>/mnist/``."""
    _check_split(split)
    root = resolve_data_dir(data_dir) / "mnist"
    images, labels = FILES[split]
    return root / images, root / labels


def load_mnist(data_dir: str | Path | None = None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) (ink = 255) and labels int64 (N,); N = 60,000 (train) or 10,000 (test)."""
    images_path, labels_path = mnist_files(data_dir, split)
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    where = how_to_get("mnist", images_path.parent.parent)
    if images.shape != (SIZES[split], 28, 28):
        raise DatasetError(
            f"MNIST file {images_path} holds images of shape {images.shape}, expected ({SIZES[split]}, 28, 28); {where}"
        )
    if labels.shape != (SIZES[split],) or labels.max(initial=0) > 9:
        raise DatasetError(
            f"MNIST file {labels_path} holds {labels.shape[0]} labels up to {labels.max(initial=0)}, "
            f"expected {SIZES[split]} labels in 0..9; {where}"
        )
    return images, labels.astype(np.int64)


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Decode a gzipped IDX file of unsigned bytes whose header magic must be ``magic`` (2051 or 2049)."""
    where = how_to_get("mnist", path.parent.parent)
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as e:
        raise not_found("MNIST file", path, "mnist", path.parent.parent) from e
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DatasetError(
            f"MNIST file {path} is not a readable gzip file ({e}); it may be truncated; download it again: {where}"
        ) from e
    ndim = magic - 2048
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"MNIST file {path} is too short for an IDX header ({len(data)} bytes); {where}")
    found, *dims = struct.unpack(f">{1 + ndim}I", data[:header])
    if found != magic:
        raise DatasetError(
            f"MNIST file {path} has IDX magic number {found}, expected {magic} "
            f"({'images' if magic == IMAGES_MAGIC else 'labels'}); is it the right file? {where}"
        )
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DatasetError(
            f"MNIST file {path} holds {len(data)} bytes, expected {expected} for dimensions {dims}: it is damaged, "
            f"probably a truncated download; download it again: {where}"
        )
    # copy: frombuffer over bytes is read-only, which torch.from_numpy warns about.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _check_split(split: str) -> None:
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
