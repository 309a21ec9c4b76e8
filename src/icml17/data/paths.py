"""Where datasets are read from and where decoded caches are written.

Data directories may be read-only (a shared copy), so decoded arrays never go next to the sources: they go
to ``cache_dir()``, in files whose names carry a key of the source files' names, sizes and modification
times, so that a changed source is decoded again.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

DATA_ENV = "ICML17_DATA"
CACHE_ENV = "ICML17_CACHE"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data root: ``data_dir`` if given, else ``$ICML17_DATA``, else ``~/.cache/icml17/data``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "icml17" / "data"


def cache_dir() -> Path:
    """Directory for decoded arrays: ``$ICML17_CACHE``, else ``~/.cache/icml17/cache``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "icml17" / "cache"


def source_key(paths: Iterable[Path], *extra: object) -> str:
    """A short hex key of the files' names, sizes and mtimes (plus ``extra`` decoding options)."""
    h = hashlib.sha256()
    for p in paths:
        st = Path(p).stat()
        h.update(f"{Path(p).name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for e in extra:
        h.update(f"{e!r}\n".encode())
    return h.hexdigest()[:16]


def _cache_file(stem: str, key: str) -> Path:
    return cache_dir() / f"{stem}-{key}.npz"


def load_cached(stem: str, key: str) -> dict[str, np.ndarray] | None:
    """The arrays saved under ``stem``/``key``, or None when there is no usable cache file."""
    path = _cache_file(stem, key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        # The cache is ours and derived: a damaged one (e.g. a killed writer on a filesystem without
        # atomic rename) is rebuilt from the sources rather than reported.
        path.unlink(missing_ok=True)
        return None


def save_cached(stem: str, key: str, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` atomically (temp file + rename) and drop stale caches of the same ``stem``."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = _cache_file(stem, key)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for old in directory.glob(f"{stem}-*.npz"):
        if old != path and re.fullmatch(r"[0-9a-f]{16}", old.name[len(stem) + 1 : -4]):
            old.unlink(missing_ok=True)
    return path
