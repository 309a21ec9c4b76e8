"""Sinusoid regression tasks (MAML, Finn et al. 2017, section 5.1).

A task is y = A sin(x - phase) with amplitude A ~ U[0.1, 5.0] and phase ~ U[0, pi]; inputs x ~ U[-5, 5].
Every meta-batch entry is a fresh task. (The paper's phase range [0, pi] is kept; the reference code samples
the same ranges and writes y = A sin(x - phase).)
"""

from __future__ import annotations

import math

import torch

from icml17.data.episodes import TaskBatch

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)


def sinusoid(x: torch.Tensor, amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """A sin(x - phase), broadcasting amplitude and phase over x."""
    return amplitude * torch.sin(x - phase)


def _uniform(
    shape: tuple[int, ...], bounds: tuple[float, float], generator: torch.Generator, dtype: torch.dtype
) -> torch.Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(shape, generator=generator, dtype=dtype)


def sample_sinusoid_tasks(
    num_tasks: int, shots: int, queries: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> TaskBatch:
    """T fresh tasks: support (T, K, 1) inputs and targets, query (T, Q, 1); ``info`` has amplitude and phase (T,)."""
    if num_tasks < 1 or shots < 1 or queries < 1:
        raise ValueError(f"num_tasks, shots and queries must be >= 1, got {num_tasks}, {shots}, {queries}")
    amplitude = _uniform((num_tasks,), AMPLITUDE, generator, dtype)
    phase = _uniform((num_tasks,), PHASE, generator, dtype)
    x = _uniform((num_tasks, shots + queries, 1), X_RANGE, generator, dtype)  # (T, K+Q, 1)
    y = sinusoid(x, amplitude.view(-1, 1, 1), phase.view(-1, 1, 1))  # (T, K+Q, 1)
    return TaskBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:], {"amplitude": amplitude, "phase": phase})
