"""Figures for the sharpness reproductions (headless matplotlib, saved with :func:`icml17.core.report.save_figure`)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from icml17.core.report import save_figure


def alpha_sweep(
    alphas: Sequence[float],
    series: dict[str, Sequence[float]],
    path: Path,
    title: str,
    asymptotes: dict[str, Sequence[float]] | None = None,
    ylabel: str = "value",
) -> Path:
    """Log-log curves of measures against alpha, with optional dashed analytic curves."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for label, ys in series.items():
        ax.loglog(alphas, np.abs(ys), "o-", label=label)
    for label, ys in (asymptotes or {}).items():
        ax.loglog(alphas, np.abs(ys), "k--", lw=1, alpha=0.6, label=label)
    ax.set_xlabel("alpha")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def grouped_bars(
    groups: Sequence[str], series: dict[str, Sequence[float]], path: Path, title: str, ylabel: str, log: bool = True
) -> Path:
    """Bars per group (x axis) and series (colours), log scale by default."""
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(groups) * max(1, len(series)) / 2), 4))
    width = 0.8 / len(series)
    x = np.arange(len(groups))
    for i, (label, ys) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, np.abs(ys), width, label=label)
    ax.set_xticks(x, [textwrap.fill(g, 16) for g in groups], fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return save_figure(fig, path)


def slices(ts: np.ndarray, curves: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """1-D loss slices L(center + t v) for several (model, parametrization) pairs."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, ys in curves.items():
        ax.plot(ts, ys, label=label)
    ax.set_xlabel("t (step along the top Hessian eigenvector, in the measured parameters)")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
