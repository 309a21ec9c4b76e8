"""PixelCNN tests: single-threaded (tiny models; threads only add overhead on a shared CPU), and the shared
tiny-model helpers (``pcnn_helpers``) importable under ``--import-mode=importlib``."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
