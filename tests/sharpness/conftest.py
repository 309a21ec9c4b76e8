"""Shared fixtures for the sharpness tests: one torch thread, tiny float64 data, the MNIST directory if present."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny products are dominated by thread hand-offs on a shared CPU: one thread is ~20x faster here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (32,), generator=g)


@pytest.fixture
def mnist_dir() -> Path:
    if not (DATA_DIR / "mnist" / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST not found under {DATA_DIR}")
    return DATA_DIR
