"""The PAC-Bayes flatness and magnitude-aware sharpness measures of Jiang, Neyshabur, Mobahi, Krishnan, Bengio
2020 ("Fantastic generalization measures and where to find them", their measures pacbayes.flatness,
pacbayes.mag.flatness and mag.sharpness.flatness).

Each finds, by bisection, the largest noise level whose effect on the training error stays at a target deviation
d = 0.1 (ten points of training accuracy), and reports 1 / level^2:

- ``pacbayes_flatness``: sigma' with u ~ N(0, sigma'^2 I); value 1 / sigma'^2.
- ``pacbayes_mag_flatness``: alpha' with u_i ~ N(0, alpha'^2 w_i^2 + eps^2), eps = 1e-3; value 1 / alpha'^2.
- ``mag_sharpness_flatness``: alpha' with the worst u in the box |u_i| <= alpha' |w_i| + eps; value 1 / alpha'^2.

The deviation is |E[error(w + u)] - error(w)| on the data (a Monte Carlo mean over ``samples`` draws for the
Gaussian measures; for the worst case, the error at the point reached by ``ascent_steps`` projected
sign-gradient steps on the loss inside the box, from its centre plus a seeded random corner step). The search
is theirs: the level starts at 1, bisects [0, 2] at most 15 times, and stops when the deviation is within 0.01 of
d. Deviations: the same seeded draws are used at every level (common random numbers; Jiang et al. draw afresh),
so that the search is a deterministic function of the weights; every trainable parameter is perturbed (biases
and batch-norm parameters too: Jiang et al. first fold batch norm into the layer before it). Where the outputs
are not class scores with integer labels, the deviation is in the loss instead of the error (``criterion``).

Values are capped by the search interval: a level at its top (2) or bottom (2^-15 * 2) is reported with
``at_bound``, and the measure then says only "at least" or "at most".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from icml17.core.curvature import Batch, ModelLoss
from icml17.core.curvature.base import module_mode
from icml17.core.functional import LossFn, Params, flatten, unflatten

KINDS = ("pacbayes", "pacbayes_mag", "mag_sharpness")


@dataclass
class SigmaSearch:
    """What :func:`sigma_search` found.

    Attributes:
        sigma: the level returned (the last midpoint).
        deviation: the deviation measured there.
        steps: bisection steps run.
        at_bound: the level ended at the interval's top or bottom bisection step.
    """

    sigma: float
    deviation: float
    steps: int
    at_bound: bool


def sigma_search(
    deviation: Callable[[float], float],
    *,
    target: float = 0.1,
    tolerance: float = 0.01,
    upper: float = 2.0,
    depth: int = 15,
) -> SigmaSearch:
    """Jiang et al.'s bisection: the largest level sigma in [0, upper] whose deviation is ``target``.

    Args:
        deviation: sigma -> the measured deviation (increasing in sigma, up to noise).
        target: d, the deviation sought (theirs: 0.1).
        tolerance: stop when |deviation - target| is below this (theirs: 0.01).
        upper: the interval's top (theirs: 2).
        depth: bisection steps at most (theirs: 15).

    Returns:
        A :class:`SigmaSearch`.

    Raises:
        ValueError: non-positive ``target``, ``tolerance``, ``upper`` or ``depth``.
    """
    if target <= 0 or tolerance <= 0 or upper <= 0 or depth < 1:
        raise ValueError(
            f"need positive target, tolerance, upper and depth; got {target}, {tolerance}, {upper}, {depth}"
        )
    lower, high = 0.0, upper
    sigma, dev = upper / 2, float("nan")
    for step in range(1, depth + 1):
        sigma = (lower + high) / 2
        dev = deviation(sigma)
        if abs(dev - target) < tolerance:
            return SigmaSearch(sigma, dev, step, False)
        if dev > target:
            high = sigma
        else:
            lower = sigma
    edge = upper / 2**depth
    return SigmaSearch(sigma, dev, depth, sigma <= edge or sigma >= upper - edge)


@dataclass
class PacBayesFlatness:
    """What :func:`pacbayes_flatness` found.

    Attributes:
        value: 1 / level^2.
        kind: ``"pacbayes"``, ``"pacbayes_mag"`` or ``"mag_sharpness"``.
        level: sigma' (or alpha').
        deviation: the deviation at that level.
        criterion: ``"error"`` or ``"loss"``.
        steps: bisection steps.
        at_bound: the level hit the search interval's edge.
    """

    value: float
    kind: str
    level: float
    deviation: float
    criterion: str
    steps: int
    at_bound: bool


def _is_classifier(loss: ModelLoss) -> bool:
    for x, y, _ in loss.batches():
        with torch.no_grad(), module_mode(loss.model, loss.mode == "train"):
            out = functional_call(loss.model, loss.point, (x[:1],), strict=False)
        return not y.is_floating_point() and out.dim() == 2
    return False


def _error(loss: ModelLoss, params: Params) -> float:
    def wrong(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(loss.model, params, (x,), strict=False)
        return (out.argmax(1) != y).to(out.dtype).mean()

    with torch.no_grad():
        return float(loss.accumulate(wrong))


def pacbayes_flatness(
    model: nn.Module,
    loss_fn: LossFn,
    data: Batch | Iterable[Batch],
    *,
    kind: str = "pacbayes",
    target: float = 0.1,
    tolerance: float = 0.01,
    samples: int = 10,
    eps: float = 1e-3,
    ascent_steps: int = 10,
    criterion: str = "auto",
    seed: int = 0,
    dtype: torch.dtype | None = None,
    mode: str = "eval",
) -> PacBayesFlatness:
    """One of Jiang et al.'s flatness measures (see the module docstring), 1 / level^2.

    Args:
        model: the network (not changed).
        loss_fn: ``loss_fn(outputs, targets)``, a batch mean.
        data: one ``(x, y)`` batch or several (theirs: the whole training set).
        kind: ``"pacbayes"``, ``"pacbayes_mag"`` or ``"mag_sharpness"``.
        target: the deviation d (theirs: 0.1).
        tolerance: the search stops when the deviation is this close to d (theirs: 0.01; a tiny value runs all 15
            bisection steps, which resolves the level to 2^-14 instead of stopping at the first close midpoint).
        samples: Monte Carlo draws per level for the Gaussian kinds (theirs: 10).
        eps: the magnitude-aware offset (theirs: 1e-3).
        ascent_steps: projected sign-gradient steps of the worst-case kind.
        criterion: ``"error"`` (0-1 training error; needs class scores and integer labels), ``"loss"``, or
            ``"auto"`` (the error where it is defined).
        seed: the seed of the draws.
        dtype: compute in this dtype (default: the model's).
        mode: ``"eval"`` or ``"train"``.

    Returns:
        A :class:`PacBayesFlatness`.

    Raises:
        ValueError: an unknown kind or criterion, ``"error"`` on data without class labels, ``samples`` < 1.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if criterion not in ("auto", "error", "loss"):
        raise ValueError(f"criterion must be 'auto', 'error' or 'loss', got {criterion!r}")
    if samples < 1 or ascent_steps < 1:
        raise ValueError(f"need samples >= 1 and ascent_steps >= 1, got {samples}, {ascent_steps}")
    loss = ModelLoss(model, loss_fn, data, dtype=dtype, mode=mode)
    classifier = _is_classifier(loss)
    if criterion == "error" and not classifier:
        raise ValueError("criterion 'error' needs class scores (N, C) and integer labels; use criterion='loss'")
    criterion = "error" if criterion == "auto" and classifier else ("loss" if criterion == "auto" else criterion)
    theta = flatten(loss.point)

    def score(params: Params) -> float:
        return _error(loss, params) if criterion == "error" else float(loss.loss(params))

    base = score(loss.point)

    def draws() -> Iterable[torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)  # the same draws at every level
        for _ in range(samples):
            yield torch.randn(theta.numel(), generator=gen, dtype=torch.float64).to(theta)

    def gaussian(level: float) -> float:
        std = level * torch.ones_like(theta) if kind == "pacbayes" else (level**2 * theta**2 + eps**2).sqrt()
        mean = sum(score(unflatten(theta + std * z, loss.point)) for z in draws()) / samples
        return abs(mean - base)

    def worst(level: float) -> float:
        bound = level * theta.abs() + eps
        gen = torch.Generator().manual_seed(seed)
        u = (torch.rand(theta.numel(), generator=gen, dtype=torch.float64) * 2 - 1).to(theta) * bound
        for _ in range(ascent_steps):  # sign ascent on the loss, projected on the box
            _, g = loss.loss_and_grad(unflatten(theta + u, loss.point))
            u = torch.maximum(torch.minimum(u + 0.5 * bound * torch.sign(flatten(g)), bound), -bound)
        return abs(score(unflatten(theta + u, loss.point)) - base)

    found = sigma_search(worst if kind == "mag_sharpness" else gaussian, target=target, tolerance=tolerance)
    return PacBayesFlatness(
        1.0 / found.sigma**2, kind, found.sigma, found.deviation, criterion, found.steps, found.at_bound
    )
