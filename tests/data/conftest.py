"""Fixtures for the data tests (``shared_data_dir`` and the session cache come from tests/conftest.py): a
private cache for tests of caching, and a writer of small Omniglot zips in the official layout."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests name their data folder; a user's ICML17_DATA must not leak in.
    monkeypatch.delenv("ICML17_DATA", raising=False)


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("ICML17_CACHE", str(cache))
    return cache


@pytest.fixture
def write_omniglot_zip():
    return _write_omniglot_zip


def _write_omniglot_zip(path: Path, stem: str, chars: dict[str, int], drawings: int = 20, seed: int = 0) -> None:
    """A zip in the official layout: ``stem/<alphabet>/characterNN/XXXX_YY.png``, 105x105 1-bit, black ink.

    ``chars`` maps alphabet -> number of characters.
    """
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        gid = 0
        for alphabet, n in chars.items():
            for c in range(1, n + 1):
                gid += 1
                for d in range(1, drawings + 1):
                    white = rng.random((105, 105)) > 0.1  # True = white background, False = ink
                    buf = io.BytesIO()
                    Image.fromarray(white).convert("1").save(buf, format="PNG")
                    zf.writestr(f"{stem}/{alphabet}/character{c:02d}/{gid:04d}_{d:02d}.png", buf.getvalue())
