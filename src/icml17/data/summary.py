"""Which datasets are present under a data root, and how to get the missing ones (``icml17 data info``).

Checks are cheap (zip directories, file sizes, csv rows, IDX headers): no image is decoded. The MNIST files are
decompressed as a stream (about 0.2 s for all four) to check that each holds as many bytes as its IDX header
promises: a truncated download is reported as invalid, with how to fetch it again, rather than as found.
Damage that keeps every size right (a corrupt PNG inside an intact zip) is left to the loaders.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from . import cifar10, miniimagenet, mnist, omniglot
from .errors import DatasetError, diagnose, how_to_get, not_found
from .paths import resolve_data_dir


def describe_datasets(data_dir: str | Path | None = None) -> list[dict]:
    """One dict per dataset, never raising for a missing or damaged one:

    ``name``, ``path``, ``status`` ('found', 'missing' or 'invalid'), ``found`` (bool), ``size_bytes`` (on disk),
    ``summary`` (the counts when found, the problem when invalid, None when missing), ``how_to_get`` (always).
    """
    root = resolve_data_dir(data_dir)
    checks: list[tuple[str, Path, Callable[[Path], str]]] = [
        ("omniglot", root / "omniglot", _omniglot),
        ("mnist", root / "mnist", _mnist),
        ("cifar10", root / "cifar10" / "cifar-10-batches-bin", _cifar10),
        ("cifar10-subset", root / "cifar10-subset" / "cifar-10-batches-bin", _cifar10),
        ("miniimagenet", root / "miniimagenet", _miniimagenet),
    ]
    report = []
    for name, path, check in checks:
        status, summary = "missing", None
        if path.is_dir():
            try:
                status, summary = "found", check(path)
            except DatasetError as e:
                status, summary = "invalid", str(e)
        how = (diagnose(name, path / PROBE[name], root) if status == "missing" else None) or how_to_get(name, root)
        report.append(_entry(name, str(path), status, _size(path), summary, how))
    sklearn = importlib.util.find_spec("sklearn") is not None
    report.append(
        _entry(
            "digits-fallback",
            "scikit-learn (bundled)",
            "found" if sklearn else "missing",
            0,
            "1,797 8x8 digits upsampled to 28x28 (demo stand-in for MNIST)" if sklearn else None,
            "pip install scikit-learn",
        )
    )
    return report


# one file each dataset's folder holds: where it is found instead tells what went wrong (see errors.diagnose)
PROBE = {
    "omniglot": "images_background.zip",
    "mnist": "train-images-idx3-ubyte.gz",
    "cifar10": "test_batch.bin",
    "cifar10-subset": "test_batch.bin",
    "miniimagenet": "train.csv",
}


def _entry(name: str, path: str, status: str, size: int, summary: str | None, how: str) -> dict:
    return {
        "name": name,
        "path": path,
        "status": status,
        "found": status == "found",
        "size_bytes": size,
        "summary": summary,
        "how_to_get": how,
    }


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


def _omniglot(folder: Path) -> str:
    counts = []
    files = omniglot.omniglot_files(folder.parent)
    for (stem, n_chars, n_alphabets), path in zip(omniglot.SPLITS, files, strict=True):
        if not path.is_file():
            raise not_found("Omniglot file", path, "omniglot", folder.parent)
        with omniglot.open_zip(path) as zf:
            omniglot.index_zip(zf, path, stem, n_chars, n_alphabets)
        counts.append(f"{n_chars} {stem.removeprefix('images_')}")
    return f"{omniglot.N_CHARACTERS} characters x {omniglot.N_DRAWINGS} drawings ({', '.join(counts)})"


def _mnist(folder: Path) -> str:
    parts = []
    for split in mnist.FILES:
        images, labels = mnist.mnist_files(folder.parent, split)
        n = _idx_length(images, mnist.IMAGES_MAGIC, (28, 28))
        if n != _idx_length(labels, mnist.LABELS_MAGIC, ()):
            raise DatasetError(
                f"MNIST files {images} and {labels} disagree on the number of examples; "
                f"{how_to_get('mnist', folder.parent)}"
            )
        if n != mnist.SIZES[split]:
            raise DatasetError(
                f"MNIST file {images} holds {n:,} images, expected the official {mnist.SIZES[split]:,}; "
                f"{how_to_get('mnist', folder.parent)}"
            )
        parts.append(f"{n:,} {split}")
    return " / ".join(parts) + " images of 28x28"


_CHUNK = 1 << 20


def _idx_length(path: Path, magic: int, item_shape: tuple[int, ...]) -> int:
    """The number of examples of a gzipped IDX file, after checking its header (magic number, per-example shape)
    and that its decompressed payload is exactly as long as the header promises (streamed, nothing kept)."""
    where = how_to_get("mnist", path.parent.parent)
    header_bytes = 4 + 4 * (1 + len(item_shape))
    what = "images" if magic == mnist.IMAGES_MAGIC else "labels"
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(header_bytes)
            if len(head) < header_bytes or struct.unpack(">I", head[:4])[0] != magic:
                raise DatasetError(
                    f"MNIST file {path} does not start with an IDX header of {what} "
                    f"(magic number {magic}); is it the right file? {where}"
                )
            n, *shape = struct.unpack(f">{1 + len(item_shape)}I", head[4:])
            if tuple(shape) != item_shape:
                raise DatasetError(
                    f"MNIST file {path} holds {what} of shape {tuple(shape)}, expected {item_shape}; {where}"
                )
            payload = 0
            while chunk := f.read(_CHUNK):
                payload += len(chunk)
    except FileNotFoundError as e:
        raise not_found("MNIST file", path, "mnist", path.parent.parent) from e
    except EOFError as e:  # the gzip stream stops before its end: a cut download
        raise DatasetError(
            f"MNIST file {path} is truncated (its gzip stream ends early: {e}); download it again: {where}"
        ) from e
    except (OSError, zlib.error) as e:  # gzip.BadGzipFile (an OSError), or a CRC mismatch
        raise DatasetError(f"MNIST file {path} is not a readable gzip file ({e}); download it again: {where}") from e
    expected = n * math.prod(item_shape)
    if payload != expected:
        raise DatasetError(
            f"MNIST file {path} is damaged: its IDX header promises {n:,} {what} ({expected:,} bytes after the "
            f"header) but it holds {payload:,}; it is probably a truncated download. Download it again: {where}"
        )
    return n


def _cifar10(folder: Path) -> str:
    variant = "full" if folder.parent.name == cifar10.VARIANTS["full"] else "subset"
    counts = []
    for split in ("train", "test"):
        files = cifar10.cifar10_files(folder.parent.parent, split, variant)
        n = 0
        for f in files:
            size = f.stat().st_size if f.is_file() else 0
            if size == 0 or size % cifar10.RECORD_BYTES:
                raise DatasetError(
                    f"CIFAR-10 file {f} holds {size} bytes, expected a positive multiple of {cifar10.RECORD_BYTES}"
                )
            n += size // cifar10.RECORD_BYTES
        counts.append(f"{n:,} {split}")
    return " / ".join(counts) + " images of 3x32x32"


def _miniimagenet(folder: Path) -> str:
    parts = []
    for split in miniimagenet.SPLITS:
        by_class = miniimagenet.read_split_csv(folder / f"{split}.csv", how_to_get("miniimagenet"))
        parts.append(f"{split} {len(by_class)} classes x {max(len(v) for v in by_class.values())}")
    return ", ".join(parts)
