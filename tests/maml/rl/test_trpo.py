"""TRPO's curvature products and step against definitions: the dense Hessian of the mean KL, the constraint."""

import math

import torch
from torch.func import grad

from icml17.core.functional import flatten, unflatten
from icml17.maml.rl.trpo import (
    MetaObjective,
    conjugate_gradient,
    kl_fisher_product,
    kl_hvp,
    trpo_step,
)


def test_kl_hessian_vector_product_equals_the_dense_hessian(tiny):
    policy, theta, inner, outer = tiny
    objective = MetaObjective(policy, theta, [inner], outer, lr=0.5, steps=1)
    flat = flatten(theta)
    dense = torch.autograd.functional.hessian(lambda x: objective.kl(unflatten(x, theta)), flat)
    hvp = kl_hvp(objective, theta)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        v = torch.randn(flat.shape, generator=g, dtype=torch.float64)
        assert torch.allclose(flatten(hvp(unflatten(v, theta))), dense @ v, rtol=1e-8, atol=1e-10)
    assert torch.linalg.eigvalsh(dense).min() > -1e-8  # the KL's Hessian at its minimum is PSD


def test_conjugate_gradient_solves_a_spd_system():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = m @ m.T + 6 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    assert torch.allclose(conjugate_gradient(lambda v: a @ v, b, iters=10), torch.linalg.solve(a, b), atol=1e-8)


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


def test_gauss_newton_form_equals_the_dense_hessian_at_the_current_parameters(tiny):
    policy, theta, inner, outer = tiny
    objective = MetaObjective(policy, theta, [inner], outer, lr=0.5, steps=1)
    flat = flatten(theta)
    dense = torch.autograd.functional.hessian(lambda x: objective.kl(unflatten(x, theta)), flat)
    product = kl_fisher_product(objective, theta)
    v = torch.randn(flat.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert torch.allclose(flatten(product(unflatten(v, theta))), dense @ v, rtol=1e-8, atol=1e-10)


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
    for a, b in zip(clean.surrogate_and_kl(probe), dirty.surrogate_and_kl(probe)):
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
    monkeypatch.setattr(MetaObjective, "subset",
                        lambda self, tasks, total=0: picked.append((tasks.tolist(), total)) or real(self, tasks, total))
    policy, theta, inner, outer = make_tiny(tasks=4)
    trpo_step(MetaObjective(policy, theta, [inner], outer, lr=0.1, steps=1), theta, hvp_tasks=2, cg_iters=2)
    half = lambda d: {k: v[2:] for k, v in d.items()}  # rank 1 of 2: tasks 2 and 3
    rank1 = MetaObjective(policy, theta, [half(inner)], half(outer), lr=0.1, steps=1, total_tasks=4, first_task=2,
                          sharded=True)
    trpo_step(rank1, theta, hvp_tasks=2, cg_iters=2)
    assert picked == [([0, 2], 2), ([0], 2)]
    _, result = trpo_step(rank1, theta, hvp_tasks=1, cg_iters=2)  # task 0 only: none here
    assert picked[2:] == [] and math.isfinite(result.loss_before)
