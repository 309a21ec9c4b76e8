"""Adaptive (scale-invariant) sharpness, worst-case and average-case: Kwon et al. 2021 (ASAM) and
Andriushchenko et al. 2023 ("A modern look at the relationship between sharpness and generalization").

For weights w (flat, every trainable parameter) and a per-parameter scale c:

    worst-case    S_max(w) = mean over batches B of [ max_{|u|_p <= rho} L_B(w + c * u) - L_B(w) ],  p in {2, inf}
    average-case  S_avg(w) = E_{z ~ N(0, I)} [ L(w + rho c * z) ] - L(w)

With c = |w| + eta this is ASAM's normalisation: delta = c * u, so |T_w^-1 delta|_p <= rho with
T_w = diag(|w| + eta). eta = 0 (the default, Andriushchenko et al.'s c = |w|) makes both measures exactly
invariant under every diagonal function-preserving rescaling w -> D w (alpha-scaling, per-neuron and batch-norm
scaling): L(D w + D c * u) = L(w + c * u) for the same u. ASAM's training uses eta = 0.01; c = 1 gives the
standard (Euclidean) sharpness. The worst case is taken per batch and averaged (Andriushchenko et al.'s
m-sharpness: m is the batch size the data comes in; one batch gives the full-batch sharpness).

The worst case is approached from below with Auto-PGD (Croce and Hein 2020), the ascent Andriushchenko et al. use:
normalised-gradient steps (the sign for l-infinity, g / |g|_2 for l2) with momentum 0.75, a step size starting at
2 rho and halved at the checkpoints p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06) (times
the iteration count) when fewer than 75% of the steps since the last checkpoint raised the loss, or when the
step was not halved at the last checkpoint and the best value did not improve; each halving restarts from the
best point. Deviations: the ascent starts from a seeded random point (uniform in the l-infinity box, or a random
direction at half the l2 radius), since at an exact minimum the gradient at u = 0 vanishes; the average case uses
the same seeded draws z at every point (common random numbers), so that it is a deterministic function of the
weights and its invariance can be checked to rounding. Values are raw loss increases, as in both papers (the
library's older ``adaptive_sharpness`` divides by 1 + L).

Everything runs on the model's device; random draws come from seeded CPU generators and are moved there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from icml17.core.curvature import Batch, ModelLoss
from icml17.core.curvature.base import module_mode
from icml17.core.functional import LossFn, flatten, unflatten

NORMS = ("l2", "linf")


@dataclass
class PerturbationSharpness:
    """What :func:`worst_case_sharpness` or :func:`average_case_sharpness` found.

    Attributes:
        value: the loss increase (worst case: mean over batches of the best increase found, a lower bound on
            the maximum; average case: the Monte Carlo mean).
        loss: the loss at w (mean over the data).
        rho: the radius.
        norm: ``"l2"`` or ``"linf"`` (the average case: ``"gaussian"``).
        adaptive: whether c = |w| + eta (else c = 1).
        evaluations: loss (and gradient) evaluations spent.
    """

    value: float
    loss: float
    rho: float
    norm: str
    adaptive: bool
    evaluations: int


def perturbation_scale(loss: ModelLoss, adaptive: bool = True, eta: float = 0.0) -> torch.Tensor:
    """c: |w| + eta for adaptive sharpness, ones for the standard one (flat, in the loss's layout).

    Args:
        loss: the model's loss at w.
        adaptive: c = |w| + eta if True, else ones.
        eta: added to |w| (ASAM trains with 0.01; 0 keeps exact invariance under rescalings).

    Returns:
        The flat scale, on the loss's device and dtype.

    Raises:
        ValueError: ``eta`` < 0.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    theta = flatten(loss.point)
    return theta.abs() + eta if adaptive else torch.ones_like(theta)


def apgd_checkpoints(steps: int) -> list[int]:
    """Auto-PGD's checkpoints ceil(p_j steps), p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06).

    Args:
        steps: the iteration budget.

    Returns:
        The distinct iteration counts at which the step size is reconsidered, ascending, excluding 0.
    """
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    marks = [math.ceil(round(q * steps, 9)) for q in p[1:]]  # rounded: 0.7 * 20 is 14.000000000000002 in floats
    return sorted({m for m in marks if 0 < m <= steps})


def _project(u: torch.Tensor, radius: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return u.clamp(-radius, radius)
    n = u.norm()
    return u * (radius / n) if float(n) > radius else u


def _direction(g: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return torch.sign(g)
    n = g.norm()
    return g / n if float(n) > 0 else g


def apgd(
    value_grad: Callable[[torch.Tensor], tuple[float, torch.Tensor]],
    start: torch.Tensor,
    radius: float,
    norm: str,
    steps: int = 20,
    momentum: float = 0.75,
    success_fraction: float = 0.75,
) -> tuple[float, torch.Tensor, int]:
    """Auto-PGD (Croce and Hein 2020) maximising f over the l2 ball or l-infinity box of ``radius``.

    Args:
        value_grad: u -> (f(u), grad f(u)), u flat.
        start: the first point (projected onto the set).
        radius: the ball's radius or the box's half-width, > 0.
        norm: ``"l2"`` or ``"linf"``.
        steps: iterations (each one value and gradient).
        momentum: the weight of the new step against the previous one (theirs: 0.75).
        success_fraction: halve the step when fewer steps than this fraction raised f since the last
            checkpoint (theirs: 0.75).

    Returns:
        (the best value found, the point that reached it, evaluations spent).

    Raises:
        ValueError: an unknown norm, ``radius`` <= 0 or ``steps`` < 1.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if radius <= 0 or steps < 1:
        raise ValueError(f"need radius > 0 and steps >= 1, got radius={radius}, steps={steps}")
    checkpoints = set(apgd_checkpoints(steps))
    eta = 2.0 * radius
    x = _project(start, radius, norm)
    f_x, g = value_grad(x)
    evals = 1
    best_f, best_x, best_g = f_x, x, g
    x_prev = x
    raised, last_checkpoint = 0, 0
    eta_before, best_before = eta, best_f  # the step size and best value at the previous checkpoint
    for k in range(steps):
        z = _project(x + eta * _direction(g, norm), radius, norm)
        x_new = z if k == 0 else _project(x + momentum * (z - x) + (1 - momentum) * (x - x_prev), radius, norm)
        f_new, g_new = value_grad(x_new)
        evals += 1
        raised += f_new > f_x
        x_prev, x, f_x, g = x, x_new, f_new, g_new
        if f_new > best_f:
            best_f, best_x, best_g = f_new, x_new, g_new
        if k + 1 in checkpoints:
            too_few = raised < success_fraction * (k + 1 - last_checkpoint)
            stalled = eta_before == eta and best_before == best_f
            eta_before, best_before = eta, best_f
            if too_few or stalled:
                eta /= 2
                x = x_prev = best_x
                f_x, g = best_f, best_g
            raised, last_checkpoint = 0, k + 1
    return best_f, best_x, evals


def _start(n: int, radius: float, norm: str, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    if norm == "linf":
        return ((torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * radius).to(like)
    z = torch.randn(n, generator=gen, dtype=torch.float64)
    return (z * (radius / 2) / z.norm()).to(like)


def _loss(
    model: nn.Module, loss_fn: LossFn, data: Batch | Iterable[Batch], dtype: torch.dtype | None, mode: str
) -> ModelLoss:
    return ModelLoss(model, loss_fn, data, dtype=dtype, mode=mode)


def worst_case_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    data: Batch | Iterable[Batch],
    *,
    rho: float,
    norm: str = "linf",
    adaptive: bool = True,
    eta: float = 0.0,
    steps: int = 20,
    restarts: int = 1,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    mode: str = "eval",
) -> PerturbationSharpness:
    """max_{|u|_p <= rho} L_B(w + c * u) - L_B(w), by Auto-PGD on each batch B, averaged over the batches.

    Args:
        model: the network, measured as it is (not changed).
        loss_fn: ``loss_fn(outputs, targets)``, a batch mean.
        data: one ``(x, y)`` batch or several (the worst case is taken per batch: m-sharpness).
        rho: the radius in the scaled coordinates u, > 0.
        norm: ``"linf"`` or ``"l2"``.
        adaptive: c = |w| + eta (adaptive sharpness) if True, else c = 1 (standard sharpness).
        eta: ASAM's offset added to |w|.
        steps: Auto-PGD iterations per batch (Andriushchenko et al.: 20).
        restarts: random starts per batch, the best kept (Auto-PGD is a local ascent: a convex loss's maximum
            over the box sits at one of its vertices, and one start may end at a lesser one).
        seed: the seed of the random starts.
        dtype: compute in this dtype (default: the model's).
        mode: ``"eval"`` or ``"train"``.

    Returns:
        A :class:`PerturbationSharpness`; its value is a lower bound on the maximum.

    Raises:
        ValueError: an unknown norm, ``rho`` <= 0, ``eta`` < 0, or data the model cannot take.

    Examples:
        For a quadratic loss at its minimum the l2 worst case is rho^2 lambda_max(C H C) / 2:

        >>> import torch
        >>> from torch import nn
        >>> x = torch.eye(2, dtype=torch.float64)
        >>> model = nn.Linear(2, 1, bias=False).double()
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.tensor([[1.0, 2.0]]))
        >>> y = model(x).detach()                         # w is the exact minimum: H = 2 X^T X / 2 = I
        >>> s = worst_case_sharpness(model, nn.functional.mse_loss, (x, y), rho=0.1, norm="l2")
        >>> round(s.value, 6)                             # 0.1^2 * lambda_max(diag(1, 4)) / 2
        0.02
    """
    if rho <= 0 or restarts < 1:
        raise ValueError(f"need rho > 0 and restarts >= 1, got rho={rho}, restarts={restarts}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    loss = _loss(model, loss_fn, data, dtype, mode)
    theta = flatten(loss.point)
    c = perturbation_scale(loss, adaptive, eta)
    gen = torch.Generator().manual_seed(seed)
    f = torch.func.grad_and_value(loss.batch_loss)
    total, acc, evals, base_acc = 0, 0.0, 0, 0.0
    with module_mode(loss.model, mode == "train"):
        for x, y, n in loss.batches():

            def value_grad(u: torch.Tensor, x=x, y=y) -> tuple[float, torch.Tensor]:
                g, v = f(unflatten(theta + c * u, loss.point), x, y)
                return float(v), c * flatten(g)

            with torch.no_grad():
                base = float(loss.batch_loss(loss.point, x, y))
            best = base
            for _ in range(restarts):
                found, _, spent = apgd(value_grad, _start(theta.numel(), rho, norm, gen, theta), rho, norm, steps)
                best, evals = max(best, found), evals + spent
            acc += n * (best - base)
            base_acc += n * base
            total += n
            evals += 1
    return PerturbationSharpness(acc / total, base_acc / total, rho, norm, adaptive, evals)


def average_case_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    data: Batch | Iterable[Batch],
    *,
    rho: float,
    samples: int = 16,
    adaptive: bool = True,
    eta: float = 0.0,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    mode: str = "eval",
) -> PerturbationSharpness:
    """E_z[L(w + rho c * z)] - L(w), z ~ N(0, I), by a Monte Carlo mean over ``samples`` seeded draws.

    Args:
        model: the network, measured as it is (not changed).
        loss_fn: ``loss_fn(outputs, targets)``, a batch mean.
        data: one ``(x, y)`` batch or several (the loss is their mean).
        rho: the noise's scale in the coordinates u = delta / c, > 0.
        samples: Monte Carlo draws (the same draws at every point: common random numbers).
        adaptive: c = |w| + eta if True, else c = 1.
        eta: ASAM's offset added to |w|.
        seed: the seed of the draws.
        dtype: compute in this dtype (default: the model's).
        mode: ``"eval"`` or ``"train"``.

    Returns:
        A :class:`PerturbationSharpness` with ``norm="gaussian"``.

    Raises:
        ValueError: ``rho`` <= 0, ``samples`` < 1, ``eta`` < 0.
    """
    if rho <= 0 or samples < 1:
        raise ValueError(f"need rho > 0 and samples >= 1, got rho={rho}, samples={samples}")
    loss = _loss(model, loss_fn, data, dtype, mode)
    theta = flatten(loss.point)
    c = perturbation_scale(loss, adaptive, eta)
    gen = torch.Generator().manual_seed(seed)
    base = float(loss.loss())
    total = 0.0
    for _ in range(samples):
        z = torch.randn(theta.numel(), generator=gen, dtype=torch.float64).to(theta)
        total += float(loss.loss(unflatten(theta + rho * c * z, loss.point)))
    return PerturbationSharpness(total / samples - base, base, rho, "gaussian", adaptive, samples + 1)
