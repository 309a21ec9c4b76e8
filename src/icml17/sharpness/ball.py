"""Worst-case loss increase over a ball: epsilon-sharpness and adaptive sharpness.

epsilon-sharpness (Keskar et al. 2017's idea, ball version as stated in Dinh et al. 2017, section 4):

    s_eps(theta) = max_{|delta|_2 <= eps} (L(theta + delta) - L(theta)) / (1 + L(theta)),

with second-order approximation lambda_max eps^2 / (2 (1 + L)) at a critical point. Adaptive sharpness (ASAM,
Kwon et al. 2021) uses the ellipsoid |delta / (|theta| + eta)|_2 <= rho, i.e. delta = (|theta| + eta) * u with
|u| <= rho; we keep the same 1 / (1 + L) normalisation as epsilon-sharpness (ASAM reports the raw increase).

The maximum is approached from below by projected normalised gradient ascent from several starts (random
directions on the sphere, plus any given directions such as +-the top Hessian eigenvector, which guarantees at
least the second-order value for small eps). The result is a lower bound on the true maximum.

The ascent runs on the model's device; the random starts come from a seeded CPU generator and are moved there, so
they are the same on every device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from icml17.core.curvature import ModelLoss
from icml17.core.functional import flatten, unflatten


@dataclass
class BallSharpness:
    value: float  # (max loss - loss) / (1 + loss)
    loss: float
    max_loss: float
    radius: float
    steps: int
    starts: int
    loss_evaluations: int


def ball_sharpness(loss: ModelLoss, radius: float, *, scale: torch.Tensor | None = None, steps: int = 20,
                   random_starts: int = 1, directions: Sequence[torch.Tensor] = (), step_size: float = 0.5,
                   seed: int = 0) -> BallSharpness:
    """max over |u| <= radius of L(theta + scale * u) by projected normalised gradient ascent on u.

    ``scale`` (flat, default ones) gives the adaptive version; ``directions`` are extra starts (scaled to the
    sphere); ``step_size`` is the ascent step as a fraction of ``radius``.
    """
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    theta = flatten(loss.point)
    scale = torch.ones_like(theta) if scale is None else scale.to(theta)
    base = float(loss.loss())
    gen = torch.Generator().manual_seed(seed)
    starts = [torch.randn(theta.numel(), generator=gen).to(theta) for _ in range(random_starts)]
    starts += [d.to(theta) for d in directions]
    best, evals = base, 1
    for u in starts:
        u = radius * u / u.norm()
        for _ in range(steps):
            value, g = loss.loss_and_grad(unflatten(theta + scale * u, loss.point))
            evals += 1
            best = max(best, float(value))
            gu = scale * flatten(g)
            gnorm = gu.norm()
            if float(gnorm) == 0.0:
                break
            u = u + step_size * radius * gu / gnorm
            u = u * torch.clamp(radius / u.norm(), max=1.0)
        best = max(best, float(loss.loss(unflatten(theta + scale * u, loss.point))))
        evals += 1
    return BallSharpness((best - base) / (1 + base), base, best, radius, steps, len(starts), evals)


def second_order_sharpness(lambda_max: float, loss: float, radius: float) -> float:
    """lambda_max eps^2 / (2 (1 + L)): epsilon-sharpness of the quadratic model at a critical point."""
    return lambda_max * radius ** 2 / (2 * (1 + loss))
