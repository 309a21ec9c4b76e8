"""The inner loop of MAML for RL (Finn et al. 2017, Algorithm 3, lines 5-7): vanilla policy gradient.

For task i with rollouts D_i sampled by the current policy, the inner loss is the REINFORCE surrogate with the
baseline's advantages A (eq. 4 of the paper with a baseline),

    L_i(theta) = - sum_{valid (r, t)} log pi_theta(a_rt | s_rt) A_rt / #valid,

and one step is theta'_i = theta - alpha grad L_i(theta). :func:`adapt` is one pure function of a parameter
dict and the rollouts, batched over tasks with ``torch.func.vmap`` and differentiable through the step
(second order by default; ``first_order=True`` treats the inner gradient as a constant, as first-order MAML),
used alike by meta-training, evaluation and plots. Several steps take one batch of rollouts each (the reference
samples fresh rollouts with the adapted policy before every further step); a single batch is reused otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import grad, vmap

from icml17.maml.rl.baseline import advantages
from icml17.maml.rl.policy import Params, log_prob
from icml17.maml.rl.sampler import Rollouts

PGData = dict[str, torch.Tensor]  # obs (K,R,T,d), actions (K,R,T,A), adv (K,R,T), mask (K,R,T)


def pg_data(rollouts: Rollouts, gamma: float = 0.99, gae_lambda: float = 1.0, normalize: bool = True) -> PGData:
    """What the policy-gradient losses need from rollouts: observations, actions, advantages, mask."""
    return {
        "obs": rollouts.obs,
        "actions": rollouts.actions,
        "mask": rollouts.mask,
        "adv": advantages(rollouts, gamma, gae_lambda, normalize),
    }


def pg_loss(policy: nn.Module, params: Params, data: PGData) -> torch.Tensor:
    """One task's REINFORCE surrogate (data without the task axis): a scalar."""
    logp = log_prob(policy, params, data["obs"], data["actions"])  # (R, T)
    return -(logp * data["adv"] * data["mask"]).sum() / data["mask"].sum().clamp_min(1)


def step_sizes(lr: float | Sequence[float], steps: int) -> list[float]:
    """One step size per step: ``lr`` repeated, or the first ``steps`` of a sequence."""
    lrs = [float(lr)] * steps if isinstance(lr, (int, float)) else [float(x) for x in lr][:steps]
    if len(lrs) < steps:
        raise ValueError(f"{steps} steps need {steps} step sizes, got {len(lrs)}")
    return lrs


def adapt_task(
    policy: nn.Module, params: Params, batches: Sequence[PGData], lr: float | Sequence[float], first_order: bool = False
) -> Params:
    """One task: a policy-gradient step on each batch in turn (``lr``: one size, or one per step)."""
    for data, size in zip(batches, step_sizes(lr, len(batches))):
        g = grad(lambda p, data=data: pg_loss(policy, p, data))(params)
        if first_order:
            g = {k: v.detach() for k, v in g.items()}
        params = {k: params[k] - size * g[k] for k in params}
    return params


def adapt(
    policy: nn.Module,
    params: Params,
    rollouts: PGData | Sequence[PGData],
    lr: float | Sequence[float],
    steps: int = 1,
    first_order: bool = False,
) -> Params:
    """Adapted parameters for each of the K tasks of ``rollouts``: every tensor gets a leading K axis.

    ``rollouts``: one PGData batch (reused for each of ``steps`` steps) or a sequence of ``steps`` batches.
    ``steps=0`` returns ``params`` expanded over the tasks."""
    batches = [rollouts] * steps if isinstance(rollouts, dict) else list(rollouts)[:steps]
    if len(batches) < steps:
        raise ValueError(f"adapt: {steps} steps need {steps} batches of rollouts, got {len(batches)}")
    if steps == 0:
        k = (rollouts if isinstance(rollouts, dict) else rollouts[0])["obs"].shape[0]
        return {n: p.expand(k, *p.shape) for n, p in params.items()}
    return vmap(lambda b: adapt_task(policy, params, b, lr, first_order))(batches)
