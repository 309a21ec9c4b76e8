"""TRPO's curvature products and step against definitions: the dense Hessian of the mean KL, central differences
of its gradient, a dense solve, the textbook step on the explicit matrix, the constraint."""

import math

import pytest
import torch
from torch.func import grad

from icml17.core.curvature import conjugate_gradient
from icml17.core.functional import flatten, unflatten
from icml17.maml.rl.trpo import (
    CURVATURES,
    MetaObjective,
    kl_curvature,
    kl_fisher_product,
    kl_hvp,
    trpo_step,
)


def _dense_kl_hessian(objective: MetaObjective, theta) -> torch.Tensor:
    return torch.autograd.functional.hessian(lambda x: objective.kl(unflatten(x, theta)), flatten(theta))


@pytest.mark.parametrize("form", [kl_hvp, kl_fisher_product], ids=["hessian-vector", "gauss-newton"])
def test_kl_curvature_product_equals_the_dense_hessian_at_the_current_parameters(tiny, form):
    """The exact Hessian-vector product, and the Gauss-Newton form (equal to it where the KL is at its minimum, at
    the current parameters), against the dense Hessian of the mean KL."""
    policy, theta, inner, outer = tiny
    objective = MetaObjective(policy, theta, [inner], outer, lr=0.5, steps=1)
    dense = _dense_kl_hessian(objective, theta)
    product = form(objective, theta)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        v = torch.randn(dense.shape[0], generator=g, dtype=torch.float64)
        assert torch.allclose(flatten(product(unflatten(v, theta))), dense @ v, rtol=1e-8, atol=1e-10)
    assert torch.linalg.eigvalsh(dense).min() > -1e-8  # the KL's Hessian at its minimum is PSD


def test_kl_hessian_product_equals_central_differences_of_the_kl_gradient(tiny):
    policy, theta, inner, outer = tiny
    objective = MetaObjective(policy, theta, [inner], outer, lr=0.5, steps=1)
    flat = flatten(theta)
    v = torch.randn(flat.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def kl_gradient(x: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_(True)
        return torch.autograd.grad(objective.kl(unflatten(x, theta)), x)[0]

    eps = 1e-5
    fd = (kl_gradient(flat + eps * v) - kl_gradient(flat - eps * v)) / (2 * eps)
    for curvature in CURVATURES:  # both forms are the Hessian at the current parameters
        hv = kl_curvature(objective, theta, curvature).matvec(v)
        assert torch.allclose(hv, fd, rtol=1e-6, atol=1e-9), curvature


def test_conjugate_gradient_on_the_damped_kl_hessian_equals_a_dense_solve(tiny):
    policy, theta, inner, outer = tiny
    objective = MetaObjective(policy, theta, [inner], outer, lr=0.5, steps=1)
    damping = 1e-2  # conditioned well enough that CG converges in floating point within a few times n steps
    a = _dense_kl_hessian(objective, theta) + damping * torch.eye(flatten(theta).numel(), dtype=torch.float64)
    b = -flatten(grad(objective.loss)(theta))
    for curvature in CURVATURES:
        op = kl_curvature(objective, theta, curvature, damping=damping)
        x = conjugate_gradient(op.matvec, b, iters=4 * op.size, tol=1e-28)
        assert torch.allclose(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-10), curvature


def _textbook_step(
    objective: MetaObjective, theta, matrix: torch.Tensor, *, max_kl: float, damping: float, cg_iters: int
) -> tuple[torch.Tensor, int]:
    """TRPO's update written out from its definition on an explicit matrix H: conjugate gradient from zero on
    (H + damping I) s = -grad L (stopping once the squared residual is below 1e-10), s scaled so that
    s^T (H + damping I) s / 2 = max_kl, then shortened by 0.8 until the KL is within max_kl and the surrogate
    improves (at most 15 tries). Returns the new flat parameters and the number of shortenings."""
    a = matrix + damping * torch.eye(matrix.shape[0], dtype=matrix.dtype)
    g = flatten(grad(objective.loss)(theta))
    x, r = torch.zeros_like(g), -g
    p, rr = r.clone(), r @ r
    for _ in range(cg_iters):
        ap = a @ p
        alpha = rr / (p @ ap)
        x, r = x + alpha * p, r - alpha * ap
        if r @ r < 1e-10:
            break
        p, rr = r + (r @ r) / rr * p, r @ r
    step = (2 * max_kl / (x @ a @ x)).sqrt() * x
    loss_before = objective.loss(theta).item()
    for k in range(15):
        candidate = flatten(theta) + 0.8**k * step
        loss, kl = (t.item() for t in objective.surrogate_and_kl(unflatten(candidate, theta)))
        if kl <= max_kl and loss < loss_before:
            return candidate, k
    raise AssertionError("the reference step was rejected: choose another problem")


@pytest.mark.parametrize("curvature,hvp_tasks", [("hessian", 0), ("fisher", 0), ("hessian", 2), ("fisher", 2)])
def test_trpo_step_equals_the_textbook_step_on_the_dense_kl_hessian(curvature, hvp_tasks, make_tiny):
    """The whole update against its definition: the curvature engine's operator and solver in ``trpo_step`` give
    the step of the textbook algorithm on the explicit KL Hessian (of the picked tasks ``floor(j K / hvp_tasks)``,
    here 0 and 2 of 4, when the products use fewer tasks), to float64 rounding."""
    policy, theta, inner, outer = make_tiny(tasks=4)
    objective = MetaObjective(policy, theta, [inner], outer, lr=0.5, steps=1)
    picked = objective
    if hvp_tasks:
        inner_02, outer_02 = ({k: v[[0, 2]] for k, v in d.items()} for d in (inner, outer))
        picked = MetaObjective(policy, theta, [inner_02], outer_02, lr=0.5, steps=1)
    for max_kl, cg_iters in ((1e-2, 10), (1e-3, 5)):
        expected, backtracks = _textbook_step(
            objective, theta, _dense_kl_hessian(picked, theta), max_kl=max_kl, damping=1e-5, cg_iters=cg_iters
        )
        new, result = trpo_step(
            objective, theta, max_kl=max_kl, cg_iters=cg_iters, curvature=curvature, hvp_tasks=hvp_tasks
        )
        assert result.accepted and result.backtracks == backtracks
        # the damped matrix's condition number is about 2.4e4: CG amplifies the products' last-bit differences
        # (dense matrix against jvp-of-grad) to about 4e-11 of the step after 10 iterations
        assert torch.allclose(flatten(new), expected, rtol=1e-8, atol=1e-10)


def test_sharded_curvature_products_sum_to_the_one_process_product(make_tiny):
    """Two ranks' operators (each on its half of the tasks, the mean over all four) sum to the whole batch's: what
    the all-reduce in ``reduce`` relies on. The damping is added once, after the sum."""
    policy, theta, inner, outer = make_tiny(tasks=4)
    whole = MetaObjective(policy, theta, [inner], outer, lr=0.5, steps=1)
    v = torch.randn(flatten(theta).shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for curvature in CURVATURES:
        parts = []
        for half in (slice(0, 2), slice(2, 4)):
            inner_h, outer_h = ({k: t[half] for k, t in d.items()} for d in (inner, outer))
            rank = MetaObjective(
                policy, theta, [inner_h], outer_h, lr=0.5, steps=1, total_tasks=4, first_task=half.start, sharded=True
            )
            parts.append(kl_curvature(rank, theta, curvature).matvec(v))
        expected = kl_curvature(whole, theta, curvature, damping=0.1).matvec(v)
        assert torch.allclose(parts[0] + parts[1] + 0.1 * v, expected, rtol=1e-12, atol=1e-14), curvature


def test_trpo_step_meets_the_kl_constraint_and_improves_the_surrogate(tiny):
    policy, theta, inner, outer = tiny
    for max_kl in (1e-2, 1e-4):
        objective = MetaObjective(policy, theta, [inner], outer, lr=0.5, steps=1)
        new, result = trpo_step(objective, theta, max_kl=max_kl)
        assert result.accepted
        loss, kl = objective.surrogate_and_kl(new)
        assert kl.item() <= max_kl and loss.item() < objective.loss(theta).item()
        assert kl.item() > 0.1 * max_kl  # the step uses the trust region, not a timid fraction of it


def test_a_step_the_line_search_cannot_accept_is_rejected_and_reported(tiny):
    policy, theta, inner, outer = tiny

    class NeverFits(MetaObjective):
        def surrogate_and_kl(self, params):
            loss, kl = super().surrogate_and_kl(params)
            return loss, kl + 1.0  # every candidate breaks the constraint

    objective = NeverFits(policy, theta, [inner], outer, lr=0.5, steps=1)
    new, result = trpo_step(objective, theta, max_kl=1e-2)
    assert not result.accepted and result.backtracks == 15
    assert all(torch.equal(new[k], theta[k]) for k in theta)
    # the record says why: the last candidate's KL (with the +1 that breaks it) is above the constraint
    assert result.kl > 1.0 and result.kl > 1e-2


def test_padded_steps_change_nothing_the_outer_step_uses(tiny):
    """Junk in the observations, actions and advantages of masked-out steps (inner and outer batches) leaves the
    surrogate, the KL, the meta-gradient and the curvature products exactly as they were."""
    policy, theta, inner, outer = tiny

    def junked(batch):
        out = {k: v.clone() for k, v in batch.items()}
        pad = out["mask"] == 0
        out["obs"][pad] = 50.0
        out["actions"][pad] = -40.0
        out["adv"][pad] = 99.0
        return out

    clean = MetaObjective(policy, theta, [inner], outer, lr=0.5, steps=1)
    dirty = MetaObjective(policy, theta, [junked(inner)], junked(outer), lr=0.5, steps=1)
    probe = {k: v + 0.05 for k, v in theta.items()}  # away from theta, where the KL is not trivially zero
    for a, b in zip(clean.surrogate_and_kl(probe), dirty.surrogate_and_kl(probe), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    g_clean, g_dirty = grad(clean.loss)(theta), grad(dirty.loss)(theta)
    assert all(torch.allclose(g_clean[k], g_dirty[k], rtol=0, atol=1e-12) for k in theta)
    v = {k: torch.ones_like(t) for k, t in theta.items()}
    for product in (kl_hvp, kl_fisher_product):
        hv_clean, hv_dirty = product(clean, theta)(v), product(dirty, theta)(v)
        assert all(torch.allclose(hv_clean[k], hv_dirty[k], rtol=0, atol=1e-10) for k in theta)


def test_curvature_tasks_are_evenly_spaced_and_a_rank_computes_those_it_holds(monkeypatch, make_tiny):
    """hvp_tasks of K tasks: tasks floor(j K / hvp_tasks), chosen alike on every rank; a rank's objective (a slice
    of the batch, ``first_task`` its first) computes the products of those it holds, possibly none (then its share
    of every product is zero). Sharded objectives are summed by all-reduces, the identity in one process."""
    picked = []
    real = MetaObjective.subset
    monkeypatch.setattr(
        MetaObjective,
        "subset",
        lambda self, tasks, total=0: picked.append((tasks.tolist(), total)) or real(self, tasks, total),
    )
    policy, theta, inner, outer = make_tiny(tasks=4)
    trpo_step(MetaObjective(policy, theta, [inner], outer, lr=0.1, steps=1), theta, hvp_tasks=2, cg_iters=2)
    inner_1, outer_1 = ({k: v[2:] for k, v in d.items()} for d in (inner, outer))  # rank 1 of 2: tasks 2 and 3
    rank1 = MetaObjective(policy, theta, [inner_1], outer_1, lr=0.1, steps=1, total_tasks=4, first_task=2, sharded=True)
    trpo_step(rank1, theta, hvp_tasks=2, cg_iters=2)
    assert picked == [([0, 2], 2), ([0], 2)]
    _, result = trpo_step(rank1, theta, hvp_tasks=1, cg_iters=2)  # task 0 only: none here
    assert picked[2:] == [] and math.isfinite(result.loss_before)
