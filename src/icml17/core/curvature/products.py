"""How a loss's Hessian-vector products are computed: one strategy object, chosen once per loss.

- :class:`ForwardOverReverse`: ``jvp(grad(L), (theta,), (v,))``, vmapped over a block of probe vectors: any
  model, any loss whose gradient torch can differentiate in forward mode.
- :class:`ReverseOverReverse`: ``vjp`` of ``grad``, equally exact: for losses whose gradient torch cannot
  differentiate in forward mode (:func:`forward_mode_unsupported`), or on request.
- :class:`Linearized` (``linearize=True``): forward-over-reverse traced once per batch by
  ``torch.func.linearize``, so later products only run the tangent computation.
- :class:`~icml17.core.curvature.layerwise.LayerwiseProducts`: cached primal pass and per-layer R-operator,
  for the plain ``nn.Sequential`` chains that :func:`layerwise_unsupported` accepts.

:func:`choose_products` picks one from explicit checks (the requested ``product``, the model's structure, the
loss function) when the loss is built, so no product method branches on how it should run.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import nn
from torch.func import grad, jvp, linearize, vjp, vmap

from icml17.core.curvature.base import Evaluation, Products, module_mode, scale_add
from icml17.core.curvature.layerwise import LayerwiseProducts, layerwise_unsupported
from icml17.core.functional import LossFn, Params

PRODUCTS = ("auto", "layerwise", "forward-over-reverse", "reverse-over-reverse")


def forward_mode_unsupported(loss_fn: LossFn) -> bool:
    """True for losses whose gradient torch cannot differentiate in forward mode.

    In torch 2.x the forward derivative of ``mse_loss``'s backward writes into an immutable ZeroTensor
    ("ZeroTensors are immutable"), so forward-over-reverse fails on it while reverse-over-reverse is exact.
    Recognised: ``F.mse_loss``, ``nn.MSELoss`` and ``functools.partial`` of either; a loss that calls
    ``mse_loss`` inside another function needs ``product="reverse-over-reverse"``.
    """
    while isinstance(loss_fn, functools.partial):
        loss_fn = loss_fn.func
    return loss_fn is nn.functional.mse_loss or isinstance(loss_fn, nn.MSELoss)


def forward_over_reverse(g: Callable[[Params], Params], params: Params) -> Callable[[Params], Params]:
    """``v -> H v`` at ``params``, H the Jacobian of the gradient function ``g``: ``jvp(g, (params,), (v,))``.

    The one forward-over-reverse product of the engine, used per batch by :class:`ForwardOverReverse` and for
    whole functions by :class:`~icml17.core.curvature.function.FunctionHessian`.
    """
    return lambda v: jvp(g, (params,), (v,))[1]


def quadform_from_hvp(products: Products, vectors: Params) -> torch.Tensor:
    """``v^T H v`` for each direction of the block from the strategy's own ``H v``: (k,)."""
    hv = products.hvp(vectors)
    return sum((vectors[n] * hv[n]).flatten(1).sum(1) for n in vectors)


class _GradientProducts(ABC):
    """Products by differentiating ``grad(L)`` once more with torch.func, at the point or at any ``params``;
    subclasses say how (forward or reverse mode)."""

    method = ""

    def __init__(self, loss: Evaluation):
        self.loss = loss

    @staticmethod
    @abstractmethod
    def _product(g: Callable[[Params], Params], params: Params) -> Callable[[Params], Params]:
        """``v -> H v`` at ``params`` given the gradient function ``g``."""

    def hvp(self, vectors: Params, params: Params | None = None) -> Params:
        loss = self.loss
        params = loss.point if params is None else params
        randomness = "same" if loss.mode == "train" else "error"

        def batch_hvp(x: torch.Tensor, y: torch.Tensor) -> Params:
            g = lambda p: grad(loss.batch_loss)(p, x, y)  # noqa: E731
            one = self._product(g, params)
            if next(iter(vectors.values())).shape[0] == 1:  # a single direction: skip vmap's batching overhead
                return {name: t[None] for name, t in one({n: v[0] for n, v in vectors.items()}).items()}
            return vmap(one, randomness=randomness)(vectors)

        return loss.accumulate(batch_hvp)

    def quadform(self, vectors: Params) -> torch.Tensor:
        return quadform_from_hvp(self, vectors)


class ForwardOverReverse(_GradientProducts):
    method = "forward-over-reverse"

    @staticmethod
    def _product(g: Callable[[Params], Params], params: Params) -> Callable[[Params], Params]:
        return forward_over_reverse(g, params)


class ReverseOverReverse(_GradientProducts):
    method = "reverse-over-reverse"

    @staticmethod
    def _product(g: Callable[[Params], Params], params: Params) -> Callable[[Params], Params]:
        return lambda v: vjp(g, params)[1](v)[0]


class Linearized:
    """Forward-over-reverse at the point, linearized once per batch on first use (``torch.func.linearize``:
    the primal forward and backward are evaluated once and folded into constants).

    It costs a tracing pass (~0.5-1 s) and keeps each batch's activations in memory, and pays off from a few
    dozen products on. Needs the data as a list of batches; products elsewhere go to ``off_point``.
    """

    method = "forward-over-reverse (linearized)"

    def __init__(self, loss: Evaluation, off_point: Products):
        self.loss, self.off_point = loss, off_point
        self._traced: list[tuple[Callable[[Params], Params], int]] | None = None

    def _trace(self) -> list[tuple[Callable[[Params], Params], int]]:
        loss = self.loss
        if not loss.cacheable:
            raise ValueError(
                "linearize=True needs a batch or a list of batches (one linearization is cached "
                "per batch); pass list(loader)"
            )
        traced = []
        with module_mode(loss.model, loss.mode == "train"):
            for x, y, n in loss.batches():
                g = lambda p, x=x, y=y: grad(loss.batch_loss)(p, x, y)  # noqa: E731
                traced.append((linearize(g, loss.point)[1], n))
        return traced

    def hvp(self, vectors: Params, params: Params | None = None) -> Params:
        if params is not None and params is not self.loss.point:
            return self.off_point.hvp(vectors, params)
        if self._traced is None:
            self._traced = self._trace()
        total = sum(n for _, n in self._traced)
        k = next(iter(vectors.values())).shape[0]
        columns = []
        for i in range(k):  # one tangent pass per probe: faster than vmap over the traced graph on CPU convs
            v = {name: t[i] for name, t in vectors.items()}
            acc = None
            for jvp_fn, n in self._traced:
                acc = scale_add(acc, jvp_fn(v), n)
            columns.append(self.loss.mean(acc, total))
        return {name: torch.stack([c[name] for c in columns]) for name in vectors}

    def quadform(self, vectors: Params) -> torch.Tensor:
        return quadform_from_hvp(self, vectors)


def choose_products(loss: Evaluation, product: str = "auto", linearize: bool = False) -> Products:
    """The product strategy for ``loss``, from explicit checks made once.

    Args:
        loss: what the strategy evaluates (a :class:`~icml17.core.curvature.operator.ModelLoss`).
        product: one of :data:`PRODUCTS`. ``"auto"``: layerwise where :func:`layerwise_unsupported` accepts the
            model's structure (and ``linearize`` is off), else the generic product; ``"layerwise"`` insists;
            ``"forward-over-reverse"`` / ``"reverse-over-reverse"`` name the generic product, where
            forward-over-reverse gives way to reverse-over-reverse for losses it cannot differentiate
            (:func:`forward_mode_unsupported`).
        linearize: trace the forward-over-reverse product once per batch.

    Returns:
        The strategy; its ``method`` names it.

    Raises:
        ValueError: an unknown ``product``, ``"layerwise"`` for a structure it does not support, or
            ``"layerwise"`` with ``linearize``.
    """
    if product not in PRODUCTS:
        raise ValueError(f"product must be one of {PRODUCTS}, got {product!r}")
    reason = layerwise_unsupported(loss.model)
    if product == "layerwise" and reason is not None:
        raise ValueError(f"product='layerwise' is not available: {reason}")
    if product == "layerwise" and linearize:
        raise ValueError("linearize=True applies to the torch.func products, not product='layerwise'")
    reverse = product == "reverse-over-reverse" or forward_mode_unsupported(loss.loss_fn)
    generic = ReverseOverReverse(loss) if reverse else ForwardOverReverse(loss)
    if product == "layerwise" or (product == "auto" and reason is None and not linearize):
        return LayerwiseProducts(loss, off_point=generic)
    if linearize:
        return Linearized(loss, off_point=generic)
    return generic
