"""Task losses of MAML's supervised experiments (Finn et al. 2017, section 3.1, equations 2 and 3).

* Regression: mean squared error, mean-reduced over the points (the reference's ``tf.reduce_mean``).
* Classification, ``scale='reference'``: cross-entropy summed over the examples and divided by K (shots). The
  reference code divides the per-example loss vector by ``update_batch_size`` and ``tf.gradients`` sums it, so
  its loss is ``N * mean CE`` on the support set; the inner learning rates of the paper (0.4 for Omniglot
  5-way) are for this scaling. With ``scale='mean'`` the loss is the plain mean, ``N`` times smaller: multiply
  the inner learning rate by ``N`` for the same update. Applied identically to the query (outer) loss, where
  with Adam the scale only matters through gradient clipping.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from icml17.core.functional import LossFn

LOSS_SCALES = ("reference", "mean")


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all points. pred, target: (B, D)."""
    return (pred - target).pow(2).mean()


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, *, shots: int, scale: str = "reference") -> torch.Tensor:
    """Cross-entropy of logits (B, N) against labels (B,), scaled as the module docstring explains."""
    if scale == "reference":
        return F.cross_entropy(logits, labels, reduction="sum") / shots
    if scale == "mean":
        return F.cross_entropy(logits, labels)
    raise ValueError(f"unknown loss scale {scale!r}; choose one of {LOSS_SCALES}")


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of correct argmax predictions, a 0-dim float tensor."""
    return (logits.argmax(-1) == labels).to(logits.dtype).mean()


def make_losses(task: str, shots: int, scale: str = "reference") -> tuple[LossFn, LossFn, str]:
    """(loss, score, score name) for a task family: regression scores MSE, classification accuracy."""
    if task == "sinusoid":
        return mse, mse, "mse"
    return partial(cross_entropy, shots=shots, scale=scale), accuracy, "accuracy"
