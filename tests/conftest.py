"""Fixtures shared by every test directory: where the real datasets live, and a per-session decode cache."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

# Decoded datasets are cached once per machine for the suite (the source folder is read-only).
os.environ.setdefault("ICML17_CACHE", "/tmp/icml17-test-cache")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real datasets in their official formats (../shared/data beside the checkout)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the test suite reads real datasets from {SHARED_DATA}; put the shared data folder there")
    return SHARED_DATA
