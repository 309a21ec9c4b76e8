"""Summary statistics used in every results table."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def mean_ci95(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval, ``1.96 * std / sqrt(n)``.

    ``std`` is the population standard deviation (ddof=0), as in the MAML reference evaluation, so our
    intervals are comparable with the paper's.

    Args:
        values: one number per task (or seed); any shape, flattened.

    Returns:
        ``(mean, half_width)`` as floats.

    Raises:
        ValueError: no values.

    Examples:
        >>> mean, half = mean_ci95([1.0, 3.0])       # std 1, so the half-width is 1.96 / sqrt(2)
        >>> mean, round(half, 6)
        (2.0, 1.385929)
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("mean_ci95 needs at least one value")
    return float(x.mean()), float(1.96 * x.std() / math.sqrt(x.size))


def bits_per_dim(nll_nats: float, dims: int) -> float:
    """Negative log-likelihood of one image in nats -> bits per dimension (sub-pixel).

    Args:
        nll_nats: the negative log-likelihood of one image, in nats.
        dims: its dimensions (channels x height x width).

    Returns:
        ``nll_nats / (dims * ln 2)``.

    Raises:
        ValueError: ``dims`` <= 0.
    """
    if dims <= 0:
        raise ValueError(f"dims must be positive, got {dims}")
    return nll_nats / (dims * math.log(2.0))
