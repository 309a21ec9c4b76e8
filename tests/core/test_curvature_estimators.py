"""Estimator details checked against definitions: Rademacher probes, Hutchinson's mean and variance, Lanczos start
vectors and residuals, and block products equal to the explicit Hessian."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from icml17.core.curvature import DenseOperator, HessianOperator, ModelLoss, hutchinson, lanczos
from icml17.core.functional import flatten, unflatten

CE = nn.functional.cross_entropy


class _Recording(DenseOperator):
    """A dense operator that keeps the blocks it was applied to."""

    def __init__(self, matrix: torch.Tensor):
        super().__init__(matrix)
        self.seen: list[torch.Tensor] = []

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        self.seen.append(vectors.clone())
        return super().matmat(vectors)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_probes_are_the_seeded_integer_signs_in_the_operators_dtype(dtype):
    n, k, seed = 37, 5, 11
    op = _Recording(torch.eye(n, dtype=dtype))
    hutchinson(op, k, block=k, seed=seed)
    (probes,) = op.seen
    assert probes.dtype == dtype and probes.device == op.device and probes.shape == (n, k)
    # the documented draw: signs 2 b - 1 from integer bits b of a CPU generator seeded with `seed`
    bits = torch.randint(0, 2, (n, k), generator=torch.Generator().manual_seed(seed))
    assert torch.equal(probes, (2 * bits - 1).to(dtype))


def test_hutchinson_is_exact_on_a_diagonal_matrix():
    # v^T D v = sum_i d_i v_i^2 = tr(D) for every sign vector v: each probe gives the trace, so the standard
    # error is zero (any probe entry other than +-1 breaks this)
    d = torch.linspace(-3.0, 5.0, 50, dtype=torch.float64)
    r = hutchinson(DenseOperator(torch.diag(d)), 64, block=16, seed=4)
    assert math.isclose(r.estimate, float(d.sum()), rel_tol=1e-12, abs_tol=1e-12)
    assert r.stderr <= 1e-12 and r.n_hvp == 64


def test_hutchinson_is_unbiased_with_the_rademacher_variance():
    # off-diagonal A with tr(A) = 0: v^T A v = 2 sum_{i<j} a_ij v_i v_j has mean 0 and variance
    # 4 sum_{i<j} a_ij^2 = 2 sum_{i!=j} a_ij^2 for independent symmetric signs
    g = torch.Generator().manual_seed(0)
    b = torch.randn(12, 12, generator=g, dtype=torch.float64)
    a = b + b.T
    a.fill_diagonal_(0.0)
    probes = 20000
    r = hutchinson(DenseOperator(a), probes, block=1000, seed=2)
    var = 2 * float((a**2).sum())
    assert abs(r.estimate) <= 4 * math.sqrt(var / probes)
    sample_var = r.stderr**2 * probes
    assert abs(sample_var - var) / var < 0.05  # the variance's relative standard error here is about 1%


def test_lanczos_start_vector_finds_the_top_eigenvalue_of_a_known_spectrum():
    n = 30
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    spectrum = torch.cat([torch.tensor([9.0, 4.0], dtype=torch.float64), torch.linspace(1.0, 2.0, n - 2).double()])
    a = q @ torch.diag(spectrum) @ q.T
    start = torch.randn(n, generator=g, dtype=torch.float32)  # any dtype: cast to the operator's
    r = lanczos(DenseOperator(a), 2, tol=1e-10, max_iter=n, start=start)
    assert r.converged and r.eigenvalues == pytest.approx([9.0, 4.0], rel=1e-9)
    # the start is really used: without a component along the top eigenvector its eigenvalue is never seen
    top = q[:, 0]
    deficient = start.double() - (start.double() @ top) * top
    r = lanczos(DenseOperator(a), 1, tol=1e-10, max_iter=n - 5, start=deficient)
    assert r.eigenvalues[0] == pytest.approx(4.0, rel=1e-6)


def test_lanczos_start_must_be_a_nonzero_vector_of_the_operators_size():
    op = DenseOperator(torch.eye(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="start must be a vector of 4 entries"):
        lanczos(op, start=torch.ones(3))
    with pytest.raises(ValueError, match="start must be a nonzero"):
        lanczos(op, start=torch.zeros(4))


def test_lanczos_with_tol_zero_runs_every_step_and_reports_true_residuals():
    n = 40
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    a = q @ torch.diag(torch.logspace(1, -1, n, dtype=torch.float64)) @ q.T
    op = DenseOperator(a)
    r = lanczos(op, 3, tol=0.0, max_iter=12, seed=5)
    assert r.iterations == 12 and op.n_hvp == 12 and len(r.residuals) == 3
    # |beta_m s_mi| is the residual norm |A y - theta y| of the Ritz pair (exact with a reorthogonalised basis)
    y = r.eigenvectors
    direct = (a @ y - y * torch.tensor(r.eigenvalues, dtype=torch.float64)).norm(dim=0)
    assert torch.allclose(torch.tensor(r.residuals, dtype=torch.float64), direct, rtol=1e-6, atol=1e-12)


def test_block_products_and_quadratic_forms_equal_the_explicit_hessian():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x, y = torch.randn(10, 6, dtype=torch.float64), torch.randint(0, 3, (10,))
    point = {n: p.detach() for n, p in model.named_parameters()}
    h = hessian(lambda f: CE(functional_call(model, unflatten(f, point), (x,)), y))(flatten(point))
    op = HessianOperator(model, CE, (x, y), max_block=3)  # 7 columns: blocks of 3, 3 and 1
    v = torch.randn(7, op.size, dtype=torch.float64).T  # a non-contiguous (n, k) block
    assert torch.allclose(op.matmat(v), h @ v, rtol=1e-10, atol=1e-12)
    assert torch.allclose(op.quadform(v), ((h @ v) * v).sum(0), rtol=1e-10, atol=1e-12)
    assert op.n_hvp == 14


def test_lanczos_long_runs_keep_an_orthogonal_basis_without_ghost_eigenvalues():
    # a dominant eigenvalue converges in a few steps; without reorthogonalisation, later steps would bring its copies
    # back as spurious Ritz values ("ghosts") and the Ritz vectors would lose orthogonality
    n = 300
    g = torch.Generator().manual_seed(7)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    spectrum = torch.cat([torch.tensor([100.0, 50.0, 30.0], dtype=torch.float64), torch.rand(n - 3, generator=g)])
    a = q @ torch.diag(spectrum.double()) @ q.T
    r = lanczos(DenseOperator(a), 4, tol=0.0, max_iter=120, seed=1)
    assert r.eigenvalues == pytest.approx(sorted(spectrum.tolist(), reverse=True)[:4], rel=1e-8)
    v = r.eigenvectors
    assert torch.allclose(v.T @ v, torch.eye(4, dtype=torch.float64), atol=1e-10)


def test_hessian_operator_forwards_every_model_loss_option_with_the_same_default():
    # HessianOperator repeats ModelLoss's keyword options in its signature (explicit, for help() and the docs):
    # they must not drift apart
    inner = inspect.signature(ModelLoss.__init__).parameters
    outer = inspect.signature(HessianOperator.__init__).parameters
    for name, p in inner.items():
        assert name in outer, f"HessianOperator lacks ModelLoss's {name!r}"
        assert outer[name].default == p.default and outer[name].kind == p.kind, name
