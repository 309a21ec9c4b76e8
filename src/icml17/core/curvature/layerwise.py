"""Exact Hessian products for plain ``nn.Sequential`` chains, with the primal pass cached per batch.

For chains of Linear / Conv / Flatten / elementwise activations (every preset of :mod:`icml17.sharpness.models`)
the primal forward and backward run once per batch and are cached; then each ``H v`` is a per-layer
R-operator pass and each ``v^T H v`` (all Hutchinson needs) a forward-only second-order pass. That is several
times faster than differentiating the gradient through torch.func for every product, and just as exact.
:func:`layerwise_unsupported` is the structural check that decides whether a model can go this way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import jvp

from icml17.core.curvature.base import Evaluation, Products, module_mode, scale_add
from icml17.core.functional import LossFn, Params

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_AFFINE = (nn.Linear, *_CONV)
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.Softplus, nn.SiLU)
_PIECEWISE_LINEAR = (nn.ReLU, nn.LeakyReLU)  # second derivative zero wherever autograd defines one
_RESHAPE = (nn.Flatten, nn.Identity)
Terms = list[tuple[torch.Tensor | None, torch.Tensor | None]]


def layerwise_unsupported(model: nn.Module) -> str | None:
    """Why :class:`LayerwiseCurvature` cannot run ``model`` (None: it can).

    It runs plain ``nn.Sequential`` chains of Linear / Conv1d-3d (zero padding given as numbers) / Flatten /
    Identity / elementwise activations (ReLU, LeakyReLU, Tanh, Sigmoid, GELU, ELU, Softplus, SiLU): every
    preset of :mod:`icml17.sharpness.models`. Anything else (batch norm, pooling, dropout, nested modules)
    goes through the generic torch.func products.

    Args:
        model: any module.

    Returns:
        None where the layerwise products apply, else one line naming the first module (or the container)
        that has no layerwise rule.
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


def _conv_args(m: nn.Module) -> tuple:
    """The trailing arguments of ``aten.convolution`` / ``convolution_backward`` for conv module ``m``."""
    return m.stride, m.padding, m.dilation, False, [0] * len(m.stride), m.groups


class LayerwiseCurvature:
    """Exact Hessian products for ``nn.Sequential`` chains, one batch's cached primal pass at a time.

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

    Args:
        model: a chain that :func:`layerwise_unsupported` accepts (not checked here).
        loss_fn: ``(prediction, target) -> scalar`` batch mean, twice differentiable.
        point: the measured parameters by ``named_parameters`` name; the others are read from the modules.
    """

    def __init__(self, model: nn.Sequential, loss_fn: LossFn, point: Params):
        self.modules = list(model.named_children())
        self.loss_fn, self.point = loss_fn, point
        # no module before the first one with measured parameters needs a gradient w.r.t. its input
        # (e.g. the first Linear after a Flatten): the reverse pass stops there
        owners = {name.rsplit(".", 1)[0] for name in point}
        self.first_measured = min((i for i, (name, _) in enumerate(self.modules) if name in owners), default=0)

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
        """One batch's primal forward and backward pass at the point, kept for its products.

        Args:
            x: the batch's inputs.
            y: its targets.
            n: its number of examples (its weight among batches).

        Returns:
            The cache that :meth:`hvp_one` and :meth:`quadform_one` read.
        """
        inputs, outs, d1, d2 = [], [], {}, {}
        with torch.enable_grad():
            h = x.detach()
            for i, (_, m) in enumerate(self.modules):
                inputs.append(h.detach())
                if isinstance(m, _AFFINE):
                    h = self._lin(m, h, self._param(i, "weight"), self._param(i, "bias"))
                elif isinstance(m, _ELEMENTWISE):
                    z = h.detach()
                    one = torch.ones_like(z)
                    f = lambda u, m=m: m(u.clone())  # noqa: E731  (clone: inplace activations)
                    d1[i] = jvp(f, (z,), (one,))[1]
                    if not isinstance(m, _PIECEWISE_LINEAR):
                        d2[i] = jvp(lambda u, f=f, one=one: jvp(f, (u,), (one,))[1], (z,), (one,))[1]
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
        return torch.ops.aten.convolution(a, w, b, *_conv_args(m))

    def _lin_sum(self, m: nn.Module, terms: Terms) -> torch.Tensor | None:
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

    @staticmethod
    def _plus_bias(
        m: nn.Module,
        z: torch.Tensor | None,
        bt: torch.Tensor | None,
        like: torch.Tensor,
    ) -> torch.Tensor | None:
        """``z`` plus the bias tangent ``bt`` broadcast over an output shaped ``like`` (z None: ``bt`` alone,
        expanded to that shape; bt None: ``z``)."""
        if bt is None:
            return z
        b = bt.reshape((-1,) + (1,) * (like.dim() - 2) if isinstance(m, _CONV) else (-1,))
        return b.expand_as(like) if z is None else z + b

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
            if isinstance(m, _AFFINE):
                z = self._lin_sum(m, [(a_t, self._param(i, "weight")), (c.inputs[i], self._tangent(V, i, "weight"))])
                a_t = self._plus_bias(m, z, self._tangent(V, i, "bias"), c.deltas[i])
            elif isinstance(m, _ELEMENTWISE):
                a_t = None if a_t is None else c.d1[i] * a_t
            else:
                a_t = None if a_t is None else a_t.reshape(c.deltas[i].shape)
            tangents.append(a_t)
        return tangents

    @staticmethod
    def _weight_grad(m: nn.Module, w: torch.Tensor, terms: Terms) -> torch.Tensor:
        """sum of d<delta, lin(a, w)>/dw over the (a, delta) pairs with both present: one call, batches stacked."""
        terms = [(a, d) for a, d in terms if a is not None and d is not None]
        if not terms:
            return torch.zeros_like(w)
        a = torch.cat([a for a, _ in terms]) if len(terms) > 1 else terms[0][0]
        d = torch.cat([d for _, d in terms]) if len(terms) > 1 else terms[0][1]
        if isinstance(m, nn.Linear):
            return d.reshape(-1, d.shape[-1]).T @ a.reshape(-1, a.shape[-1])
        return torch.ops.aten.convolution_backward(d, a, w, None, *_conv_args(m), [False, True, False])[1]

    @staticmethod
    def _bias_grad(m: nn.Module, b: torch.Tensor, delta: torch.Tensor | None) -> torch.Tensor:
        if delta is None:
            return torch.zeros_like(b)
        if isinstance(m, nn.Linear):
            return delta.reshape(-1, delta.shape[-1]).sum(0)
        return delta.sum([d for d in range(delta.dim()) if d != 1])

    def _input_grad(self, m: nn.Module, a: torch.Tensor, terms: Terms) -> torch.Tensor | None:
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
            gi = torch.ops.aten.convolution_backward(d, a, w, None, *_conv_args(m), [True, False, False])[0]
            out = gi if out is None else out + gi
        return out

    def hvp_one(self, c: _BatchCache, V: Params) -> Params:
        """``H v`` of one batch's loss by the per-layer R-operator (a tangent pass forward, then backward).

        Args:
            c: the batch's cache (:meth:`cache`).
            V: one direction, shaped like the point (a parameter absent from it counts as zero).

        Returns:
            The product, shaped like the point.
        """
        tangents = self._forward_tangent(c, V)
        out: Params = {}
        dt = None if tangents[-1] is None else self._loss_hvp(c, tangents[-1])  # delta' at the output
        for i in range(len(self.modules) - 1, self.first_measured - 1, -1):  # nothing to measure below
            name, m = self.modules[i]
            a, delta = c.inputs[i], c.deltas[i]
            a_t = tangents[i - 1] if i > 0 else None
            if isinstance(m, _AFFINE):
                wn, bn = f"{name}.weight", f"{name}.bias"
                if wn in self.point:  # (dW)' = wgrad(a, delta') + wgrad(a', delta)
                    out[wn] = self._weight_grad(m, self.point[wn], [(a, dt), (a_t, delta)])
                if bn in self.point:
                    out[bn] = self._bias_grad(m, self.point[bn], dt)
                if i > self.first_measured:
                    dt = self._input_grad(
                        m, a, [(dt, self._param(i, "weight")), (delta, self._tangent(V, i, "weight"))]
                    )
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
        """``v^T H v`` of one batch's loss as the second derivative of ``t -> L(theta + t v)``, forward only.

        Args:
            c: the batch's cache (:meth:`cache`).
            V: one direction, shaped like the point.

        Returns:
            A scalar tensor.
        """
        a1: torch.Tensor | None = None
        a2: torch.Tensor | None = None
        for i, (_, m) in enumerate(self.modules):
            if isinstance(m, _AFFINE):
                w, wt = self._param(i, "weight"), self._tangent(V, i, "weight")
                z1 = self._plus_bias(
                    m, self._lin_sum(m, [(a1, w), (c.inputs[i], wt)]), self._tangent(V, i, "bias"), c.deltas[i]
                )
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


class LayerwiseProducts:
    """The layerwise product strategy of a loss: :class:`LayerwiseCurvature` over its batches, weighted n_b / N.

    Per-batch caches are built once and kept when the data is a list of batches; any other iterable (a
    loader) is run through once per call and nothing is kept. Products at parameters other than the point
    (whose primal pass is not cached) go to ``off_point``, a generic strategy.
    """

    method = "layerwise"

    def __init__(self, loss: Evaluation, off_point: Products):
        self.loss, self.off_point = loss, off_point
        self.curvature = LayerwiseCurvature(loss.model, loss.loss_fn, loss.point)
        self.caches: list[_BatchCache] | None = None

    def hvp(self, vectors: Params, params: Params | None = None) -> Params:
        if params is not None and params is not self.loss.point:
            return self.off_point.hvp(vectors, params)
        return self._apply(vectors, self.curvature.hvp_one, stack=True)

    def quadform(self, vectors: Params) -> torch.Tensor:
        """A forward-only second-order pass per direction: cheaper than ``H v``."""
        return self._apply(vectors, self.curvature.quadform_one, stack=False)

    def _apply(self, vectors: Params, one: Callable[[_BatchCache, Params], Any], stack: bool) -> Any:
        """``one(cache, v)`` for each direction v of the block, summed over batches with weights n_b / N."""
        k = next(iter(vectors.values())).shape[0]
        directions = [{name: t[j] for name, t in vectors.items()} for j in range(k)]
        acc: list[Any] = [None] * k
        total = 0
        for c in self._caches():
            for j, v in enumerate(directions):
                acc[j] = scale_add(acc[j], one(c, v), c.n)
            total += c.n
        columns = [self.loss.mean(a, total) for a in acc]
        if stack:
            return {name: torch.stack([col[name] for col in columns]) for name in vectors}
        return torch.stack(columns)

    def _caches(self) -> Iterable[_BatchCache]:
        """Per-batch primal caches: built once and kept when the data is a list, else rebuilt per call."""
        keep = self.loss.cacheable
        if keep and self.caches is not None:
            yield from self.caches
            return
        built = []
        for x, y, n in self.loss.batches():
            with module_mode(self.loss.model, self.loss.mode == "train"):
                c = self.curvature.cache(x, y, n)
            if keep:
                built.append(c)
            yield c
        if keep:
            self.caches = built
