"""Fixtures for the data tests (the data folders and the session's decode cache come from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A decode cache of this test's own, for tests of caching."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ICML17_CACHE", str(cache))
    return cache
