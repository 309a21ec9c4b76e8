"""Linear solves with a curvature operator: conjugate gradient on ``A x = b`` for symmetric positive definite A.

TRPO's natural-gradient direction ``(H + lambda I)^-1 g`` is the use in this library; the solver sees A only as
``matvec`` (an operator's :meth:`~icml17.core.curvature.function.ParamsOperator.matvec`, or any function), so a
damped Hessian, a Gauss-Newton matrix or a dense test matrix are solved alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int = 10, tol: float = 1e-10
) -> torch.Tensor:
    """Approximately solve ``A x = b`` from ``x = 0`` by conjugate gradient (Hestenes and Stiefel 1952).

    At most ``iters`` products with A; the iteration stops once the squared residual ``||b - A x||^2`` is below
    ``tol``. On the CPU the loop breaks there; on other devices it runs all ``iters`` products without waiting for
    the device (no copy to the host per iteration), ``x`` frozen from the converged iteration on, which gives the
    same result. In exact arithmetic n iterations solve an n-dimensional system; fewer give the minimiser of
    the quadratic ``x^T A x / 2 - b^T x`` over the Krylov space of b (a truncated natural-gradient step).

    Args:
        matvec: ``v -> A v`` for flat vectors shaped like ``b``; A symmetric positive definite.
        b: the right-hand side, a 1-D tensor (its device and dtype are the solution's).
        iters: the most products with A (0 returns zeros).
        tol: the squared residual norm at which to stop.

    Returns:
        The approximate solution, shaped like ``b``.

    Raises:
        ValueError: ``b`` is not 1-D or ``iters`` is negative.

    Examples:
        >>> import torch
        >>> a = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
        >>> x = conjugate_gradient(lambda v: a @ v, torch.tensor([1.0, 2.0], dtype=torch.float64), iters=2)
        >>> torch.allclose(a @ x, torch.tensor([1.0, 2.0], dtype=torch.float64))  # two steps solve 2 x 2
        True
    """
    if b.dim() != 1:
        raise ValueError(f"b must be a flat vector (1-D), got shape {tuple(b.shape)}; flatten it first")
    if iters < 0:
        raise ValueError(f"iters must be >= 0, got {iters}")
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    on_cpu = b.device.type == "cpu"
    converged = torch.zeros((), dtype=torch.bool, device=b.device)
    for _ in range(iters):
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p if on_cpu else torch.where(converged, x, x + alpha * p)
        r = r - alpha * ap
        rr_new = r @ r
        if on_cpu:
            if rr_new < tol:
                break
        else:
            converged = converged | (rr_new < tol)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x
