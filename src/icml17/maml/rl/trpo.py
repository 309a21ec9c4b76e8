"""The outer loop of MAML for RL: TRPO on the post-update surrogate (Finn et al. 2017, section 5.3).

With theta'_i = adapt(theta, D_i) and post-update rollouts D'_i sampled by theta'_i (old parameters),

    L(theta)  = - mean_i mean_{(r,t) in D'_i} [pi_{theta'_i(theta)}(a|s) / pi_old(a|s)] A'_rt
    KL(theta) =   mean_i mean_{(r,t) in D'_i} KL(pi_old(.|s) || pi_{theta'_i(theta)}(.|s)).

The step is the natural-gradient direction s = (H + damping I)^-1 (-grad L), H the Hessian of the mean KL at
the current theta, found by conjugate gradient (10 iterations); it is scaled to KL = max_kl under the
quadratic model and shortened by backtracking (ratio 0.8, up to 15 tries) until the exact KL is <= max_kl and
the surrogate improves. A step that never qualifies is rejected (parameters unchanged) and reported.

The damped KL Hessian is an operator of the paper-agnostic curvature engine (:func:`kl_curvature`: a
:class:`~icml17.core.curvature.FunctionHessian` of the mean KL, or its :class:`~icml17.core.curvature.GaussNewton`
form) and the solve is the engine's :func:`~icml17.core.curvature.conjugate_gradient`: the products and the solver
that the sharpness tools' estimators also run on.

Under torchrun (:mod:`icml17.core.distributed`) each process holds a slice of the meta-batch's tasks
(``MetaObjective.sharded``): L and the KL are sums over its tasks divided by the whole batch's number of tasks,
and :func:`trpo_step` sums over the processes the surrogate and its gradient (one all-reduce), every curvature
product of the conjugate gradient (the operator's ``reduce`` hook), and each line-search candidate's surrogate and
KL. Every process then holds the same numbers, solves the same system, and takes the same step (or rejects it) as
one process with all the tasks.

Deviation from the reference: its Hessian-vector products were finite differences of gradients (to avoid
third derivatives through the inner step); ours are exact, forward-over-reverse (``torch.func.jvp`` of
``torch.func.grad``) through the adaptation. Also here: a first-order outer optimiser (Adam on L).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import grad_and_value, vmap

from icml17.core import distributed
from icml17.core.curvature import FunctionHessian, GaussNewton, ParamsOperator, conjugate_gradient
from icml17.core.functional import flatten, unflatten
from icml17.maml.rl.inner import PGData, adapt
from icml17.maml.rl.policy import Params, distribution, gaussian_kl, gaussian_log_prob


@dataclass
class MetaObjective:
    """The post-update surrogate and KL of one meta-batch, as pure functions of theta."""

    policy: nn.Module
    theta: Params  # the current parameters: the "old" policy of the surrogate and the KL
    inner: Sequence[PGData]  # one batch per inner step (pre-update rollouts, then each adapted policy's)
    outer: PGData  # post-update rollouts with their advantages
    lr: float
    steps: int
    first_order: bool = False
    # the mean is over the whole meta-batch's ``total_tasks`` tasks (0: these); with ``sharded`` the others are on
    # the other torchrun ranks, this one's first task being the batch's ``first_task``, and the steps sum over ranks
    total_tasks: int = 0
    first_task: int = 0
    sharded: bool = False

    def __post_init__(self) -> None:
        with torch.no_grad():
            mean, log_std = self._post_update_distribution(self._detached(self.theta))
        self.old_mean, self.old_log_std = mean.detach(), log_std.detach()
        self.old_log_prob = gaussian_log_prob(self.old_mean, self.old_log_std, self.outer["actions"])

    @staticmethod
    def _detached(params: Params) -> Params:
        return {k: v.detach() for k, v in params.items()}

    def _post_update_distribution(self, params: Params) -> tuple[torch.Tensor, torch.Tensor]:
        if self.steps == 0:  # pretrained / oracle training: one policy for every task, no adaptation
            return distribution(self.policy, params, self.outer["obs"])
        adapted = adapt(self.policy, params, self.inner, self.lr, self.steps, self.first_order)
        return vmap(lambda p, o: distribution(self.policy, p, o))(adapted, self.outer["obs"])

    @property
    def num_tasks(self) -> int:
        """The tasks held here."""
        return self.outer["obs"].shape[0]

    @property
    def tasks_in_mean(self) -> int:
        """The tasks the mean over tasks divides by: the whole meta-batch's."""
        return self.total_tasks or self.num_tasks

    def _mean_over_steps(self, x: torch.Tensor) -> torch.Tensor:
        """Per task, the mean over its valid steps; their sum over the tasks held here divided by
        :attr:`tasks_in_mean` (the mean over tasks itself once summed over ranks)."""
        mask = self.outer["mask"]
        return ((x * mask).sum((1, 2)) / mask.sum((1, 2)).clamp_min(1)).sum() / self.tasks_in_mean

    def surrogate_and_kl(self, params: Params) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self._post_update_distribution(params)
        ratio = torch.exp(gaussian_log_prob(mean, log_std, self.outer["actions"]) - self.old_log_prob)
        loss = -self._mean_over_steps(ratio * self.outer["adv"])
        kl = self._mean_over_steps(gaussian_kl(self.old_mean, self.old_log_std, mean, log_std))
        return loss, kl

    def subset(self, tasks: torch.Tensor, total: int = 0) -> MetaObjective:
        """The same objective on some of the tasks held here (for cheaper curvature products), its mean over
        ``total`` tasks (default: those picked; sharded, the picked tasks of every rank)."""
        pick = lambda d: {k: v[tasks] for k, v in d.items()}
        return MetaObjective(
            self.policy,
            self.theta,
            [pick(b) for b in self.inner],
            pick(self.outer),
            self.lr,
            self.steps,
            self.first_order,
            total_tasks=total,
            sharded=self.sharded,
        )

    def loss(self, params: Params) -> torch.Tensor:
        return self.surrogate_and_kl(params)[0]

    def kl(self, params: Params) -> torch.Tensor:
        return self.surrogate_and_kl(params)[1]


CURVATURES = ("hessian", "fisher")


def kl_curvature(
    objective: MetaObjective | None,
    params: Params,
    curvature: str = "hessian",
    *,
    damping: float = 0.0,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> ParamsOperator:
    """H + damping I, H the Hessian of the mean KL at ``params``, as an operator on flat parameter vectors.

    "hessian": the exact Hessian, forward-over-reverse (``jvp`` of ``grad``) through the adaptation, a third-order
    pass per product. "fisher": the same matrix in Gauss-Newton form J^T M J: at the current parameters (old = new
    policy) the KL's gradient with respect to the distribution's outputs is zero, so its Hessian is J^T M J
    exactly, J the Jacobian of the post-update means and log-stds through the adaptation and M the Gaussian's
    Fisher metric (1/sigma^2 for means, 2 for log-stds, each step weighted by its share of the mean KL): one
    forward-mode product through the adaptation (second order) and one pullback through a graph kept for all
    products, instead of third derivatives per product.

    Args:
        objective: the meta-batch's objective (this rank's tasks), or None where this rank holds none of the
            curvature tasks (its share of every product is zero; it still joins ``reduce``).
        params: where the Hessian is taken (the objective's old policy).
        curvature: "hessian" or "fisher".
        damping: added as ``damping * v`` after ``reduce``.
        reduce: applied to every product before the damping: the sum over torchrun ranks of a sharded objective.

    Returns:
        A :class:`~icml17.core.curvature.ParamsOperator` (``matvec`` on flat vectors, ``product`` on dicts).

    Raises:
        ValueError: an unknown ``curvature``.
    """
    if curvature not in CURVATURES:
        raise ValueError(f"curvature must be one of {CURVATURES}, got {curvature!r}")
    params = MetaObjective._detached(params)
    if objective is None:
        return ParamsOperator(None, params, damping=damping, reduce=reduce)
    if curvature == "hessian":
        return FunctionHessian(objective.kl, params, damping=damping, reduce=reduce)
    mask = objective.outer["mask"][..., None]
    weight = mask / mask.sum((1, 2), keepdim=True).clamp_min(1) / objective.tasks_in_mean  # mean over steps, tasks

    def fisher(
        outputs: tuple[torch.Tensor, torch.Tensor],
        tangents: tuple[torch.Tensor, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        (_, log_std), (d_mean, d_log_std) = outputs, tangents
        return weight * torch.exp(-2 * log_std) * d_mean, weight * 2 * d_log_std

    return GaussNewton(objective._post_update_distribution, params, fisher, damping=damping, reduce=reduce)


def kl_hvp(objective: MetaObjective, params: Params) -> Callable[[Params], Params]:
    """v -> H v on parameter dicts, H the Hessian of the mean KL at ``params`` (forward-over-reverse, exact)."""
    return kl_curvature(objective, params, "hessian").product


def kl_fisher_product(objective: MetaObjective, params: Params) -> Callable[[Params], Params]:
    """v -> J^T M J v on parameter dicts: the same Hessian in Gauss-Newton form (see :func:`kl_curvature`)."""
    return kl_curvature(objective, params, "fisher").product


@dataclass
class TRPOResult:
    """What the step did. For a rejected step, ``loss_after`` and ``kl`` are the last (shortest) candidate's,
    the numbers that show why the line search gave up; the parameters stay unchanged."""

    accepted: bool
    loss_before: float
    loss_after: float
    kl: float
    backtracks: int
    step_norm: float


def trpo_step(
    objective: MetaObjective,
    params: Params,
    *,
    max_kl: float = 0.01,
    damping: float = 1e-5,
    cg_iters: int = 10,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
    hvp_tasks: int = 0,
    curvature: str = "hessian",
) -> tuple[Params, TRPOResult]:
    """One TRPO update of ``params`` (returned new, or unchanged when the line search rejects the step).

    ``hvp_tasks > 0`` computes the curvature products on that many of the meta-batch's tasks, evenly spaced over
    the batch (tasks ``floor(j K / hvp_tasks)``): a cheaper, unbiased estimate of the mean KL's Hessian, the tasks
    being independent draws whose choice does not look at their rollouts; the gradient and the line search use all
    tasks. Evenly spaced, every rank of a sharded batch holds the same number of them, within one.
    ``curvature``: "hessian" (forward-over-reverse of the KL's gradient) or "fisher" (the same matrix in
    Gauss-Newton form, cheaper; see :func:`kl_curvature`).

    A ``sharded`` objective (this rank's tasks): the surrogate with its gradient, every curvature product and
    each candidate's surrogate and KL are summed over the ranks, so that all take the one-process step. The
    curvature tasks are chosen from the whole batch on every rank; each computes the products of those it holds
    (possibly none)."""
    if curvature not in CURVATURES:
        raise ValueError(f"curvature must be one of {CURVATURES}, got {curvature!r}")
    params = MetaObjective._detached(params)
    sharded = objective.sharded
    g, loss_before = grad_and_value(objective.loss)(params)
    g = flatten(g)
    if sharded:  # one all-reduce for the gradient and the surrogate
        both = distributed.all_reduce_sum(torch.cat([g, loss_before.detach().reshape(1)]))
        g, loss_before = both[:-1], both[-1]
    loss_before = loss_before.item()
    num_tasks = objective.tasks_in_mean
    curvature_objective: MetaObjective | None = objective
    if 0 < hvp_tasks < num_tasks:  # the same tasks on every device and every rank
        tasks = torch.arange(hvp_tasks) * num_tasks // hvp_tasks - objective.first_task
        mine = tasks[(tasks >= 0) & (tasks < objective.num_tasks)]
        curvature_objective = objective.subset(mine.to(g.device), total=hvp_tasks) if len(mine) else None
    fvp = kl_curvature(
        curvature_objective, params, curvature, damping=damping, reduce=distributed.all_reduce_sum if sharded else None
    )
    direction = conjugate_gradient(fvp.matvec, -g, cg_iters)
    quadratic = (direction @ fvp.matvec(direction)).item()  # s^T (H + damping I) s
    scale = math.sqrt(2 * max_kl / max(quadratic, 1e-12))
    full_step = scale * direction
    theta = flatten(params)
    loss = kl = math.nan
    for k in range(max_backtracks):
        candidate = unflatten(theta + backtrack_ratio**k * full_step, params)
        with torch.no_grad():
            both = torch.stack(objective.surrogate_and_kl(candidate))
            if sharded:
                distributed.all_reduce_sum(both)
            loss, kl = both.tolist()  # one copy back per try
        if math.isfinite(loss) and kl <= max_kl and loss < loss_before:
            return candidate, TRPOResult(True, loss_before, loss, kl, k, backtrack_ratio**k * full_step.norm().item())
    return params, TRPOResult(False, loss_before, loss, kl, max_backtracks, 0.0)


def adam_step(
    objective: MetaObjective, params: Params, optimizer: torch.optim.Optimizer, leaves: dict[str, torch.Tensor]
) -> float:
    """First-order outer option: one Adam step on L (``leaves`` are the policy's own parameters); returns L before
    the step. A ``sharded`` objective's gradient and L are summed over the ranks first."""
    grads, loss = grad_and_value(objective.loss)(MetaObjective._detached(params))
    if objective.sharded:
        flat = distributed.all_reduce_sum(torch.cat([flatten(grads), loss.detach().reshape(1)]))
        grads, loss = unflatten(flat[:-1], grads), flat[-1]
    optimizer.zero_grad(set_to_none=True)
    for name, p in leaves.items():
        p.grad = grads[name].detach().clone()
    optimizer.step()
    return loss.item()
