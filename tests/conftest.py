"""The suite's one family of data fixtures, and a hermetic environment for every test.

Two tiers of data:

- ``synthetic_data_dir``: every dataset written in its official format by ``icml17.data.write_synthetic_datasets``
  (once per session, a few seconds). End-to-end tests of commands and training use it, so they run on a fresh
  clone with nothing downloaded.
- ``real_data_dir``: the real datasets, ``../shared/data`` beside the checkout (or ``$ICML17_TEST_REAL_DATA``).
  Tests of properties of the real files (counts, checksums, canonical bytes, the reference splits) use it; they
  skip, saying why, when the folder is absent, and run in CI, which has it. Set ``ICML17_TEST_REAL_DATA`` to a
  missing path (``ICML17_TEST_REAL_DATA=/nonexistent``) to run the suite as a fresh clone would.

Hermetic: decoded-dataset caches (``ICML17_CACHE``) go to a folder private to the session and removed after it,
and a user's ``ICML17_DATA`` is ignored (tests always name their data folder).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA_ENV = "ICML17_TEST_REAL_DATA"
REAL_DATA = Path(os.environ.get(REAL_DATA_ENV) or REPO.parent / "shared" / "data").expanduser().resolve()


@pytest.fixture(scope="session", autouse=True)
def _hermetic_data_environment(tmp_path_factory: pytest.TempPathFactory):
    """A decode cache private to this session (deleted afterwards); no ICML17_DATA from the user's shell."""
    saved = {name: os.environ.get(name) for name in ("ICML17_CACHE", "ICML17_DATA")}
    cache = tmp_path_factory.mktemp("decode-cache")
    os.environ["ICML17_CACHE"] = str(cache)
    os.environ.pop("ICML17_DATA", None)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(cache, ignore_errors=True)  # decoded Omniglot alone is ~50 MB


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One intra-op thread, the project's default per process: tiny products and convolutions are dominated by
    thread hand-offs on a shared CPU (about 20x slower with two threads beside another job here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real datasets in their official formats; skips the test when they are absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real datasets not found at {REAL_DATA}; they run in CI with ../shared/data beside the checkout")
    return REAL_DATA


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic Omniglot, MNIST, CIFAR-10 subset and Mini-ImageNet in the official formats (seed 0)."""
    from icml17.data import write_synthetic_datasets

    return write_synthetic_datasets(tmp_path_factory.mktemp("synthetic-data"), seed=0)
