"""Curvature of a model's loss: exact Hessian-vector products and the spectral estimators built on them.

One factory, :class:`HessianOperator`, turns (model, loss, data) into a symmetric linear operator on the flat
parameter vector. Its products are exact (no finite differences: on ReLU networks a finite step can cross an
activation kink and inflate lambda_max several-fold). For plain ``nn.Sequential`` chains of Linear / Conv /
Flatten / elementwise activations (every preset of :mod:`icml17.sharpness.models`) they come from
:class:`LayerwiseCurvature`: the primal forward and backward run once per batch and are cached, then each
``H v`` is a per-layer R-operator pass and each ``v^T H v`` (all Hutchinson needs) a forward-only
second-order pass. Any other model gets forward-over-reverse, ``jvp(grad(L), (theta,), (v,))``, with
``vmap`` over a block of probe vectors. The data may be one ``(x, y)`` batch or an iterable of batches (a loader); products
over a loader are accumulated with weights ``n_b / N``, i.e. they are products with the Hessian of the mean loss
over all examples, assuming ``loss_fn`` returns the batch mean.

Estimators work on anything with ``size``, ``dtype``, ``device`` and ``matmat(V)`` (V of shape (n, k)):
- :func:`power_iteration`: dominant eigenvalue (largest |lambda|), stopped on a relative change below ``tol``.
- :func:`lanczos`: top-k (algebraically largest) eigenpairs, Lanczos with full reorthogonalisation, stopped
  when every wanted Ritz pair has a residual ``|beta_m s_{m,i}| <= tol |theta_i|``.
- :func:`hutchinson` (Hutchinson 1989) and :func:`hutchpp` (Meyer, Musco, Musco, Woodruff 2021): trace.
- :func:`slq_density`: stochastic Lanczos quadrature (Ubaru, Chen, Saad 2017; Ghorbani et al. 2019).

Deviation from PyHessian and similar tools: bias and normalisation parameters are not dropped; the operator
covers every parameter with ``requires_grad`` (or the named ones, for per-layer diagonal blocks), and the mode
(eval by default) and dtype are part of every result.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from torch import nn
from torch.func import functional_call, grad, jvp, linearize, vjp, vmap

from icml17.core.functional import Params

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PRODUCTS = ("auto", "layerwise", "forward-over-reverse", "reverse-over-reverse")
Batch = tuple[torch.Tensor, torch.Tensor]


class LinearOperator(Protocol):
    size: int
    dtype: torch.dtype
    device: torch.device

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor: ...  # (n, k) -> (n, k)


def as_batches(data: Batch | Iterable[Batch]) -> list[Batch] | Iterable[Batch]:
    """One ``(x, y)`` batch becomes a one-element list; anything else is taken as an iterable of batches."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        return [data]
    return data


def _scale_add(acc: Any, out: Any, n: int) -> Any:
    """acc + n * out over tensors, dicts and tuples of them (acc None: n * out)."""
    if isinstance(out, dict):
        return {k: _scale_add(None if acc is None else acc[k], v, n) for k, v in out.items()}
    if isinstance(out, tuple):
        return tuple(_scale_add(None if acc is None else a, o, n) for a, o in zip(acc or [None] * len(out), out))
    return out * n if acc is None else acc + out * n


@contextmanager
def _mode(model: nn.Module, train: bool):
    before = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for m, flag in before:
            m.training = flag


# ----------------------------------------------------------------------------------- layerwise products
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.Softplus, nn.SiLU)
_PIECEWISE_LINEAR = (nn.ReLU, nn.LeakyReLU)  # second derivative zero wherever autograd defines one
_RESHAPE = (nn.Flatten, nn.Identity)


def layerwise_unsupported(model: nn.Module) -> str | None:
    """Why :class:`LayerwiseCurvature` cannot run ``model`` (None: it can).

    It runs plain ``nn.Sequential`` chains of Linear / Conv1d-3d (zero padding given as numbers) / Flatten /
    Identity / elementwise activations (ReLU, LeakyReLU, Tanh, Sigmoid, GELU, ELU, Softplus, SiLU): every
    preset of :mod:`icml17.sharpness.models`. Anything else (batch norm, pooling, dropout, nested modules)
    goes through the generic torch.func products.
    """
    if type(model) is not nn.Sequential:
        return f"{type(model).__name__} is not a plain nn.Sequential"
    for name, m in model.named_children():
        if isinstance(m, _CONV):
            if m.padding_mode != "zeros" or isinstance(m.padding, str):
                return f"module {name}: padding {m.padding!r} / mode {m.padding_mode!r} (needs numeric zero padding)"
        elif type(m) is nn.Linear or isinstance(m, _RESHAPE) or type(m) in _ELEMENTWISE:
            pass
        else:
            return f"module {name} ({type(m).__name__}) has no layerwise rule"
    return None


@dataclass
class _BatchCache:
    """One batch's primal quantities at the point: module inputs, gradients w.r.t. module outputs,
    activation derivatives, and the loss's gradient graph w.r.t. the network output (for its Hessian)."""

    inputs: list[torch.Tensor]
    deltas: list[torch.Tensor]
    d1: dict[int, torch.Tensor]
    d2: dict[int, torch.Tensor]
    out: torch.Tensor  # network output, requires grad
    out_grad: torch.Tensor  # d loss / d out, with graph (create_graph=True)
    n: int  # batch size


class LayerwiseCurvature:
    """Exact Hessian products for ``nn.Sequential`` chains with the primal pass cached per batch.

    Per batch, one forward and one backward pass at the point store each module's input, the gradient of the
    loss w.r.t. each module's output (delta) and the activations' first and second derivatives. Then

    - ``hvp``: Pearlmutter's R-operator, written per layer: a tangent forward pass ``z' = W a' + V a (+ c)``
      and its reverse pass ``(dW)' = delta'^T a + delta^T a'``, ``delta_in' = W^T delta' + V^T delta``
      (plus ``sigma'' z' delta`` at smooth activations, ``H_out z'`` at the loss) -- exactly ``H v``, with no
      recomputation of the primal forward and backward per product;
    - ``quadform``: ``v^T H v`` alone (all Hutchinson needs) as the second derivative of ``t -> L(theta +
      t v)``, propagated forward (``z'' = W a'' + 2 V a'``, ``sigma'' z'^2 + sigma' z''``): no reverse pass.

    The loss's own Hessian w.r.t. the network output comes from double-backward through ``loss_fn`` on that
    (small) output, so any twice-differentiable ``loss_fn`` returning the batch mean works.
    """

    def __init__(self, model: nn.Sequential, loss_fn: LossFn, point: Params):
        self.modules = list(model.named_children())
        self.loss_fn, self.point = loss_fn, point
        self.caches: list[_BatchCache] | None = None  # kept by ModelLoss for list data

    # -- primal pass -----------------------------------------------------------------------------------
    def _param(self, i: int, kind: str) -> torch.Tensor | None:
        name, m = self.modules[i]
        p = self.point.get(f"{name}.{kind}")
        if p is not None:
            return p
        q = getattr(m, kind, None)
        return None if q is None else q.detach()

    def _tangent(self, V: Params, i: int, kind: str) -> torch.Tensor | None:
        return V.get(f"{self.modules[i][0]}.{kind}")

    def cache(self, x: torch.Tensor, y: torch.Tensor, n: int) -> _BatchCache:
        inputs, outs, d1, d2 = [], [], {}, {}
        with torch.enable_grad():
            h = x.detach()
            for i, (_, m) in enumerate(self.modules):
                inputs.append(h.detach())
                if isinstance(m, (nn.Linear, *_CONV)):
                    h = self._lin(m, h, self._param(i, "weight"), self._param(i, "bias"))
                elif isinstance(m, _ELEMENTWISE):
                    z = h.detach()
                    one = torch.ones_like(z)
                    f = lambda u, m=m: m(u.clone())  # noqa: E731  (clone: inplace activations)
                    d1[i] = jvp(f, (z,), (one,))[1]
                    if not isinstance(m, _PIECEWISE_LINEAR):
                        d2[i] = jvp(lambda u: jvp(f, (u,), (one,))[1], (z,), (one,))[1]
                    h = f(h)
                else:
                    h = m(h)
                if not h.requires_grad:  # the first layer: outputs of detached inputs and parameters
                    h = h.detach().requires_grad_(True)
                outs.append(h)
            out = outs[-1].detach().requires_grad_(True)
            loss = self.loss_fn(out, y)
            (out_grad,) = torch.autograd.grad(loss, out, create_graph=True)
            deltas = list(torch.autograd.grad(outs[-1], outs, out_grad.detach()))
        return _BatchCache(inputs, [d.detach() for d in deltas], d1, d2, out, out_grad, n)

    @staticmethod
    def _lin(m: nn.Module, a: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(m, nn.Linear):
            return nn.functional.linear(a, w, b)
        return torch.ops.aten.convolution(a, w, b, m.stride, m.padding, m.dilation, False,
                                          [0] * len(m.stride), m.groups)

    def _lin_sum(self, m: nn.Module, terms: list[tuple[torch.Tensor | None, torch.Tensor | None]],
                 ) -> torch.Tensor | None:
        """sum of lin(a, w) over the pairs with both present; one fused call for ungrouped layers."""
        terms = [(a, w) for a, w in terms if a is not None and w is not None]
        if not terms:
            return None
        if len(terms) > 1 and (isinstance(m, nn.Linear) or m.groups == 1):
            dim = -1 if isinstance(m, nn.Linear) else 1
            return self._lin(m, torch.cat([a for a, _ in terms], dim), torch.cat([w for _, w in terms], 1))
        out = self._lin(m, *terms[0])
        for a, w in terms[1:]:
            out = out + self._lin(m, a, w)
        return out

    def _loss_hvp(self, c: _BatchCache, t: torch.Tensor) -> torch.Tensor:
        if not c.out_grad.requires_grad:  # loss linear in the output
            return torch.zeros_like(t)
        return torch.autograd.grad(c.out_grad, c.out, t, retain_graph=True)[0]

    # -- products ----------------------------------------------------------------------------------------
    def _forward_tangent(self, c: _BatchCache, V: Params) -> list[torch.Tensor | None]:
        """Tangents of every module's output along V (None: identically zero)."""
        tangents: list[torch.Tensor | None] = []
        a_t: torch.Tensor | None = None
        for i, (_, m) in enumerate(self.modules):
            if isinstance(m, (nn.Linear, *_CONV)):
                z = self._lin_sum(m, [(a_t, self._param(i, "weight")), (c.inputs[i], self._tangent(V, i, "weight"))])
                bt = self._tangent(V, i, "bias")
                if bt is not None:
                    shape = (-1,) + (1,) * (c.inputs[i].dim() - 2) if isinstance(m, _CONV) else (-1,)
                    z = bt.reshape(shape) if z is None else z + bt.reshape(shape)
                    if z.dim() < c.deltas[i].dim():
                        z = z.expand_as(c.deltas[i])
                a_t = z
            elif isinstance(m, _ELEMENTWISE):
                a_t = None if a_t is None else c.d1[i] * a_t
            else:
                a_t = None if a_t is None else a_t.reshape(c.deltas[i].shape)
            tangents.append(a_t)
        return tangents

    @staticmethod
    def _weight_grad(m: nn.Module, w: torch.Tensor, terms: list[tuple[torch.Tensor | None, torch.Tensor | None]],
                     ) -> torch.Tensor:
        """sum of d<delta, lin(a, w)>/dw over the (a, delta) pairs with both present: one call, batches stacked."""
        terms = [(a, d) for a, d in terms if a is not None and d is not None]
        if not terms:
            return torch.zeros_like(w)
        a = torch.cat([a for a, _ in terms]) if len(terms) > 1 else terms[0][0]
        d = torch.cat([d for _, d in terms]) if len(terms) > 1 else terms[0][1]
        if isinstance(m, nn.Linear):
            return d.reshape(-1, d.shape[-1]).T @ a.reshape(-1, a.shape[-1])
        return torch.ops.aten.convolution_backward(d, a, w, None, m.stride, m.padding, m.dilation, False,
                                                   [0] * len(m.stride), m.groups, [False, True, False])[1]

    @staticmethod
    def _bias_grad(m: nn.Module, b: torch.Tensor, delta: torch.Tensor | None) -> torch.Tensor:
        if delta is None:
            return torch.zeros_like(b)
        if isinstance(m, nn.Linear):
            return delta.reshape(-1, delta.shape[-1]).sum(0)
        return delta.sum([d for d in range(delta.dim()) if d != 1])

    def _input_grad(self, m: nn.Module, a: torch.Tensor, terms: list[tuple[torch.Tensor | None, torch.Tensor | None]],
                    ) -> torch.Tensor | None:
        """sum of (d lin(a, w) / d a)^T delta over the (delta, w) pairs with both present."""
        terms = [(d, w) for d, w in terms if d is not None and w is not None]
        if not terms:
            return None
        if isinstance(m, nn.Linear):
            return torch.cat([d for d, _ in terms], -1) @ torch.cat([w for _, w in terms], 0)
        if m.groups == 1 and len(terms) > 1:
            terms = [(torch.cat([d for d, _ in terms], 1), torch.cat([w for _, w in terms], 0))]
        out = None
        for d, w in terms:
            gi = torch.ops.aten.convolution_backward(d, a, w, None, m.stride, m.padding, m.dilation, False,
                                                     [0] * len(m.stride), m.groups, [True, False, False])[0]
            out = gi if out is None else out + gi
        return out

    def hvp_one(self, c: _BatchCache, V: Params) -> Params:
        tangents = self._forward_tangent(c, V)
        out: Params = {}
        dt = None if tangents[-1] is None else self._loss_hvp(c, tangents[-1])  # delta' at the output
        for i in range(len(self.modules) - 1, -1, -1):
            name, m = self.modules[i]
            a, delta = c.inputs[i], c.deltas[i]
            a_t = tangents[i - 1] if i > 0 else None
            if isinstance(m, (nn.Linear, *_CONV)):
                wn, bn = f"{name}.weight", f"{name}.bias"
                if wn in self.point:  # (dW)' = wgrad(a, delta') + wgrad(a', delta)
                    out[wn] = self._weight_grad(m, self.point[wn], [(a, dt), (a_t, delta)])
                if bn in self.point:
                    out[bn] = self._bias_grad(m, self.point[bn], dt)
                if i > 0:
                    dt = self._input_grad(m, a, [(dt, self._param(i, "weight")), (delta, self._tangent(V, i, "weight"))])
            elif isinstance(m, _ELEMENTWISE):
                if dt is not None:
                    dt = c.d1[i] * dt
                if i in c.d2 and a_t is not None:
                    extra = c.d2[i] * a_t * delta
                    dt = extra if dt is None else dt + extra
            else:
                dt = None if dt is None else dt.reshape(a.shape)
        return out

    def quadform_one(self, c: _BatchCache, V: Params) -> torch.Tensor:
        a1: torch.Tensor | None = None
        a2: torch.Tensor | None = None
        for i, (_, m) in enumerate(self.modules):
            if isinstance(m, (nn.Linear, *_CONV)):
                w, wt, bt = self._param(i, "weight"), self._tangent(V, i, "weight"), self._tangent(V, i, "bias")
                z1 = self._lin_sum(m, [(a1, w), (c.inputs[i], wt)])
                if bt is not None:
                    shape = (-1,) + (1,) * (c.inputs[i].dim() - 2) if isinstance(m, _CONV) else (-1,)
                    z1 = bt.reshape(shape).expand_as(c.deltas[i]) if z1 is None else z1 + bt.reshape(shape)
                z2 = self._lin_sum(m, [(a2, w), (None if a1 is None else 2 * a1, wt)])
                a1, a2 = z1, z2
            elif isinstance(m, _ELEMENTWISE):
                n1 = None if a1 is None else c.d1[i] * a1
                n2 = None if a2 is None else c.d1[i] * a2
                if i in c.d2 and a1 is not None:
                    extra = c.d2[i] * a1 * a1
                    n2 = extra if n2 is None else n2 + extra
                a1, a2 = n1, n2
            else:
                shape = c.deltas[i].shape
                a1 = None if a1 is None else a1.reshape(shape)
                a2 = None if a2 is None else a2.reshape(shape)
        q = torch.zeros((), dtype=c.deltas[-1].dtype, device=c.deltas[-1].device)
        if a2 is not None:
            q = q + (c.deltas[-1] * a2).sum()
        if a1 is not None:
            q = q + (a1 * self._loss_hvp(c, a1)).sum()
        return q


class ModelLoss:
    """The mean loss of ``model`` over ``data`` as a function of a parameter dict (one job: evaluate it).

    ``params`` names the parameters that vary (default: all with ``requires_grad``); the others and the
    buffers stay at the module's values. ``linearize=True`` traces, once per batch, the forward-over-reverse
    product at the point (``torch.func.linearize``: the primal forward and backward are evaluated once and
    folded into constants), so every later product only runs the tangent computation; it costs a tracing
    pass (~0.5-1 s) and keeps each batch's activations in memory, and pays off from a few dozen products on.
    ``product`` picks how products are computed: ``"auto"`` (default) uses :class:`LayerwiseCurvature` (primal
    cached per batch, R-operator per layer) when :func:`layerwise_unsupported` allows it, else
    ``"forward-over-reverse"`` (``jvp`` of ``grad``); ``"layerwise"`` insists (ValueError where unsupported);
    ``self.method`` records what ran. ``dtype`` (e.g. ``torch.float64``) evaluates a converted copy of the
    model on converted inputs. ``mode`` is ``"eval"`` (default; batch norm uses running statistics, dropout is
    off) or ``"train"``.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Batch | Iterable[Batch], *,
                 params: Sequence[str] | None = None, dtype: torch.dtype | None = None, mode: str = "eval",
                 linearize: bool = False, product: str = "auto"):
        if mode not in ("eval", "train"):
            raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
        if dtype is not None:
            model = copy.deepcopy(model).to(dtype)
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if not trainable:
            raise ValueError(f"{type(model).__name__} has no parameters with requires_grad=True: there is no "
                             "Hessian to measure (unfreeze the parameters to be measured)")
        if params is not None:
            unknown = sorted(set(params) - set(trainable))
            if unknown:
                raise ValueError(f"unknown or frozen parameter names {unknown}; trainable: {sorted(trainable)}")
            trainable = {n: trainable[n] for n in params}
        self.model, self.loss_fn, self.mode = model, loss_fn, mode
        if product not in PRODUCTS:
            raise ValueError(f"product must be one of {PRODUCTS}, got {product!r}")
        reason = layerwise_unsupported(model)
        if product == "layerwise" and reason is not None:
            raise ValueError(f"product='layerwise' is not available: {reason}")
        if product == "layerwise" and linearize:
            raise ValueError("linearize=True applies to the torch.func products, not product='layerwise'")
        use_layerwise = product == "layerwise" or (product == "auto" and reason is None and not linearize)
        self.method = "layerwise" if use_layerwise else \
            ("reverse-over-reverse" if product == "reverse-over-reverse" else "forward-over-reverse")
        self.linearize = linearize
        self._linearized: list[tuple[Callable[[Params], Params], int]] | None = None
        self.point: Params = {n: p.detach() for n, p in trainable.items()}
        # parameters outside the block stay fixed, detached so that products carry no autograd history
        self._fixed: Params = {n: p.detach() for n, p in model.named_parameters() if n not in self.point}
        self.dtype = next(iter(self.point.values())).dtype
        self.device = next(iter(self.point.values())).device
        self._data = as_batches(data)
        if isinstance(self._data, list):
            self._check_nonempty(self._data)
        self._layerwise = LayerwiseCurvature(model, loss_fn, self.point) if use_layerwise else None

    @staticmethod
    def _check_nonempty(batches: list[Batch]) -> None:
        if not batches or sum(int(x.shape[0]) for x, _ in batches) == 0:
            raise ValueError("the dataset is empty: a loss (and its curvature) needs at least one example")

    def batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor, int]]:
        """Yields (x, y, n) with floating inputs cast to this loss's dtype and device."""
        seen = 0
        for x, y in self._data:
            x = x.to(self.device, self.dtype if x.is_floating_point() else x.dtype)
            y = y.to(self.device, self.dtype if y.is_floating_point() else y.dtype)
            if x.shape[0]:
                seen += int(x.shape[0])
                yield x, y, int(x.shape[0])
        if seen == 0:
            raise ValueError("the dataset is empty: a loss (and its curvature) needs at least one example")

    def batch_loss(self, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(functional_call(self.model, {**self._fixed, **params}, (x,), strict=False), y)

    def _accumulate(self, fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> Any:
        total, acc = 0, None
        with _mode(self.model, self.mode == "train"):
            for x, y, n in self.batches():
                acc = _scale_add(acc, fn(x, y), n)
                total += n
        return _scale_add(None, acc, 1.0 / total)  # type: ignore[arg-type]

    def loss(self, params: Params | None = None) -> torch.Tensor:
        params = self.point if params is None else params
        with torch.no_grad():
            return self._accumulate(lambda x, y: self.batch_loss(params, x, y))

    def loss_and_grad(self, params: Params | None = None) -> tuple[torch.Tensor, Params]:
        params = self.point if params is None else params
        f = torch.func.grad_and_value(self.batch_loss)
        g, value = self._accumulate(lambda x, y: f(params, x, y))
        return value, g

    def hvp(self, vectors: Params, params: Params | None = None) -> Params:
        """Products ``H v`` for a block of directions: every tensor has a leading k axis.

        Forward-over-reverse (``jvp`` of ``grad``) by default. Some losses' backward formulas have no forward
        derivative in torch (``mse_loss`` fails with "ZeroTensors are immutable" in torch 2.x); for those the
        first call switches to reverse-over-reverse (``vjp`` of ``grad``), equally exact, and ``self.method``
        records which one ran.
        """
        params = self.point if params is None else params
        if self._layerwise is not None and params is self.point:
            return self._layerwise_apply(vectors, self._layerwise.hvp_one, stack=True)
        if self.linearize and params is self.point:
            return self._linearized_hvp(vectors)
        randomness = "same" if self.mode == "train" else "error"

        def batch_hvp(x: torch.Tensor, y: torch.Tensor) -> Params:
            g = lambda p: grad(self.batch_loss)(p, x, y)  # noqa: E731
            if self.method == "forward-over-reverse":
                one = lambda v: jvp(g, (params,), (v,))[1]  # noqa: E731
            else:
                one = lambda v: vjp(g, params)[1](v)[0]  # noqa: E731
            if next(iter(vectors.values())).shape[0] == 1:  # a single direction: skip vmap's batching overhead
                return {name: t[None] for name, t in one({n: v[0] for n, v in vectors.items()}).items()}
            return vmap(one, randomness=randomness)(vectors)

        try:
            return self._accumulate(batch_hvp)
        except RuntimeError as e:
            if self.method != "forward-over-reverse" or "ZeroTensor" not in str(e):
                raise
            self.method = "reverse-over-reverse"
            return self._accumulate(batch_hvp)

    def quadform(self, vectors: Params) -> torch.Tensor:
        """``v^T H v`` for a block of directions (leading k axis) at the point: (k,). Layerwise: a forward-only
        second-order pass per direction; otherwise from :meth:`hvp`."""
        if self._layerwise is not None:
            return self._layerwise_apply(vectors, self._layerwise.quadform_one, stack=False)
        hv = self.hvp(vectors)
        return sum((vectors[n] * hv[n]).flatten(1).sum(1) for n in vectors)

    def _layerwise_apply(self, vectors: Params, one: Callable, stack: bool) -> Any:
        """``one(cache, v)`` for each direction v of the block, summed over batches with weights n_b / N."""
        k = next(iter(vectors.values())).shape[0]
        directions = [{name: t[j] for name, t in vectors.items()} for j in range(k)]
        acc: list[Any] = [None] * k
        total = 0
        for c in self._layerwise_caches():
            for j, v in enumerate(directions):
                acc[j] = _scale_add(acc[j], one(c, v), c.n)
            total += c.n
        columns = [_scale_add(None, a, 1.0 / total) for a in acc]
        if stack:
            return {name: torch.stack([col[name] for col in columns]) for name in vectors}
        return torch.stack(columns)

    def _layerwise_caches(self) -> Iterable[_BatchCache]:
        """Per-batch primal caches: built once and kept when the data is a list, else rebuilt per call."""
        lw = self._layerwise
        keep = isinstance(self._data, list)
        if keep and lw.caches is not None:
            yield from lw.caches
            return
        built = []
        for x, y, n in self.batches():
            with _mode(self.model, self.mode == "train"):
                c = lw.cache(x, y, n)
            if keep:
                built.append(c)
            yield c
        if keep:
            lw.caches = built

    def _linearized_hvp(self, vectors: Params) -> Params:
        if self._linearized is None:
            if not isinstance(self._data, list):
                raise ValueError("linearize=True needs a batch or a list of batches (one linearization is cached "
                                 "per batch); pass list(loader)")
            self._linearized = []
            with _mode(self.model, self.mode == "train"):
                for x, y, n in self.batches():
                    g = lambda p, x=x, y=y: grad(self.batch_loss)(p, x, y)  # noqa: E731
                    self._linearized.append((linearize(g, self.point)[1], n))
            self.method = "forward-over-reverse (linearized)"
        total = sum(n for _, n in self._linearized)
        k = next(iter(vectors.values())).shape[0]
        columns = []
        for i in range(k):  # one tangent pass per probe: faster than vmap over the traced graph on CPU convs
            v = {name: t[i] for name, t in vectors.items()}
            acc = None
            for jvp_fn, n in self._linearized:
                hv = jvp_fn(v)
                acc = {m: h * (n / total) for m, h in hv.items()} if acc is None else \
                    {m: acc[m] + h * (n / total) for m, h in hv.items()}
            columns.append(acc)
        return {name: torch.stack([c[name] for c in columns]) for name in vectors}


class HessianOperator:
    """The Hessian of a :class:`ModelLoss` at its point, as a symmetric operator on flat vectors of ``size``.

    ``n_hvp`` counts Hessian-vector products (a block of k counts k; a quadratic form ``v^T H v`` from
    :meth:`quadform` counts as one); ``max_block`` caps how many probes are vmapped at once (memory grows
    with it); ``linearize`` and ``product`` choose how products are computed (see :class:`ModelLoss`).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Batch | Iterable[Batch], *,
                 params: Sequence[str] | None = None, dtype: torch.dtype | None = None, mode: str = "eval",
                 max_block: int = 32, linearize: bool = False, product: str = "auto"):
        self.loss = ModelLoss(model, loss_fn, data, params=params, dtype=dtype, mode=mode, linearize=linearize,
                              product=product)
        self.size = sum(p.numel() for p in self.loss.point.values())
        self.dtype, self.device, self.mode = self.loss.dtype, self.loss.device, mode
        self.max_block = max_block
        self.n_hvp = 0

    @property
    def point(self) -> Params:
        return self.loss.point

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.matmat(v[:, None])[:, 0]

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """(n, k) -> (n, k)."""
        if vectors.shape[0] != self.size:
            raise ValueError(f"vectors have {vectors.shape[0]} rows, the operator acts on {self.size}")
        out = []
        for block in vectors.to(self.dtype).T.split(self.max_block):  # (b, n)
            tangents = {k: t.reshape(block.shape[0], *self.point[k].shape)
                        for k, t in _split_rows(block, self.point).items()}
            hv = self.loss.hvp(tangents)
            # forward AD of some ops (torch.where on 0-dim operands) promotes to float64: keep the operator's dtype
            out.append(torch.cat([hv[k].reshape(block.shape[0], -1) for k in self.point], dim=1).to(self.dtype))
            self.n_hvp += block.shape[0]
        return torch.cat(out).T

    @property
    def method(self) -> str:
        return self.loss.method

    def _tangents(self, block: torch.Tensor) -> Params:
        return {k: t.reshape(block.shape[0], *self.point[k].shape) for k, t in _split_rows(block, self.point).items()}

    def quadform(self, vectors: torch.Tensor) -> torch.Tensor:
        """(n, k) -> (k,): the quadratic forms ``v_j^T H v_j`` (exact; layerwise products get them from a
        forward-only second-order pass, cheaper than ``H v``)."""
        if vectors.shape[0] != self.size:
            raise ValueError(f"vectors have {vectors.shape[0]} rows, the operator acts on {self.size}")
        out = []
        for block in vectors.to(self.dtype).T.split(self.max_block):
            out.append(self.loss.quadform(self._tangents(block)).to(self.dtype))
            self.n_hvp += block.shape[0]
        return torch.cat(out)

    def dense(self) -> torch.Tensor:
        """The explicit (n, n) matrix from n products: for small models and tests."""
        return self.matmat(torch.eye(self.size, dtype=self.dtype, device=self.device))


def _split_rows(block: torch.Tensor, like: Params) -> Params:
    out, i = {}, 0
    for name, p in like.items():
        out[name] = block[:, i:i + p.numel()]
        i += p.numel()
    return out


class DenseOperator:
    """A symmetric matrix as an operator (tests, and reference values)."""

    def __init__(self, matrix: torch.Tensor):
        self.matrix = matrix
        self.size, self.dtype, self.device = matrix.shape[0], matrix.dtype, matrix.device
        self.n_hvp = 0

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        self.n_hvp += vectors.shape[1]
        return self.matrix @ vectors


def layer_blocks(model: nn.Module) -> dict[str, list[str]]:
    """Trainable parameter names grouped by owning module (``"0.weight", "0.bias"`` -> ``"0"``)."""
    blocks: dict[str, list[str]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            blocks.setdefault(name.rpartition(".")[0] or name, []).append(name)
    return blocks


# --------------------------------------------------------------------------------------------- estimators
def _generator(seed: int | torch.Generator | None) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(0 if seed is None else seed)


def _rademacher(n: int, k: int, op: LinearOperator, gen: torch.Generator) -> torch.Tensor:
    return (torch.randint(0, 2, (n, k), generator=gen) * 2 - 1).to(op.device, op.dtype)


@dataclass
class EigenResult:
    eigenvalues: list[float]  # descending
    eigenvectors: torch.Tensor  # (n, k)
    n_hvp: int
    iterations: int
    converged: bool
    method: str
    residuals: list[float] = field(default_factory=list)


def power_iteration(op: LinearOperator, *, tol: float = 1e-3, max_iter: int = 200,
                    seed: int | torch.Generator | None = 0) -> EigenResult:
    """Dominant eigenpair by power iteration with a Rayleigh-quotient estimate; stops when it changes by
    less than ``tol`` relative (PyHessian's criterion)."""
    gen = _generator(seed)
    v = torch.randn(op.size, 1, generator=gen).to(op.device, op.dtype)
    v /= v.norm()
    value, converged, it = 0.0, False, 0
    for it in range(1, max_iter + 1):
        hv = op.matmat(v)
        new = float((v * hv).sum())
        v = hv / hv.norm()
        if it > 1 and abs(new - value) <= tol * abs(new):
            value, converged = new, True
            break
        value = new
    return EigenResult([value], v, it, it, converged, "power")


def _lanczos_basis(op: LinearOperator, v0: torch.Tensor, steps: int, *, on_step: Callable | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Lanczos with full reorthogonalisation from ``v0``: (alpha (m,), beta (m,), Q (n, m)).

    ``beta[j]`` couples q_j and q_{j+1}; ``beta[m-1]`` is the residual norm used for convergence tests.
    ``on_step(alpha, beta)`` may return True to stop early.
    """
    q = v0 / v0.norm()
    basis = [q]
    alpha, beta = [], []
    for j in range(min(steps, op.size)):
        w = op.matmat(q[:, None])[:, 0]
        a = float(q @ w)
        Q = torch.stack(basis, dim=1)
        w = w - Q @ (Q.T @ w)
        w = w - Q @ (Q.T @ w)  # twice is enough (Parlett's "twice is enough")
        b = float(w.norm())
        alpha.append(a)
        beta.append(b)
        if on_step is not None and on_step(np.array(alpha), np.array(beta)):
            break
        if b <= 1e-10 * max(1.0, abs(a)) or j + 1 == op.size:
            break
        q = w / b
        basis.append(q)
    m = len(alpha)
    return np.array(alpha), np.array(beta), torch.stack(basis[:m], dim=1)


def _ritz(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(alpha) == 1:
        return alpha.copy(), np.ones((1, 1))
    return eigh_tridiagonal(alpha, beta[:-1])


def lanczos(op: LinearOperator, k: int = 1, *, tol: float = 1e-3, max_iter: int = 100,
            seed: int | torch.Generator | None = 0, stop: str = "residual") -> EigenResult:
    """Top-``k`` eigenpairs (algebraically largest) by Lanczos.

    ``stop="residual"``: every wanted Ritz pair has ``|beta_m s_{m,i}| <= tol |theta_i|`` (a bound on the
    eigenvector's quality too). ``stop="gap"``: the eigenvalue error estimate ``residual^2 / gap`` is at most
    ``tol |theta_i|``, with the gap estimated from the next Ritz value (the standard a-posteriori bound for a
    Ritz value; it needs k + 1 Ritz values and is looser about the eigenvector).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if stop not in ("residual", "gap"):
        raise ValueError(f"stop must be 'residual' or 'gap', got {stop!r}")
    gen = _generator(seed)
    v0 = torch.randn(op.size, generator=gen).to(op.device, op.dtype)
    state: dict[str, Any] = {"converged": False}

    def check(alpha: np.ndarray, beta: np.ndarray) -> bool:
        if len(alpha) < k:
            return False
        theta, s = _ritz(alpha, beta)
        res = np.abs(beta[-1] * s[-1, ::-1][:k])
        top = theta[::-1]
        if stop == "gap":
            if len(top) <= k:
                return False
            gaps = np.maximum(top[:k] - top[1:k + 1], 1e-300)
            ok = bool(np.all(res ** 2 / gaps <= tol * np.abs(top[:k])))
        else:
            ok = bool(np.all(res <= tol * np.abs(top[:k])))
        state.update(converged=ok, residuals=res.tolist())
        return ok

    alpha, beta, Q = _lanczos_basis(op, v0, max_iter, on_step=check)
    theta, s = _ritz(alpha, beta)
    order = np.argsort(theta)[::-1][:k]
    vecs = Q @ torch.as_tensor(s[:, order].copy(), dtype=op.dtype, device=op.device)
    exhausted = len(alpha) == op.size or beta[-1] <= 1e-10 * max(1.0, abs(alpha[-1]))
    return EigenResult(theta[order].tolist(), vecs, len(alpha), len(alpha), state["converged"] or exhausted,
                       "lanczos", state.get("residuals", []))


@dataclass
class TraceResult:
    estimate: float
    stderr: float  # standard error of the mean over probes (nan for Hutch++)
    n_hvp: int
    method: str


def hutchinson(op: LinearOperator, n_probes: int = 100, *, block: int = 32,
               seed: int | torch.Generator | None = 0) -> TraceResult:
    """tr(H) ~ mean of v^T H v over Rademacher probes v, evaluated ``block`` probes per batched product
    (through ``op.quadform`` where the operator has one: only the quadratic forms are needed)."""
    if n_probes < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes}")
    gen = _generator(seed)
    samples = []
    for start in range(0, n_probes, block):
        V = _rademacher(op.size, min(block, n_probes - start), op, gen)
        quadform = getattr(op, "quadform", None)
        samples.append(quadform(V) if quadform is not None else (V * op.matmat(V)).sum(0))
    s = torch.cat(samples).double()
    stderr = float(s.std() / math.sqrt(n_probes)) if n_probes > 1 else float("nan")
    return TraceResult(float(s.mean()), stderr, n_probes, "hutchinson")


def hutchpp(op: LinearOperator, n_matvecs: int = 99, *, seed: int | torch.Generator | None = 0) -> TraceResult:
    """Hutch++: exact trace on a sketched top subspace plus Hutchinson on its complement (n_matvecs / 3 each)."""
    m = n_matvecs // 3
    if m < 1:
        raise ValueError(f"Hutch++ needs n_matvecs >= 3, got {n_matvecs}")
    gen = _generator(seed)
    S = _rademacher(op.size, m, op, gen)
    G = _rademacher(op.size, m, op, gen)
    Q, _ = torch.linalg.qr(op.matmat(S))  # (n, m)
    G = G - Q @ (Q.T @ G)
    AQ, AG = op.matmat(torch.cat([Q, G], dim=1)).split(m, dim=1)
    est = float((Q * AQ).sum() + (G * AG).sum() / m)
    return TraceResult(est, float("nan"), 3 * m, "hutch++")


@dataclass
class SpectralDensity:
    """A mixture of point masses per probe: ``nodes`` (p, m) with ``weights`` (p, m), each row summing to 1."""

    nodes: np.ndarray
    weights: np.ndarray
    size: int
    n_hvp: int

    def moment(self, power: int) -> float:
        """size * E_probes[sum_j w_j node_j^power] ~ tr(H^power)."""
        return float(self.size * np.mean(np.sum(self.weights * self.nodes ** power, axis=1)))

    def smooth(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """The density convolved with a Gaussian of width ``sigma`` on ``grid`` (integrates to ~1)."""
        diff = grid[None, None, :] - self.nodes[:, :, None]
        g = np.exp(-0.5 * (diff / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        return np.mean(np.sum(self.weights[:, :, None] * g, axis=1), axis=0)


def slq_density(op: LinearOperator, *, n_probes: int = 4, steps: int = 40,
                seed: int | torch.Generator | None = 0) -> SpectralDensity:
    """Stochastic Lanczos quadrature: for each Rademacher probe, Lanczos nodes and squared first components."""
    gen = _generator(seed)
    steps = min(steps, op.size)
    nodes = np.zeros((n_probes, steps))
    weights = np.zeros((n_probes, steps))
    n_hvp = 0
    for i in range(n_probes):
        v = _rademacher(op.size, 1, op, gen)[:, 0]
        alpha, beta, _ = _lanczos_basis(op, v, steps)
        theta, s = _ritz(alpha, beta)
        nodes[i, :len(theta)] = theta
        weights[i, :len(theta)] = s[0] ** 2
        n_hvp += len(alpha)
    return SpectralDensity(nodes, weights, op.size, n_hvp)
