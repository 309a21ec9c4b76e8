"""Flatness measures built to survive rescalings: normalized sharpness (Tsuzuku, Sato, Sugiyama 2020), relative
flatness (Petzka, Kamp, Adilova, Sminchisescu, Boley 2021) and the Fisher-Rao norm (Liang, Poggio, Rakhlin,
Stokes 2019).

- Normalized sharpness, for every weight matrix W (m x n; a convolution's (out, in * kh * kw)) with the diagonal
  Hessian entries h_ij = d^2 L / d W_ij^2, summed over the weight matrices:

      NS = sum_W  min_{a in R^m_+, b in R^n_+}  sum_ij ( h_ij a_i b_j + W_ij^2 / (a_i b_j) ),

  a_i b_j standing for the variance sigma_ij^2 = alpha_i^2 beta_j^2 of a Gaussian posterior whose rows and
  columns are scaled separately (the PAC-Bayes trade-off of expected loss increase h sigma^2 against the
  W^2 / sigma^2 term). Rescaling row i by s and column j by t changes h_ij by 1 / (s t)^2 and W_ij^2 by (s t)^2,
  which a_i, b_j absorb: the minimum is invariant under every per-neuron and layer-wise rescaling. We drop the
  constant factors of the bound, and minimise exactly: the objective is convex in (log a, log b) and each block
  has the closed-form minimiser a_i = sqrt(sum_j W_ij^2 / b_j / sum_j h_ij b_j), so alternating the two blocks
  converges to the global minimum. Rows or columns whose h vanish contribute their infimum, 0.
- Relative flatness of one layer W (d outputs x m features, rows w_s), on features phi(x) that feed it:

      kappa = sum_{s,s'} <w_s, w_s'> tr(H_{s,s'}),   H_{s,s'} = d^2 L / (d w_s d w_s'),

  computed exactly as tr(H_{s,s'}) = (1/N) sum_n G_n[s,s'] |phi_n|^2 with G_n the Hessian of example n's loss
  in the layer's outputs (one second-order pass per output unit). Petzka et al. apply it to the last layer; in
  their correlation experiments they first rescale every feature to unit standard deviation over the training
  set (columns of W times sigma_j), which makes kappa invariant to per-neuron rescaling of the features too.
  ``normalize_features=True`` (default) does the same; without it kappa is invariant to layer-wise scaling only.
- Fisher-Rao norm: |theta|_fr^2 = E[<theta, grad_theta l(f_theta(x), y)>^2], the Fisher information's quadratic
  form at theta itself. <theta, grad l> = (d l / d f) . (J theta) needs one forward-mode pass (J theta, the
  outputs' derivative along theta) and per-example output gradients: exact, no curvature products. ``labels``
  ``"data"`` takes y from the data (the empirical Fisher); ``"model"`` averages over y ~ softmax(f) (the Fisher
  information). For a bias-free ReLU network of depth L+1, J theta = (L+1) f (Euler), so
  |theta|_fr^2 = (L+1)^2 E[<d l / d f, f>^2] (Liang et al.'s closed form). It is unchanged by any linear
  function-preserving reparametrization (a diagonal rescaling or an input map), since <theta, grad l> is the
  derivative of l along t -> (1 + t) theta in any linear coordinates.

The diagonal Hessian of normalized sharpness is exact for networks that are linear in each single parameter
(Linear / Conv layers joined by ReLU, pooling, Flatten, eval-mode batch norm): there d^2 f / d theta_i^2 = 0, so
h equals the diagonal of the Gauss-Newton matrix, (1/N) sum_n sum_c ((J_n^T L_n)_{:,c})^2 with L_n L_n^T the
loss's Hessian in the outputs, from per-example gradients. Other networks fall back to Hutchinson's diagonal
estimate E[z * H z] on the curvature engine (``method`` records which).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, jvp, vmap

from icml17.core.curvature import Batch, HessianOperator, ModelLoss
from icml17.core.curvature.base import module_mode
from icml17.core.functional import LossFn, Params, unflatten

# modules through which the network stays linear in each single parameter (d^2 f / d theta_i^2 = 0)
PIECEWISE_MULTILINEAR = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Identity,
    nn.Dropout,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.Sequential,
)


class NotApplicable(ValueError):
    """The measure is not defined for this model (no weight matrix, no Linear layer, ...); the message says why."""


def _outputs(loss: ModelLoss, params: Params, x: torch.Tensor) -> torch.Tensor:
    return functional_call(loss.model, params, (x,), strict=False)


def _example_loss(loss_fn: LossFn):
    return lambda f, y: loss_fn(f[None], y[None])


def exact_diagonal_reason(model: nn.Module, mode: str) -> str | None:
    """Why the Gauss-Newton diagonal is not the exact Hessian diagonal of ``model`` (None: it is).

    Args:
        model: the network.
        mode: ``"eval"`` or ``"train"`` (train-mode batch norm couples the examples).

    Returns:
        A reason, or None.
    """
    for name, m in model.named_modules():
        if not isinstance(m, PIECEWISE_MULTILINEAR):
            return f"module {name or type(model).__name__} ({type(m).__name__}) is not linear in each parameter"
        if mode == "train" and isinstance(m, nn.modules.batchnorm._BatchNorm):
            return "train-mode batch norm couples the examples"
    return None


def hessian_diagonal(
    model: nn.Module,
    loss_fn: LossFn,
    data: Batch | Iterable[Batch],
    *,
    method: str = "auto",
    probes: int = 64,
    seed: int = 0,
    chunk: int = 16,
    dtype: torch.dtype | None = None,
    mode: str = "eval",
) -> tuple[Params, str]:
    """The diagonal of the loss's Hessian, per parameter tensor.

    Args:
        model: the network (not changed).
        loss_fn: ``loss_fn(outputs, targets)``, a batch mean.
        data: one ``(x, y)`` batch or several.
        method: ``"exact"`` (the Gauss-Newton diagonal, exact for networks linear in each parameter; see the
            module docstring), ``"hutchinson"`` (``probes`` Rademacher probes on the curvature engine) or
            ``"auto"`` (exact where it is exact).
        probes: Hutchinson's probes.
        seed: Hutchinson's seed.
        chunk: examples per vmapped block of the exact method (memory: chunk x classes x parameters numbers).
        dtype: compute in this dtype (default: the model's).
        mode: ``"eval"`` or ``"train"``.

    Returns:
        (name -> diagonal shaped like the parameter, the method used).

    Raises:
        ValueError: an unknown method, or ``"exact"`` where it is not exact.
    """
    if method not in ("auto", "exact", "hutchinson"):
        raise ValueError(f"method must be 'auto', 'exact' or 'hutchinson', got {method!r}")
    reason = exact_diagonal_reason(model, mode)
    if method == "exact" and reason is not None:
        raise ValueError(f"the exact Hessian diagonal needs a network linear in each parameter: {reason}")
    if method == "hutchinson" or reason is not None:
        op = HessianOperator(model, loss_fn, data, dtype=dtype, mode=mode)
        gen = torch.Generator().manual_seed(seed)
        acc = torch.zeros(op.size, dtype=op.dtype, device=op.device)
        done = 0
        while done < probes:
            k = min(op.max_block, probes - done)
            z = (torch.randint(0, 2, (op.size, k), generator=gen) * 2 - 1).to(op.device, op.dtype)
            acc += (z * op.matmat(z)).sum(1)
            done += k
        return unflatten(acc / probes, op.point), "hutchinson"
    loss = ModelLoss(model, loss_fn, data, dtype=dtype, mode=mode)
    example_hessian = vmap(jacrev(jacrev(_example_loss(loss_fn))))

    def per_example(params: Params, x: torch.Tensor, root: torch.Tensor) -> Params:
        # sum_c (J^T root[:, c])^2 for one example: root (C, C) with root root^T = d^2 l / d f^2
        def contracted(p: Params, r: torch.Tensor) -> torch.Tensor:
            return (_outputs(loss, p, x[None])[0].reshape(-1) * r).sum()

        grads = vmap(grad(contracted), in_dims=(None, 1))(params, root)  # (C, ...) per parameter
        return {k: g.pow(2).sum(0) for k, g in grads.items()}

    total, acc_d = 0, None
    with module_mode(loss.model, mode == "train"):
        for x, y, n in loss.batches():
            with torch.no_grad():
                f = _outputs(loss, loss.point, x).reshape(n, -1)
            S = example_hessian(f, y)  # (n, C, C)
            evals, vecs = torch.linalg.eigh(S)
            roots = vecs * evals.clamp_min(0).sqrt()[:, None, :]  # (n, C, C): root root^T = S
            for i in range(0, n, chunk):
                part = vmap(per_example, in_dims=(None, 0, 0))(loss.point, x[i : i + chunk], roots[i : i + chunk])
                sums = {k: v.sum(0) for k, v in part.items()}
                acc_d = sums if acc_d is None else {k: acc_d[k] + sums[k] for k in sums}
            total += n
    return loss.mean(acc_d, total), "exact"


@dataclass
class NormalizedSharpness:
    """What :func:`normalized_sharpness` found.

    Attributes:
        value: the sum over weight matrices of the minimised objective.
        layers: each weight matrix's term, by parameter name.
        diagonal_method: how the Hessian diagonal was computed (``"exact"`` or ``"hutchinson"``).
        converged: every minimisation met its tolerance.
        iterations: the most alternating sweeps any matrix needed.
    """

    value: float
    layers: dict[str, float] = field(default_factory=dict)
    diagonal_method: str = "exact"
    converged: bool = True
    iterations: int = 0


def min_row_column(
    h: torch.Tensor,
    w2: torch.Tensor,
    *,
    max_iter: int = 2000,
    tol: float = 1e-12,
) -> tuple[float, bool, int]:
    """min over positive a (rows), b (columns) of sum_ij h_ij a_i b_j + w2_ij / (a_i b_j), in float64.

    Rows and columns that can drive their terms to 0 (all h zero, or all w2 zero) are dropped first: the
    infimum is then not attained, and their contribution is 0.

    Args:
        h: (m, n), non-negative (negative entries, from an estimate, are clamped to 0).
        w2: (m, n), non-negative.
        max_iter: alternating sweeps at most.
        tol: stop when the objective changes by less than this, relative.

    Returns:
        (the minimum, whether it converged, sweeps run).

    Raises:
        ValueError: shapes that differ.
    """
    if h.shape != w2.shape or h.dim() != 2:
        raise ValueError(f"h and w2 must be matrices of one shape, got {tuple(h.shape)} and {tuple(w2.shape)}")
    h, w2 = h.double().clamp_min(0), w2.double()
    rows = torch.ones(h.shape[0], dtype=torch.bool, device=h.device)
    cols = torch.ones(h.shape[1], dtype=torch.bool, device=h.device)
    while True:  # a row or column without curvature (or without weight) has infimum 0: drop it, and repeat
        hh, ww = h[rows][:, cols], w2[rows][:, cols]
        keep_r = (hh.sum(1) > 0) & (ww.sum(1) > 0)
        keep_c = (hh.sum(0) > 0) & (ww.sum(0) > 0)
        if bool(keep_r.all()) and bool(keep_c.all()):
            break
        rows[rows.clone()] = keep_r
        cols[cols.clone()] = keep_c
        if not bool(rows.any()) or not bool(cols.any()):
            return 0.0, True, 0
    h, w2 = h[rows][:, cols], w2[rows][:, cols]
    a = torch.ones(h.shape[0], dtype=h.dtype, device=h.device)
    b = torch.ones(h.shape[1], dtype=h.dtype, device=h.device)
    value = float("inf")
    for it in range(1, max_iter + 1):
        a = ((w2 / b).sum(1) / (h * b).sum(1)).sqrt()
        b = ((w2.T / a).sum(1) / (h.T * a).sum(1)).sqrt()
        new = float((h * a[:, None] * b).sum() + (w2 / (a[:, None] * b)).sum())
        if abs(value - new) <= tol * abs(new):
            return new, True, it
        value = new
    return value, False, max_iter


def _weight_matrices(params: Params) -> dict[str, torch.Tensor]:
    return {n: p.reshape(p.shape[0], -1) for n, p in params.items() if n.endswith("weight") and p.dim() >= 2}


def normalized_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    data: Batch | Iterable[Batch],
    *,
    method: str = "auto",
    probes: int = 64,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    mode: str = "eval",
) -> NormalizedSharpness:
    """Tsuzuku et al.'s normalized sharpness, summed over the weight matrices (see the module docstring).

    Args:
        model: the network (not changed); its weight matrices are the parameters named ``*weight`` with two or
            more dimensions (biases and batch-norm scales do not enter).
        loss_fn: ``loss_fn(outputs, targets)``, a batch mean.
        data: one ``(x, y)`` batch or several.
        method: the Hessian diagonal's method (:func:`hessian_diagonal`).
        probes: Hutchinson probes, where the diagonal is estimated.
        seed: Hutchinson's seed.
        dtype: compute in this dtype (default: the model's).
        mode: ``"eval"`` or ``"train"``.

    Returns:
        A :class:`NormalizedSharpness`.

    Raises:
        NotApplicable: the model has no weight matrix.
    """
    point = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    if not _weight_matrices(point):
        raise NotApplicable(
            f"{type(model).__name__} has no weight matrix (a parameter named *weight with 2 or "
            "more dimensions) to normalise rows and columns of"
        )
    diag, used = hessian_diagonal(model, loss_fn, data, method=method, probes=probes, seed=seed, dtype=dtype, mode=mode)
    out = NormalizedSharpness(0.0, diagonal_method=used)
    h_mats = _weight_matrices(diag)
    for name, w in _weight_matrices(point).items():
        value, ok, it = min_row_column(h_mats[name], w.double() ** 2)
        out.layers[name] = value
        out.value += value
        out.converged &= ok
        out.iterations = max(out.iterations, it)
    return out


@dataclass
class RelativeFlatness:
    """What :func:`relative_flatness` found.

    Attributes:
        value: kappa = sum_{s,s'} <w_s, w_s'> tr(H_{s,s'}).
        layer: the module whose weight was measured.
        normalized: whether the features were rescaled to unit standard deviation first.
        dead_features: features with zero standard deviation over the data (their columns left out when
            normalising).
    """

    value: float
    layer: str
    normalized: bool
    dead_features: int = 0


def last_linear(model: nn.Module) -> str:
    """The name of the last ``nn.Linear`` module of ``model`` (in module order).

    Args:
        model: the network.

    Returns:
        Its name in ``named_modules``.

    Raises:
        NotApplicable: the model has no Linear layer.
    """
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise NotApplicable(
            f"{type(model).__name__} has no nn.Linear layer whose features relative flatness could be measured on"
        )
    return names[-1]


def relative_flatness(
    model: nn.Module,
    loss_fn: LossFn,
    data: Batch | Iterable[Batch],
    *,
    layer: str | None = None,
    normalize_features: bool = True,
    dtype: torch.dtype | None = None,
    mode: str = "eval",
) -> RelativeFlatness:
    """Petzka et al.'s relative flatness kappa of one Linear layer (default: the last), exactly.

    Examples are assumed independent given the parameters (eval mode; train-mode batch norm is refused).

    Args:
        model: the network (not changed).
        loss_fn: ``loss_fn(outputs, targets)``, a batch mean.
        data: one ``(x, y)`` batch or several.
        layer: the ``nn.Linear`` module's name (default: the last one, Petzka et al.'s choice).
        normalize_features: rescale each input feature of the layer to unit standard deviation over the data
            first (and the layer's columns inversely), as Petzka et al. do before measuring.
        dtype: compute in this dtype (default: the model's).
        mode: ``"eval"`` only.

    Returns:
        A :class:`RelativeFlatness`.

    Raises:
        NotApplicable: no such Linear layer.
        ValueError: ``mode="train"``.
    """
    if mode != "eval":
        raise ValueError("relative flatness needs independent examples: measure it in eval mode")
    name = last_linear(model) if layer is None else layer
    loss = ModelLoss(model, loss_fn, data, dtype=dtype, mode=mode)
    module = dict(loss.model.named_modules()).get(name)
    if not isinstance(module, nn.Linear):
        raise NotApplicable(f"module {name!r} is not an nn.Linear layer of {type(model).__name__}")
    if f"{name}.weight" not in loss.point:
        raise NotApplicable(
            f"the weight of layer {name!r} is not a trainable parameter of {type(model).__name__} "
            "(a reparametrized model whose parameters are not the layers' weights)"
        )
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, inp, out: captured.append(inp[0].detach()))
    try:
        with torch.no_grad(), module_mode(loss.model, False):
            features = []
            for x, _, _ in loss.batches():
                captured.clear()
                loss.model(x)
                if captured[-1].dim() != 2:
                    raise NotApplicable(
                        f"layer {name!r} takes inputs of shape {tuple(captured[-1].shape)}; relative "
                        "flatness is defined here for (examples, features) inputs"
                    )
                features.append(captured[-1])
    finally:
        handle.remove()
    phi = torch.cat(features)  # (N, m)
    ones = torch.ones(phi.shape[1], dtype=phi.dtype, device=phi.device)
    col, inv, dead = ones, ones, 0
    if normalize_features:
        # a feature constant over the data (a dead unit) has no scale to normalise: its standard deviation is zero
        # up to rounding, judged against its magnitude, and its column drops out (it acts as a bias, and a dead
        # unit's column does not change the function; left unscaled it would rescale with the layer)
        std = phi.std(0, unbiased=False)
        live = std > 1e-9 * phi.abs().amax(0)
        col = torch.where(live, std, torch.zeros_like(std))
        inv = torch.where(live, 1 / torch.where(live, std, ones), torch.zeros_like(std))
        dead = int((~live).sum())
    W = module.weight.detach() * col  # (d, m): columns times sigma_j
    d = W.shape[0]
    T = torch.zeros(d, d, dtype=W.dtype, device=W.device)  # sum_n G_n |phi_n|^2 (not yet / N)
    start = 0
    with module_mode(loss.model, False):
        for x, y, n in loss.batches():
            sq = (phi[start : start + n] * inv).pow(2).sum(1)  # |phi_n|^2 of the normalised features
            start += n
            # the layer's outputs as a free variable: the hook replaces them, so d^2 L / dZ^2 is the outputs'
            Z = torch.nn.functional.linear(
                phi[start - n : start], module.weight.detach(), None if module.bias is None else module.bias.detach()
            )
            Z = Z.clone().requires_grad_(True)
            handle = module.register_forward_hook(lambda m, inp, out, Z=Z: Z)
            try:
                batch_loss = loss_fn(loss.model(x), y)
                (g,) = torch.autograd.grad(batch_loss, Z, create_graph=True)
                for s in range(d):
                    v = torch.zeros_like(Z)
                    v[:, s] = sq
                    (hv,) = torch.autograd.grad(g, Z, v, retain_graph=s < d - 1)
                    T[:, s] += n * hv.sum(0)  # n: the batch mean's 1 / n undone
            finally:
                handle.remove()
    T = T / phi.shape[0]
    return RelativeFlatness(float(((W @ W.T) * T).sum()), name, normalize_features, dead)


@dataclass
class FisherRao:
    """What :func:`fisher_rao_norm` found.

    Attributes:
        value: |theta|_fr, the square root of the quadratic form.
        squared: |theta|_fr^2.
        labels: ``"data"`` or ``"model"``.
    """

    value: float
    squared: float
    labels: str


def fisher_rao_norm(
    model: nn.Module,
    loss_fn: LossFn,
    data: Batch | Iterable[Batch],
    *,
    labels: str = "data",
    dtype: torch.dtype | None = None,
    mode: str = "eval",
) -> FisherRao:
    """|theta|_fr = sqrt(E[<theta, grad_theta l>^2]) (Liang et al. 2019), exactly (see the module docstring).

    Args:
        model: the network (not changed).
        loss_fn: ``loss_fn(outputs, targets)``, a batch mean.
        data: one ``(x, y)`` batch or several.
        labels: ``"data"`` (y from the data) or ``"model"`` (y ~ softmax of the outputs; a classifier under
            cross-entropy).
        dtype: compute in this dtype (default: the model's).
        mode: ``"eval"`` only (examples must be independent).

    Returns:
        A :class:`FisherRao`.

    Raises:
        ValueError: an unknown ``labels``, or ``mode="train"``.
    """
    if labels not in ("data", "model"):
        raise ValueError(f"labels must be 'data' or 'model', got {labels!r}")
    if mode != "eval":
        raise ValueError("the Fisher-Rao norm needs independent examples: measure it in eval mode")
    loss = ModelLoss(model, loss_fn, data, dtype=dtype, mode=mode)
    output_grad = vmap(grad(_example_loss(loss_fn)))

    def batch_sq(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        f, df = jvp(lambda p: _outputs(loss, p, x), (loss.point,), (loss.point,))  # df = J theta, (n, C)
        f, df = f.detach().reshape(len(x), -1), df.detach().reshape(len(x), -1)
        if labels == "data":
            return (output_grad(f, y) * df).sum(1).pow(2).mean()
        p = torch.softmax(f, 1)  # d l / d f = p - e_c for class c
        d = (p * df).sum(1, keepdim=True) - df  # (n, C)
        return (p * d.pow(2)).sum(1).mean()

    sq = float(loss.accumulate(batch_sq))
    return FisherRao(sq**0.5, sq, labels)
