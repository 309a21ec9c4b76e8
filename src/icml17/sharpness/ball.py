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
    """What :func:`ball_sharpness` found: a lower bound on the largest loss in the ball.

    Attributes:
        value: (max loss - loss) / (1 + loss), a fraction.
        loss: the loss at theta.
        max_loss: the largest loss found in the ball.
        radius: the ball's radius.
        steps: ascent steps per start.
        starts: starting points tried.
        loss_evaluations: losses (with gradients) computed.
    """

    value: float  # (max loss - loss) / (1 + loss)
    loss: float
    max_loss: float
    radius: float
    steps: int
    starts: int
    loss_evaluations: int


def ball_sharpness(
    loss: ModelLoss,
    radius: float,
    *,
    scale: torch.Tensor | None = None,
    steps: int = 20,
    random_starts: int = 1,
    directions: Sequence[torch.Tensor] = (),
    step_size: float = 0.5,
    seed: int = 0,
) -> BallSharpness:
    """max over |u| <= radius of L(theta + scale * u) by projected normalised gradient ascent on u.

    Args:
        loss: the model's loss as a function of its parameters (``HessianOperator(...).loss``).
        radius: eps (or rho for the adaptive version), > 0.
        scale: flat per-parameter scale (default ones: epsilon-sharpness; ``|theta| + eta``: adaptive).
        steps: ascent steps per start.
        random_starts: random directions on the sphere to start from (seeded).
        directions: extra starts, scaled to the sphere (e.g. +-the top Hessian eigenvector).
        step_size: the ascent step as a fraction of ``radius``.
        seed: the seed of the random starts.

    Returns:
        A :class:`BallSharpness`.

    Raises:
        ValueError: ``radius`` <= 0.
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
    """lambda_max eps^2 / (2 (1 + L)): epsilon-sharpness of the quadratic model at a critical point.

    Args:
        lambda_max: the Hessian's largest eigenvalue.
        loss: the loss L at the point.
        radius: eps.

    Returns:
        The second-order value, a fraction like :func:`ball_sharpness`'s.
    """
    return lambda_max * radius**2 / (2 * (1 + loss))
