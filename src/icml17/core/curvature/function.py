"""Curvature of any scalar function of a parameter dict, as a symmetric operator on flat vectors.

:class:`~icml17.core.curvature.operator.HessianOperator` needs a model, a loss and data; a meta-objective (the
KL of a policy after an inner adaptation step, say) is a function of the parameters that fits no such mould.
Here the function itself is enough:

- :class:`ParamsOperator`: any symmetric product ``v -> P v`` on parameter dicts, as ``A v = reduce(P v) +
  damping v`` on flat vectors. ``reduce`` runs on every product before the damping: a sum over
  ``torch.distributed`` ranks when each process holds a share of the function (its terms divided by the whole
  count), so that every rank applies the same operator.
- :class:`FunctionHessian`: ``P`` the exact Hessian of a scalar ``fn`` at a point, forward-over-reverse
  (``jvp`` of ``grad``, one primal pass per product) or reverse-over-reverse from a gradient graph built once.
- :class:`GaussNewton`: ``P = J^T M J``, J the Jacobian of ``outputs(theta)`` at the point and M a metric on
  the outputs' tangents: the Hessian of ``D(outputs(theta_0), outputs(theta))`` at theta_0 for a divergence D
  whose Hessian in its second argument is M (the first derivative vanishes there, so no second derivatives of
  ``outputs`` are needed).

Every product runs on the point's device and in its dtype; nothing is copied to the host.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.func import grad, jvp, vjp

from icml17.core.curvature.products import forward_over_reverse
from icml17.core.functional import Params, flatten, unflatten

FUNCTION_PRODUCTS = ("forward-over-reverse", "reverse-over-reverse")  # a function has no layers to go layerwise


class ParamsOperator:
    """A symmetric product on parameter dicts as the operator ``A v = reduce(P v) + damping v`` on flat vectors.

    The flat layout is ``point``'s, entry by entry in its key order (:func:`icml17.core.functional.flatten`).
    ``product=None`` stands for ``P = 0``: a process whose share of a sharded function is empty still takes
    part in every ``reduce`` (an all-reduce must be joined by all ranks).

    Args:
        product: ``v -> P v`` on dicts shaped like ``point`` (P symmetric), or None for the zero product.
        point: the parameters that fix the layout, the dtype and the device (values are not read).
        damping: added as ``damping * v`` after the reduction (Tikhonov damping, as in TRPO's ``H + lambda I``).
        reduce: applied to every flat product ``P v`` before the damping, e.g.
            :func:`icml17.core.distributed.all_reduce_sum`; None: the identity.

    Raises:
        ValueError: ``point`` is empty or ``damping`` is negative or not finite.
    """

    def __init__(
        self,
        product: Callable[[Params], Params] | None,
        point: Params,
        *,
        damping: float = 0.0,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        if not point:
            raise ValueError("point has no parameters: give the dict of tensors the operator acts on")
        if not (math.isfinite(damping) and damping >= 0.0):
            raise ValueError(f"damping must be a finite number >= 0, got {damping}")
        self.product, self.point, self.damping, self.reduce = product, point, damping, reduce
        first = next(iter(point.values()))
        self.size = sum(p.numel() for p in point.values())
        self.dtype, self.device = first.dtype, first.device
        self.n_hvp = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """One product.

        Args:
            v: a flat vector of ``size`` entries (cast to the operator's dtype).

        Returns:
            ``reduce(P v) + damping v``, shape ``(size,)``.

        Raises:
            ValueError: ``v`` does not have ``size`` entries.
        """
        if v.shape != (self.size,):
            raise ValueError(
                f"vector has shape {tuple(v.shape)} ({v.numel()} entries), the operator acts on "
                f"flat vectors of {self.size} entries"
            )
        v = v.to(self.dtype)
        pv = flatten(self.product(unflatten(v, self.point))) if self.product is not None else torch.zeros_like(v)
        if self.reduce is not None:
            pv = self.reduce(pv)
        self.n_hvp += 1
        return pv + self.damping * v if self.damping else pv

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """Products with each column, one :meth:`matvec` after another (the estimators' interface).

        Args:
            vectors: ``(size, k)``.

        Returns:
            ``(size, k)``, column j the product with column j.

        Raises:
            ValueError: ``vectors`` is not ``(size, k)``.
        """
        if vectors.dim() != 2 or vectors.shape[0] != self.size:
            raise ValueError(f"vectors have shape {tuple(vectors.shape)}, the operator needs ({self.size}, k)")
        return torch.stack([self.matvec(c) for c in vectors.T], dim=1)

    def dense(self) -> torch.Tensor:
        """The explicit matrix from ``size`` products: for small problems and tests.

        Returns:
            ``(size, size)`` on the operator's device and in its dtype.
        """
        return self.matmat(torch.eye(self.size, dtype=self.dtype, device=self.device))


class FunctionHessian(ParamsOperator):
    """The Hessian of a scalar function of a parameter dict at ``point`` (plus damping), exact.

    ``product="forward-over-reverse"`` computes ``jvp(grad(fn), (point,), (v,))``: one primal forward and
    backward pass per product, little memory. ``"reverse-over-reverse"`` builds the gradient's graph once, on
    the first product, and runs one reverse pass through it per product (the graph stays in memory); it is
    also the way for functions whose gradient torch cannot differentiate in forward mode (``mse_loss``).

    Args:
        fn: ``params -> scalar tensor``, twice differentiable by ``torch.func`` (no ``.item()`` inside).
        point: where the Hessian is taken (detached here; it fixes the layout, dtype and device).
        damping: see :class:`ParamsOperator`.
        reduce: see :class:`ParamsOperator`; with a sharded ``fn`` (this rank's terms), the sum over ranks.
        product: ``"forward-over-reverse"`` (default) or ``"reverse-over-reverse"``.

    Raises:
        ValueError: an unknown ``product``, or a bad ``point`` or ``damping`` (:class:`ParamsOperator`).
    """

    def __init__(
        self,
        fn: Callable[[Params], torch.Tensor],
        point: Params,
        *,
        damping: float = 0.0,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
        product: str = "forward-over-reverse",
    ):
        if product not in FUNCTION_PRODUCTS:
            raise ValueError(f"product must be one of {FUNCTION_PRODUCTS}, got {product!r}")
        point = {k: p.detach() for k, p in point.items()}
        self.fn, self.method = fn, product
        g = grad(fn)
        hv = forward_over_reverse(g, point) if product == "forward-over-reverse" else _cached_pullback(g, point)
        super().__init__(hv, point, damping=damping, reduce=reduce)


def _cached_pullback(g: Callable[[Params], Params], point: Params) -> Callable[[Params], Params]:
    """``v -> H v`` as the pullback of ``g`` at ``point``, its graph built on the first call and kept."""
    pullback: list[Callable[[Params], tuple[Params]]] = []

    def product(v: Params) -> Params:
        if not pullback:
            pullback.append(vjp(g, point)[1])
        return pullback[0](v)[0]

    return product


class GaussNewton(ParamsOperator):
    """``J^T M J`` (plus damping): J the Jacobian of ``outputs`` at ``point``, M a symmetric metric on its tangents.

    This is the Hessian at theta_0 of ``D(outputs(theta_0), outputs(theta))`` for a divergence D that is zero
    with zero gradient at theta_0 and has Hessian M there (a KL divergence: M the Fisher metric), and costs a
    forward-mode product through ``outputs`` plus one reverse pass through a graph kept for all products,
    instead of third derivatives.

    Args:
        outputs: ``params -> outputs`` (a tensor or a tuple of tensors), differentiable by ``torch.func``.
        point: where J is taken (detached here; it fixes the layout, dtype and device).
        metric: ``(outputs at the point, tangents of the outputs) -> M tangents``, the same structure as the
            outputs; M must be symmetric positive semi-definite for the operator to be.
        damping: see :class:`ParamsOperator`.
        reduce: see :class:`ParamsOperator`.

    Raises:
        ValueError: a bad ``point`` or ``damping`` (:class:`ParamsOperator`).
    """

    def __init__(
        self,
        outputs: Callable[[Params], Any],
        point: Params,
        metric: Callable[[Any, Any], Any],
        *,
        damping: float = 0.0,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        point = {k: p.detach() for k, p in point.items()}
        super().__init__(self._product, point, damping=damping, reduce=reduce)
        self.outputs, self.metric = outputs, metric
        self._at, self._pullback = vjp(outputs, point)  # the outputs at the point and J^T, for every product

    def _product(self, v: Params) -> Params:
        _, tangents = jvp(self.outputs, (self.point,), (v,))  # J v
        return self._pullback(self.metric(self._at, tangents))[0]
