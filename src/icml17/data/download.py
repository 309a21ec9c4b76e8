"""Download the datasets from their official homes into ``<data_dir>``, checking content before keeping it.

Every file is streamed to a temporary file next to its destination, checked (zip CRCs and Omniglot's
character counts; MNIST's decompressed MD5s; CIFAR-10's batch sizes), and only then renamed into place, so an
interrupted or corrupt download never leaves a file the loaders would accept. Files already present and valid
are not fetched again.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from . import cifar10, omniglot
from .errors import DatasetError
from .paths import resolve_data_dir

# Folder URLs of the official files; ``base_url`` replaces them (a mirror, or a local server in tests).
BASE_URLS = {
    "omniglot": "https://github.com/brendenlake/omniglot/raw/master/python/",
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/",
}
DATASETS = tuple(BASE_URLS)

# MD5 of the decompressed IDX files (the canonical bytes; the gzip wrappers differ between mirrors).
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_MEMBERS = (
    *(f"data_batch_{i}.bin" for i in range(1, cifar10.FULL_BATCHES + 1)),
    "test_batch.bin",
    "batches.meta.txt",
)
_CHUNK = 1 << 20


def download_dataset(
    name: str, data_dir: str | Path | None = None, base_url: str | None = None, *, timeout: float = 60.0
) -> Path:
    """Fetch dataset ``name`` ('omniglot', 'mnist', 'cifar10') into ``<data_dir>/<name>/``; returns that folder.

    Raises DatasetError when the network fails (with the URL to fetch by hand and where to put the file) or a
    downloaded file fails its content check. For CIFAR-10, a ``cifar-10-binary.tar.gz`` already saved in
    ``<data_dir>/cifar10/`` is used instead of downloading; the archive is removed once extracted.
    """
    if name not in BASE_URLS:
        raise ValueError(f"unknown dataset {name!r}; downloadable: {', '.join(DATASETS)}")
    folder = resolve_data_dir(data_dir) / name
    base = (base_url or BASE_URLS[name]).rstrip("/") + "/"
    if name == "omniglot":
        for stem, n_chars, n_alphabets in omniglot.SPLITS:
            check = _omniglot_check(stem, n_chars, n_alphabets)
            _fetch(base + f"{stem}.zip", folder / f"{stem}.zip", check, timeout)
    elif name == "mnist":
        for raw in MNIST_MD5:
            _fetch(base + f"{raw}.gz", folder / f"{raw}.gz", _mnist_check(raw), timeout)
    else:
        _download_cifar10(base + CIFAR10_ARCHIVE, folder, timeout)
    return folder


def _fetch(url: str, dest: Path, check: Callable[[Path], None], timeout: float) -> None:
    """Stream ``url`` to a temp file beside ``dest``, ``check`` it, then rename it to ``dest``."""
    if dest.is_file():
        try:
            check(dest)
            return
        except DatasetError:
            pass  # an earlier partial or damaged copy: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}-", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _stream(url, out, dest, timeout)
        try:
            check(tmp)
        except DatasetError as e:
            raise DatasetError(f"downloaded {url} failed its check, not kept: {e}") from e
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _stream(url: str, out: BinaryIO, dest: Path, timeout: float) -> None:
    manual = f"download it by hand and save it as {dest}, or point data_dir (or $ICML17_DATA) at a folder that has it"
    request = urllib.request.Request(url, headers={"User-Agent": "icml17-data"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            written = 0
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                written += len(chunk)
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as e:
        raise DatasetError(f"could not download {url} ({e}); {manual}") from e
    if expected is not None and written != int(expected):
        raise DatasetError(f"download of {url} stopped after {written} of {expected} bytes; {manual}")


def _omniglot_check(stem: str, n_chars: int, n_alphabets: int) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        with omniglot.open_zip(path) as zf:
            try:
                bad = zf.testzip()  # reads every member and checks its CRC
            except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
                raise DatasetError(f"Omniglot file {path}: corrupt member data ({e})") from e
            if bad is not None:
                raise DatasetError(f"Omniglot file {path}: member {bad} fails its CRC check")
            omniglot.index_zip(zf, path, stem, n_chars, n_alphabets)

    return check


def _mnist_check(raw: str) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        try:
            with gzip.open(path, "rb") as f:
                digest = hashlib.md5(f.read()).hexdigest()
        except (OSError, EOFError, zlib.error) as e:
            raise DatasetError(f"MNIST file {path} is not a readable gzip file ({e})") from e
        if digest != MNIST_MD5[raw]:
            raise DatasetError(f"MNIST file {path} decompresses to MD5 {digest}, expected {MNIST_MD5[raw]} for {raw}")

    return check


def _download_cifar10(url: str, folder: Path, timeout: float) -> None:
    """Fetch the binary tarball, extract the expected members only, check them, then move the folder in place."""
    final = folder / "cifar-10-batches-bin"
    if final.exists():
        try:
            _check_cifar10(final)
            return
        except DatasetError as e:
            raise DatasetError(f"{e}. The folder {final} exists but is incomplete: delete it and run again") from e
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / CIFAR10_ARCHIVE
    with tempfile.TemporaryDirectory(prefix=".cifar10-", dir=folder) as staging:
        _fetch(url, archive, lambda p: None, timeout)  # the tarball is checked by extracting it
        try:
            extracted = _extract_cifar10(archive, Path(staging), url)
            _check_cifar10(extracted)
            os.replace(extracted, final)
        finally:
            archive.unlink(missing_ok=True)


def _extract_cifar10(archive: Path, staging: Path, url: str) -> Path:
    """Copy the members we expect out of ``cifar-10-batches-bin/`` (never trusting other paths in the archive)."""
    out = staging / "cifar-10-batches-bin"
    out.mkdir()
    try:
        with tarfile.open(archive, "r:gz") as tf:
            for member in tf:
                parts = member.name.split("/")
                if member.isfile() and len(parts) == 2 and parts[0] == out.name and parts[1] in CIFAR10_MEMBERS:
                    with tf.extractfile(member) as src, (out / parts[1]).open("wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"downloaded {url} is not a readable .tar.gz ({e}); not kept") from e
    missing = [m for m in CIFAR10_MEMBERS if not (out / m).is_file()]
    if missing:
        raise DatasetError(f"downloaded {url} lacks cifar-10-batches-bin/{', '.join(missing)}; not kept")
    return out


def _check_cifar10(folder: Path) -> None:
    for name in CIFAR10_MEMBERS:
        if name.endswith(".bin"):
            cifar10.read_batch(folder / name, cifar10.FULL_BATCH_RECORDS)
        elif not (folder / name).is_file():
            raise DatasetError(f"CIFAR-10 file {folder / name} not found")
