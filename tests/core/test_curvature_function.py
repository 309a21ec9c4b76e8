"""Curvature of a function of parameters, and conjugate gradient, against definitions (float64): the dense Hessian
from ``torch.func.hessian``, central differences of the gradient, J^T M J from an explicit Jacobian, and
``torch.linalg.solve``."""

from __future__ import annotations

import pytest
import torch
from torch.func import hessian, jacrev

from icml17.core.curvature import FunctionHessian, GaussNewton, ParamsOperator, conjugate_gradient, lanczos
from icml17.core.devicecheck import STAND_IN, stand_in_device, values
from icml17.core.functional import flatten, unflatten

F64 = torch.float64


def _point(dtype: torch.dtype = F64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"w": torch.randn(3, 2, generator=g, dtype=dtype), "b": torch.randn(3, generator=g, dtype=dtype)}


X = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=F64)


def _fn(p: dict[str, torch.Tensor]) -> torch.Tensor:
    """A smooth, non-quadratic scalar of two tensors: every block of its Hessian is non-zero."""
    h = torch.tanh(X.to(p["w"].device, p["w"].dtype) @ p["w"].T + p["b"])  # (5, 3)
    return (h**2).sum() / 5 + (p["b"] * p["w"][:, 0]).exp().sum()


def _dense_hessian(fn, point) -> torch.Tensor:
    return hessian(lambda v: fn(unflatten(v, point)))(flatten(point))


@pytest.mark.parametrize("product", ["forward-over-reverse", "reverse-over-reverse"])
def test_function_hessian_is_the_dense_hessian_plus_damping(product):
    point = _point()
    dense = _dense_hessian(_fn, point)
    op = FunctionHessian(_fn, point, product=product)
    assert op.method == product and op.size == 9
    assert torch.allclose(op.dense(), dense, rtol=1e-12, atol=1e-12)
    damped = FunctionHessian(_fn, point, damping=0.3, product=product)
    assert torch.allclose(damped.dense(), dense + 0.3 * torch.eye(9, dtype=F64), rtol=1e-12, atol=1e-12)
    assert damped.n_hvp == 9  # one product per column


def test_function_hessian_product_equals_central_differences_of_the_gradient():
    point = _point()
    flat = flatten(point)
    v = torch.randn(9, generator=torch.Generator().manual_seed(2), dtype=F64)

    def gradient(x: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_(True)
        return torch.autograd.grad(_fn(unflatten(x, point)), x)[0]

    eps = 1e-5  # error O(eps^2) from the third derivative, O(1e-16 / eps) from rounding
    fd = (gradient(flat + eps * v) - gradient(flat - eps * v)) / (2 * eps)
    assert torch.allclose(FunctionHessian(_fn, point).matvec(v), fd, rtol=1e-7, atol=1e-8)


def test_the_reduce_hook_sees_every_product_before_the_damping():
    """With ``reduce`` the sum over ranks, two ranks holding equal shares give 2 H; a rank that holds nothing
    (product None) still joins every reduction, contributing zeros."""
    point = _point()
    dense = _dense_hessian(_fn, point)
    seen = []

    def twice(t: torch.Tensor) -> torch.Tensor:  # stands for an all-reduce over two equal shares
        seen.append(t.clone())
        return 2 * t

    op = FunctionHessian(_fn, point, damping=0.5, reduce=twice)
    v = torch.randn(9, generator=torch.Generator().manual_seed(3), dtype=F64)
    assert torch.allclose(op.matvec(v), 2 * dense @ v + 0.5 * v, rtol=1e-12, atol=1e-12)
    assert len(seen) == 1 and torch.allclose(seen[0], dense @ v, rtol=1e-12, atol=1e-12)  # undamped
    empty = ParamsOperator(None, point, damping=0.5, reduce=twice)
    assert torch.equal(empty.matvec(v), 0.5 * v) and torch.equal(seen[-1], torch.zeros(9, dtype=F64))


def test_gauss_newton_is_jt_m_j_and_the_hessian_of_a_divergence_at_its_minimum():
    point = _point()
    m = torch.randn(5, 5, generator=torch.Generator().manual_seed(4), dtype=F64)
    metric_matrix = m @ m.T  # symmetric PSD, mixing the 5 rows of the (5, 3) output in each column

    def outputs(p):
        return torch.tanh(X @ p["w"].T + p["b"]), p["b"].exp()  # (5, 3), (3,)

    def metric(at, tangents):
        (_, scale), (dh, ds) = at, tangents
        return metric_matrix @ dh, scale * ds  # M = blockdiag(metric_matrix per column, diag(exp b))

    at = outputs(point)
    op = GaussNewton(outputs, point, metric)
    jac = jacrev(lambda v: torch.cat([t.reshape(-1) for t in outputs(unflatten(v, point))]))(flatten(point))
    big = torch.kron(metric_matrix, torch.eye(3, dtype=F64))  # row-major (5, 3): rows of h mix through M
    full = torch.block_diag(big, torch.diag(at[1]))
    assert torch.allclose(op.dense(), jac.T @ full @ jac, rtol=1e-12, atol=1e-12)

    def divergence(p):  # zero with zero gradient at the point, Hessian M in the outputs there
        (h0, s0), (h, s) = at, outputs(p)
        dh, ds = h - h0, s - s0
        return 0.5 * (dh * (metric_matrix @ dh)).sum() + 0.5 * (s0 * ds**2).sum()

    assert torch.allclose(op.dense(), _dense_hessian(divergence, point), rtol=1e-10, atol=1e-12)


def test_estimators_run_on_a_function_hessian():
    point = _point()
    op = FunctionHessian(_fn, point)
    top = lanczos(op, 2, tol=1e-10, max_iter=9, seed=0)
    assert top.eigenvalues == pytest.approx(
        torch.linalg.eigvalsh(_dense_hessian(_fn, point)).flip(0)[:2].tolist(), rel=1e-8
    )


def test_products_keep_the_point_dtype():
    op = FunctionHessian(_fn, _point(torch.float32), damping=1e-3)
    out = op.matvec(torch.ones(9, dtype=F64))  # a float64 vector is cast to the operator's dtype
    assert op.dtype == torch.float32 and out.dtype == torch.float32
    assert torch.allclose(
        out.double(),
        FunctionHessian(_fn, _point(), damping=1e-3).matvec(torch.ones(9, dtype=F64)),
        rtol=1e-4,
        atol=1e-4,
    )


def test_bad_inputs_raise_value_errors():
    point = _point()
    with pytest.raises(ValueError, match="product must be one of"):
        FunctionHessian(_fn, point, product="layerwise")
    with pytest.raises(ValueError, match="damping must be"):
        FunctionHessian(_fn, point, damping=-1.0)
    with pytest.raises(ValueError, match="point has no parameters"):
        ParamsOperator(None, {})
    with pytest.raises(ValueError, match="entries"):
        FunctionHessian(_fn, point).matvec(torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match="entries"):
        ParamsOperator(None, point).matvec(torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match=r"\(9, k\)"):
        FunctionHessian(_fn, point).matmat(torch.ones(9, dtype=F64))
    with pytest.raises(ValueError, match="1-D"):
        conjugate_gradient(lambda v: v, torch.ones(3, 1))
    with pytest.raises(ValueError, match="iters"):
        conjugate_gradient(lambda v: v, torch.ones(3), iters=-1)


# -------------------------------------------------------------------------------------------- conjugate gradient
def _spd(n: int, seed: int, shift: float = 1.0) -> torch.Tensor:
    m = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return m @ m.T + shift * torch.eye(n, dtype=F64)


def test_conjugate_gradient_solves_a_spd_system_in_n_steps():
    a = _spd(6, 0, shift=6.0)
    b = torch.randn(6, generator=torch.Generator().manual_seed(1), dtype=F64)
    assert torch.allclose(
        conjugate_gradient(lambda v: a @ v, b, iters=6, tol=0.0), torch.linalg.solve(a, b), rtol=1e-9, atol=1e-10
    )
    assert torch.equal(conjugate_gradient(lambda v: a @ v, b, iters=0), torch.zeros(6, dtype=F64))


def test_conjugate_gradient_stops_once_the_residual_is_below_tol():
    calls = []
    b = torch.arange(1.0, 5.0, dtype=F64)
    x = conjugate_gradient(lambda v: calls.append(1) or 2 * v, b, iters=10)  # A = 2 I: one step solves it
    assert len(calls) == 1 and torch.equal(x, b / 2)


def test_truncated_conjugate_gradient_minimises_the_quadratic_over_the_krylov_space():
    """k steps give argmin of x^T A x / 2 - b^T x over span(b, A b, ..., A^(k-1) b) (its definition)."""
    a, b = _spd(8, 2), torch.randn(8, generator=torch.Generator().manual_seed(3), dtype=F64)
    k = 3
    krylov = torch.stack([torch.linalg.matrix_power(a, i) @ b for i in range(k)], dim=1)  # (8, 3)
    coef = torch.linalg.solve(krylov.T @ a @ krylov, krylov.T @ b)
    assert torch.allclose(
        conjugate_gradient(lambda v: a @ v, b, iters=k, tol=0.0), krylov @ coef, rtol=1e-8, atol=1e-10
    )


def test_function_hessian_and_conjugate_gradient_on_a_device_equal_the_cpu():
    """On the stand-in device: the same numbers as on the CPU, and no copy to the host inside the solve."""
    point = _point()
    b = torch.randn(9, generator=torch.Generator().manual_seed(5), dtype=F64)
    op = FunctionHessian(_fn, point, damping=1e-2)
    cpu = [op.matvec(b), conjugate_gradient(op.matvec, b, iters=5)]
    with stand_in_device() as mode:
        dev_op = FunctionHessian(_fn, {k: t.to(STAND_IN) for k, t in point.items()}, damping=1e-2)
        dev_b = b.to(STAND_IN)
        before = mode.transfers_to_cpu
        dev = [dev_op.matvec(dev_b), conjugate_gradient(dev_op.matvec, dev_b, iters=5)]
        assert mode.transfers_to_cpu == before and all(t.device == STAND_IN for t in dev)
    for got, ref in zip(dev, cpu, strict=True):
        assert torch.allclose(values(got), ref, rtol=1e-12, atol=1e-13)
