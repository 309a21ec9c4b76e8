"""Spectral estimators on any symmetric operator with ``size``, ``dtype``, ``device`` and ``matmat(V)``.

- :func:`power_iteration`: dominant eigenvalue (largest |lambda|), stopped on a relative change below ``tol``.
- :func:`lanczos`: top-k (algebraically largest) eigenpairs, Lanczos with full reorthogonalisation, stopped
  when every wanted Ritz pair has a residual ``|beta_m s_{m,i}| <= tol |theta_i|``.
- :func:`hutchinson` (Hutchinson 1989) and :func:`hutchpp` (Meyer, Musco, Musco, Woodruff 2021): trace.
- :func:`slq_density`: stochastic Lanczos quadrature (Ubaru, Chen, Saad 2017; Ghorbani et al. 2019).

They see the operator only through that interface, so they run on a model's Hessian, a rescaled one or a
dense test matrix alike; the operator's ``n_hvp`` counts the products they spend.

Devices: every vector they make (start vectors, probes, the Lanczos basis) lives on ``op.device``. An integer
``seed`` draws from a CPU generator and moves the draw there, so a seed gives the same start vectors and probes
(and, up to the device's rounding, the same estimates) on every device; a ``torch.Generator`` passed as ``seed``
draws directly on ``op.device`` and must have been made for it (``icml17.core.device.generator(op.device, s)``).
Each Lanczos or power-iteration step copies a few numbers back to the CPU in one transfer (the tridiagonal matrix
and the stopping tests live there; a Lanczos step that needs a second reorthogonalisation pass copies once more);
Hutchinson copies its probe values once, at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from icml17.core.curvature.base import LinearOperator


class _Draws:
    """Random vectors for an operator from ``seed`` (see the module docstring): an integer seeds a CPU generator
    whose draws are moved to ``op.device``; a generator draws on ``op.device`` itself."""

    def __init__(self, seed: int | torch.Generator | None, op: LinearOperator):
        if isinstance(seed, torch.Generator):
            self.gen, self.where = seed, op.device
        else:
            self.gen, self.where = torch.Generator().manual_seed(0 if seed is None else seed), torch.device("cpu")
        self.device, self.dtype = op.device, op.dtype

    def normal(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.gen, device=self.where).to(self.device, self.dtype)

    def rademacher(self, n: int, k: int) -> torch.Tensor:
        # drawn as 0/1 directly in the operator's dtype (the same generator stream, hence the same signs, as an
        # integer draw) and mapped to -1/+1 in place: no int64 temporary, no second pass to cast it
        v = torch.randint(0, 2, (n, k), generator=self.gen, device=self.where, dtype=self.dtype)
        return v.mul_(2).sub_(1).to(self.device)


@dataclass
class EigenResult:
    """Eigenpairs from :func:`lanczos` or :func:`power_iteration`, with what they cost and whether they converged.

    Attributes:
        eigenvalues: the estimates, descending (power iteration: the one of largest magnitude).
        eigenvectors: ``(n, k)`` unit columns, on the operator's device.
        n_hvp: products spent.
        iterations: Lanczos steps or power iterations run.
        converged: the stopping test was met (or the Krylov space was exhausted).
        method: ``"lanczos"`` or ``"power"``.
        residuals: Lanczos' residual estimates ``|beta_m s_{m,i}|`` of the wanted pairs at the last test.
    """

    eigenvalues: list[float]  # descending
    eigenvectors: torch.Tensor  # (n, k)
    n_hvp: int
    iterations: int
    converged: bool
    method: str
    residuals: list[float] = field(default_factory=list)


def power_iteration(
    op: LinearOperator, *, tol: float = 1e-3, max_iter: int = 200, seed: int | torch.Generator | None = 0
) -> EigenResult:
    """Dominant eigenpair by power iteration with a Rayleigh-quotient estimate.

    It stops when the estimate changes by less than ``tol`` relative (PyHessian's criterion, kept for
    comparisons with it); :func:`lanczos` converges in fewer products and bounds the residual.

    Args:
        op: a symmetric operator (:class:`~icml17.core.curvature.base.LinearOperator`).
        tol: relative change of the Rayleigh quotient at which to stop (0: run ``max_iter``).
        max_iter: the most products.
        seed: the start vector's seed, or a generator made for ``op.device`` (see the module docstring).

    Returns:
        An :class:`EigenResult` with one eigenvalue (largest in magnitude) and its vector ``(n, 1)``.
    """
    v = _Draws(seed, op).normal(op.size, 1)
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


_REORTH_ETA = 1 / math.sqrt(2)  # a second reorthogonalisation pass when one keeps less of the norm than this


def _lanczos_basis(
    op: LinearOperator,
    v0: torch.Tensor,
    steps: int,
    *,
    on_step: Callable | None = None,
) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Lanczos with full reorthogonalisation from ``v0``: (alpha (m,), beta (m,), Q (n, m)).

    ``beta[j]`` couples q_j and q_{j+1}; ``beta[m-1]`` is the residual norm used for convergence tests.
    ``on_step(alpha, beta)`` may return True to stop early.
    """
    m_max = min(steps, op.size)
    # the basis as rows of one preallocated matrix: reorthogonalising against B[:j+1] is two contiguous
    # matrix-vector products, with no re-stacking of the basis at every step
    B = torch.empty(m_max, v0.numel(), dtype=v0.dtype, device=v0.device)
    B[0] = v0 / v0.norm()
    alpha: list[float] = []
    beta: list[float] = []
    for j in range(m_max):
        q = B[j]
        w = op.matmat(q[:, None])[:, 0]
        a = q @ w
        # the three-term recurrence first, then one classical Gram-Schmidt pass against the whole basis; a second
        # pass only where the first removed much of what the recurrence left (the Daniel-Gragg-Kaufman-Stewart
        # test; twice is enough, Parlett), which in practice it does not: half the passes over the basis
        w = w - a * q
        if j > 0:
            w = w - beta[-1] * B[j - 1]
        local = w.norm()
        Q = B[: j + 1]
        w = w - Q.T @ (Q @ w)
        a, local, b = torch.stack([a, local, w.norm()]).cpu().tolist()  # one copy to the CPU per step
        if b < _REORTH_ETA * local:
            w = w - Q.T @ (Q @ w)
            b = float(w.norm())
        alpha.append(a)
        beta.append(b)
        if on_step is not None and on_step(np.array(alpha), np.array(beta)):
            break
        if b <= 1e-10 * max(1.0, abs(a)) or j + 1 == m_max:
            break
        B[j + 1] = w / b
    m = len(alpha)
    return np.array(alpha), np.array(beta), B[:m].T


def _ritz(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(alpha) == 1:
        return alpha.copy(), np.ones((1, 1))
    return eigh_tridiagonal(alpha, beta[:-1])


def lanczos(
    op: LinearOperator,
    k: int = 1,
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
    seed: int | torch.Generator | None = 0,
    stop: str = "residual",
    start: torch.Tensor | None = None,
) -> EigenResult:
    """Top-``k`` eigenpairs (algebraically largest) by Lanczos with full reorthogonalisation.

    ``stop="residual"``: every wanted Ritz pair has ``|beta_m s_{m,i}| <= tol |theta_i|`` (a bound on the
    eigenvector's quality too). ``stop="gap"``: the eigenvalue error estimate ``residual^2 / gap`` is at most
    ``tol |theta_i|``, with the gap estimated from the next Ritz value (the standard a-posteriori bound for a
    Ritz value; it needs k + 1 Ritz values and is looser about the eigenvector).

    Args:
        op: a symmetric operator (:class:`~icml17.core.curvature.base.LinearOperator`).
        k: how many of the largest eigenpairs.
        tol: relative tolerance of the stopping test (0: run ``max_iter`` steps).
        max_iter: the most Lanczos steps (one product each; capped at ``op.size``).
        seed: the start vector's seed, or a generator made for ``op.device`` (see the module docstring).
        stop: ``"residual"`` or ``"gap"``, as above.
        start: the start vector ``(n,)`` (any scale; cast to the operator's dtype and device), or None for a
            Gaussian one drawn from ``seed``. Lanczos only finds eigenvectors the start has a component along: a
            start orthogonal to the top eigenvector (the gradient of a quadratic at its minimum, say) never finds
            its eigenvalue.

    Returns:
        An :class:`EigenResult`: ``k`` eigenvalues descending, their vectors ``(n, k)``.

    Raises:
        ValueError: ``k < 1``, an unknown ``stop``, or a ``start`` that is not a nonzero finite vector of ``n``
            entries.

    Examples:
        A quadratic ``x^T A x / 2`` has Hessian A, so lambda_max is A's largest eigenvalue:

        >>> import torch
        >>> from icml17.core.curvature import DenseOperator, lanczos
        >>> a = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        >>> r = lanczos(DenseOperator(a), k=2, tol=1e-10)
        >>> [round(x, 8) for x in r.eigenvalues]  # eigenvalues 3 (on (1, 1, 0)), 1 and 1
        [3.0, 1.0]
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if stop not in ("residual", "gap"):
        raise ValueError(f"stop must be 'residual' or 'gap', got {stop!r}")
    if start is None:
        v0 = _Draws(seed, op).normal(op.size)
    else:
        if start.numel() != op.size or start.dim() > 2:
            raise ValueError(
                f"start must be a vector of {op.size} entries (the operator's size), got shape {tuple(start.shape)}"
            )
        v0 = start.reshape(-1).to(op.device, op.dtype)
        norm = float(v0.norm())
        if not (math.isfinite(norm) and norm > 0):
            raise ValueError(f"start must be a nonzero, finite vector (its norm is {norm}): pass another, or None")
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
            gaps = np.maximum(top[:k] - top[1 : k + 1], 1e-300)
            ok = bool(np.all(res**2 / gaps <= tol * np.abs(top[:k])))
        else:
            ok = bool(np.all(res <= tol * np.abs(top[:k])))
        state.update(converged=ok, residuals=res.tolist())
        return ok

    # tol=0 can never stop early: the test runs once, on the final basis, for the reported residuals
    alpha, beta, Q = _lanczos_basis(op, v0, max_iter, on_step=check if tol > 0 else None)
    if tol <= 0:
        check(alpha, beta)
    theta, s = _ritz(alpha, beta)
    order = np.argsort(theta)[::-1][:k]
    vecs = Q @ torch.as_tensor(s[:, order].copy(), dtype=op.dtype, device=op.device)
    exhausted = len(alpha) == op.size or beta[-1] <= 1e-10 * max(1.0, abs(alpha[-1]))
    return EigenResult(
        theta[order].tolist(),
        vecs,
        len(alpha),
        len(alpha),
        state["converged"] or exhausted,
        "lanczos",
        state.get("residuals", []),
    )


@dataclass
class TraceResult:
    """A trace estimate from :func:`hutchinson` or :func:`hutchpp`.

    Attributes:
        estimate: the estimate of ``tr(A)``.
        stderr: the standard error of the mean over probes (nan for Hutch++ and for one probe).
        n_hvp: products spent.
        method: ``"hutchinson"`` or ``"hutch++"``.
    """

    estimate: float
    stderr: float  # standard error of the mean over probes (nan for Hutch++)
    n_hvp: int
    method: str


def hutchinson(
    op: LinearOperator, n_probes: int = 100, *, block: int = 32, seed: int | torch.Generator | None = 0
) -> TraceResult:
    """tr(A) ~ mean of ``v^T A v`` over Rademacher probes v (Hutchinson 1989).

    The probes are evaluated ``block`` at a time, through ``op.quadform`` where the operator has one (only the
    quadratic forms are needed, which the layerwise products compute without a reverse pass).

    Args:
        op: a symmetric operator (:class:`~icml17.core.curvature.base.LinearOperator`).
        n_probes: how many probes.
        block: probes per batched product (memory grows with it).
        seed: the probes' seed, or a generator made for ``op.device`` (see the module docstring).

    Returns:
        A :class:`TraceResult` with the standard error of the mean over the probes.

    Raises:
        ValueError: ``n_probes < 1``.
    """
    if n_probes < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes}")
    draws = _Draws(seed, op)
    samples = []
    for start in range(0, n_probes, block):
        V = draws.rademacher(op.size, min(block, n_probes - start))
        quadform = getattr(op, "quadform", None)
        samples.append(quadform(V) if quadform is not None else (V * op.matmat(V)).sum(0))
    s = torch.cat(samples).cpu().double()  # (n_probes,), once
    stderr = float(s.std() / math.sqrt(n_probes)) if n_probes > 1 else float("nan")
    return TraceResult(float(s.mean()), stderr, n_probes, "hutchinson")


def hutchpp(op: LinearOperator, n_matvecs: int = 99, *, seed: int | torch.Generator | None = 0) -> TraceResult:
    """Hutch++ (Meyer, Musco, Musco, Woodruff 2021): the exact trace on a sketched top subspace plus Hutchinson
    on its complement, ``n_matvecs // 3`` products for each of the sketch, the subspace and the probes.

    Far fewer products than :func:`hutchinson` for the same error when the spectrum decays fast.

    Args:
        op: a symmetric operator (:class:`~icml17.core.curvature.base.LinearOperator`).
        n_matvecs: the product budget (a multiple of 3 is used in full).
        seed: the sketch's and probes' seed, or a generator made for ``op.device``.

    Returns:
        A :class:`TraceResult` (``stderr`` nan).

    Raises:
        ValueError: ``n_matvecs < 3``.
    """
    m = n_matvecs // 3
    if m < 1:
        raise ValueError(f"Hutch++ needs n_matvecs >= 3, got {n_matvecs}")
    draws = _Draws(seed, op)
    S = draws.rademacher(op.size, m)
    G = draws.rademacher(op.size, m)
    Q, _ = torch.linalg.qr(op.matmat(S))  # (n, m)
    G = G - Q @ (Q.T @ G)
    AQ, AG = op.matmat(torch.cat([Q, G], dim=1)).split(m, dim=1)
    est = float((Q * AQ).sum() + (G * AG).sum() / m)
    return TraceResult(est, float("nan"), 3 * m, "hutch++")


@dataclass
class SpectralDensity:
    """A spectral density from :func:`slq_density`: a mixture of point masses per probe.

    Attributes:
        nodes: ``(p, m)`` Ritz values, one row per probe.
        weights: ``(p, m)`` their masses (squared first components), each row summing to 1.
        size: the operator's dimension n (the density's moments times n estimate traces of powers).
        n_hvp: products spent.
    """

    nodes: np.ndarray
    weights: np.ndarray
    size: int
    n_hvp: int

    def moment(self, power: int) -> float:
        """An estimate of ``tr(A^power)``: ``size * mean over probes of sum_j w_j node_j^power``.

        Args:
            power: the moment's order (0 gives ``size``).

        Returns:
            The estimate.
        """
        return float(self.size * np.mean(np.sum(self.weights * self.nodes**power, axis=1)))

    def smooth(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """The density convolved with a Gaussian, for plotting.

        Args:
            grid: ``(g,)`` points at which to evaluate it.
            sigma: the Gaussian's width.

        Returns:
            ``(g,)`` density values (integrating to about 1 over a grid that covers the spectrum).
        """
        diff = grid[None, None, :] - self.nodes[:, :, None]
        g = np.exp(-0.5 * (diff / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        return np.mean(np.sum(self.weights[:, :, None] * g, axis=1), axis=0)


def slq_density(
    op: LinearOperator, *, n_probes: int = 4, steps: int = 40, seed: int | torch.Generator | None = 0
) -> SpectralDensity:
    """Stochastic Lanczos quadrature (Ubaru, Chen, Saad 2017): per Rademacher probe, ``steps`` Lanczos steps
    give nodes (Ritz values) and weights (squared first components of the Ritz vectors).

    Args:
        op: a symmetric operator (:class:`~icml17.core.curvature.base.LinearOperator`).
        n_probes: how many probes (independent quadratures averaged).
        steps: Lanczos steps per probe (capped at ``op.size``).
        seed: the probes' seed, or a generator made for ``op.device``.

    Returns:
        A :class:`SpectralDensity`.
    """
    draws = _Draws(seed, op)
    steps = min(steps, op.size)
    nodes = np.zeros((n_probes, steps))
    weights = np.zeros((n_probes, steps))
    n_hvp = 0
    for i in range(n_probes):
        v = draws.rademacher(op.size, 1)[:, 0]
        alpha, beta, _ = _lanczos_basis(op, v, steps)
        theta, s = _ritz(alpha, beta)
        nodes[i, : len(theta)] = theta
        weights[i, : len(theta)] = s[0] ** 2
        n_hvp += len(alpha)
    return SpectralDensity(nodes, weights, op.size, n_hvp)
