"""MNIST subsets as float tensors for the sharpness experiments (a fixed, seeded subset keeps runs small).

Pixels are scaled to [0, 1] and kept as images (N, 1, 28, 28); labels are int64 (N,).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from icml17.core.config import ConfigError
from icml17.data import load_mnist


def mnist_subset(
    data_dir: str | Path | None,
    split: str = "train",
    n: int = 2000,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` examples of ``split`` drawn without replacement with ``seed``: (x (n, 1, 28, 28), y (n,))."""
    images, labels = load_mnist(data_dir, split)
    if not 0 < n <= len(labels):
        raise ConfigError(
            f"asked for n={n} examples of MNIST {split}, which has {len(labels)}: ask for between 1 and {len(labels)}",
            param="n",
        )
    idx = np.random.default_rng(seed).choice(len(labels), size=n, replace=False)
    x = torch.from_numpy(images[idx]).float().div_(255.0).unsqueeze(1)
    return x, torch.from_numpy(labels[idx])


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive (x, y) chunks: a deterministic 'loader' for accumulated curvature products."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(y), batch_size)]
