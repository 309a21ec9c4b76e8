"""Curvature of a model's loss: exact Hessian-vector products and the spectral estimators built on them.

One factory, :class:`HessianOperator`, turns (model, loss, data) into a symmetric linear operator on the flat
parameter vector. Its products are exact (no finite differences: on ReLU networks a finite step can cross an
activation kink and inflate lambda_max several-fold) and computed forward-over-reverse,
``jvp(grad(L), (theta,), (v,))``, with ``vmap`` over a block of probe vectors so that k products cost one
batched pass instead of k. The data may be one ``(x, y)`` batch or an iterable of batches (a loader); products
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


class ModelLoss:
    """The mean loss of ``model`` over ``data`` as a function of a parameter dict (one job: evaluate it).

    ``params`` names the parameters that vary (default: all with ``requires_grad``); the others and the
    buffers stay at the module's values. ``linearize=True`` traces, once per batch, the forward-over-reverse
    product at the point (``torch.func.linearize``: the primal forward and backward are evaluated once and
    folded into constants), so every later product only runs the tangent computation; it costs a tracing
    pass (~0.5-1 s) and keeps each batch's activations in memory, and pays off from a few dozen products on. ``dtype`` (e.g. ``torch.float64``) evaluates a converted copy of the
    model on converted inputs. ``mode`` is ``"eval"`` (default; batch norm uses running statistics, dropout is
    off) or ``"train"``.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Batch | Iterable[Batch], *,
                 params: Sequence[str] | None = None, dtype: torch.dtype | None = None, mode: str = "eval",
                 linearize: bool = False):
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
        self.method = "forward-over-reverse"
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

    ``n_hvp`` counts Hessian-vector products (a block of k counts k); ``max_block`` caps how many probes are
    vmapped at once (memory grows with it); ``linearize`` caches the linearized product (see :class:`ModelLoss`).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Batch | Iterable[Batch], *,
                 params: Sequence[str] | None = None, dtype: torch.dtype | None = None, mode: str = "eval",
                 max_block: int = 32, linearize: bool = False):
        self.loss = ModelLoss(model, loss_fn, data, params=params, dtype=dtype, mode=mode, linearize=linearize)
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
    """tr(H) ~ mean of v^T H v over Rademacher probes v, evaluated ``block`` probes per batched product."""
    if n_probes < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes}")
    gen = _generator(seed)
    samples = []
    for start in range(0, n_probes, block):
        V = _rademacher(op.size, min(block, n_probes - start), op, gen)
        samples.append((V * op.matmat(V)).sum(0))
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
