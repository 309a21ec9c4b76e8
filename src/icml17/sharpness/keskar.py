"""Keskar et al. 2017 (arXiv 1609.04836), Metric 2.1: sharpness over a box in a (possibly random) subspace.

For weights x (flat, n) and A (n x p): C_eps = {z in R^p : |z_i| <= eps (|(A^+ x)_i| + 1)} and

    phi_{x,f}(eps, A) = 100 (max_{y in C_eps} f(x + A y) - f(x)) / (1 + f(x)).

Units: ``KeskarSharpness.value`` is the fraction (max - f) / (1 + f), the same convention as the other
sharpness measures (epsilon, adaptive); ``.percent`` is Keskar et al.'s phi (100 times the fraction).

A = I (p = n) gives the full-space box; the paper also uses random A with p = 100 columns. No official code was
released; following the paper, the inner maximum is found with a few iterations of L-BFGS-B (SciPy), or, as an
alternative, by projected (clipped) sign-gradient ascent. Both start from a seeded uniform point of the box rather
than y = 0: at an exact critical point the gradient vanishes and an ascent from 0 would never move.
Deviation worth knowing: the random A here has i.i.d. N(0, 1/p) entries (the paper does not state its
distribution), and A^+ x is computed by least squares.

Devices: losses and gradients run on the model's device. The random draws (A, the start point) come from CPU
generators and A^+ x is solved once on the CPU in float64, so the box is the same on every device (and MPS, which
has no float64, works); L-BFGS-B (SciPy) exchanges one gradient with the CPU per evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize

from icml17.core.curvature import ModelLoss
from icml17.core.functional import flatten, unflatten


@dataclass
class KeskarSharpness:
    """What :func:`keskar_sharpness` found.

    Attributes:
        value: (max loss - loss) / (1 + loss), a fraction; Keskar et al.'s phi is :attr:`percent`.
        loss: the loss at theta.
        max_loss: the largest loss found in the box.
        eps: the box's relative size.
        p: the subspace's dimension (n for A = I).
        method: ``"lbfgsb"`` or ``"projected"``.
        iterations: optimiser iterations run.
        converged: L-BFGS-B stopped on its own convergence test rather than on ``maxiter`` (always False for the
            projected ascent, which has none). ``value`` is the rise at the best point found: a lower bound on phi,
            tight only where the optimiser converged.
    """

    value: float  # (max loss - loss) / (1 + loss), a fraction; Keskar et al.'s phi is ``percent``
    loss: float
    max_loss: float
    eps: float
    p: int  # subspace dimension (n for A = I)
    method: str
    iterations: int
    converged: bool = False

    @property
    def percent(self) -> float:
        """phi as Keskar et al. report it: 100 (max loss - loss) / (1 + loss)."""
        return 100.0 * self.value


def random_subspace(n: int, p: int = 100, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A random (n, p) matrix with N(0, 1/p) entries: Keskar et al.'s random subspace.

    Args:
        n: rows, the model's parameter count.
        p: columns, the subspace's dimension (theirs: 100).
        seed: the seed (a CPU generator: the same matrix everywhere).
        dtype: the matrix's dtype.

    Returns:
        (n, p).
    """
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, p, generator=gen, dtype=torch.float64) / p**0.5).to(dtype)


def keskar_sharpness(
    loss: ModelLoss,
    eps: float = 1e-3,
    *,
    subspace: torch.Tensor | None = None,
    method: str = "lbfgsb",
    maxiter: int = 10,
    step_fraction: float = 0.25,
    seed: int = 0,
) -> KeskarSharpness:
    """phi(eps, A): the largest loss in the box |y_i| <= eps (|(A^+ theta)_i| + 1) around theta, along A y.

    Args:
        loss: the model's loss as a function of its parameters (``HessianOperator(...).loss``).
        eps: the box's relative size (theirs: 1e-3, 5e-4).
        subspace: A, an (n, p) matrix (:func:`random_subspace`); None: A = I, the whole space.
        method: ``"lbfgsb"`` (theirs: L-BFGS-B on the box) or ``"projected"`` (signed projected ascent).
        maxiter: optimiser iterations (theirs: 10).
        step_fraction: the projected ascent's step as a fraction of the box.
        seed: the seed of the random starting point.

    Returns:
        A :class:`KeskarSharpness`. Its value is a lower bound on phi (the best point found); where
        ``converged`` is False it may be far below: 10 iterations, Keskar et al.'s budget, come close at eps 1e-3
        but stop short on larger boxes (tested at eps 1e-2); raise ``maxiter`` until it converges for the maximum.

    Raises:
        ValueError: ``eps`` <= 0, an unknown method, or a subspace of the wrong height.
    """
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if method not in ("lbfgsb", "projected"):
        raise ValueError(f"method must be 'lbfgsb' or 'projected', got {method!r}")
    x = flatten(loss.point)
    if subspace is None:
        bound = eps * (x.abs() + 1)
        lift = lambda y: y  # noqa: E731
        pull = lambda g: g  # noqa: E731
    else:
        if subspace.shape[0] != x.numel():
            raise ValueError(f"A has {subspace.shape[0]} rows, the model has {x.numel()} parameters")
        A = subspace.to(x)
        # A^+ x in float64 on the CPU (A as the model's dtype rounds it): the same box on every device
        A_host = subspace.to(x.dtype).cpu().double()
        coords = torch.linalg.lstsq(A_host, x.cpu().double()[:, None]).solution[:, 0]
        bound = (eps * (coords.abs() + 1)).to(x)
        lift = lambda y: A @ y  # noqa: E731
        pull = lambda g: A.T @ g  # noqa: E731
    base = float(loss.loss())
    gen = torch.Generator().manual_seed(seed)
    y0 = (torch.rand(bound.numel(), generator=gen, dtype=torch.float64) * 2 - 1).to(bound) * bound

    def value_grad(y: torch.Tensor) -> tuple[float, torch.Tensor]:
        value, g = loss.loss_and_grad(unflatten(x + lift(y), loss.point))
        return float(value), pull(flatten(g))

    if method == "lbfgsb":

        def objective(y_np: np.ndarray) -> tuple[float, np.ndarray]:
            value, g = value_grad(torch.as_tensor(y_np, dtype=x.dtype, device=x.device))
            return -value, -g.cpu().double().numpy()

        b = bound.cpu().double().numpy()
        res = minimize(
            objective,
            y0.cpu().double().numpy(),
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(-b, b)),
            options={"maxiter": maxiter},
        )
        y = torch.as_tensor(res.x, dtype=x.dtype, device=x.device)
        iterations, converged = int(res.nit), res.status == 0  # 1: the iteration limit stopped it
    else:
        y = y0
        for _ in range(maxiter):
            _, g = value_grad(y)
            y = torch.maximum(torch.minimum(y + step_fraction * bound * torch.sign(g), bound), -bound)
        iterations, converged = maxiter, False
    top = max(base, float(loss.loss(unflatten(x + lift(y), loss.point))))
    return KeskarSharpness((top - base) / (1 + base), base, top, eps, bound.numel(), method, iterations, converged)
