"""Batched rollouts: many tasks x many rollouts stepped together, one policy call per time step.

All ``tasks * rollouts`` environment copies live in one batched environment (:mod:`icml17.maml.rl.envs`); at
each time step the policy is evaluated once on the stacked observations (per-task parameters are applied with
``vmap`` over the task axis), Gaussian noise comes from one explicit ``torch.Generator``, and the environment
steps every copy that has not finished. Results are padded tensors with a validity mask, so that everything
downstream (baseline, inner step, TRPO) is one batched program over tasks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from icml17.core.errors import UserError
from icml17.maml.rl.envs import EnvSpec, env_spec, make_env
from icml17.maml.rl.policy import Params


class NonFiniteRolloutError(UserError, FloatingPointError):
    """The environment produced a NaN or infinite reward or observation."""


@dataclass
class Rollouts:
    """Padded rollouts of K tasks x R rollouts x T steps; ``mask`` is 1 on steps that happened."""

    obs: torch.Tensor      # (K, R, T, obs_dim)
    actions: torch.Tensor  # (K, R, T, act_dim)
    rewards: torch.Tensor  # (K, R, T)
    mask: torch.Tensor     # (K, R, T)

    @property
    def num_tasks(self) -> int:
        return self.obs.shape[0]

    def returns(self) -> torch.Tensor:
        """Undiscounted return of each rollout: (K, R)."""
        return (self.rewards * self.mask).sum(-1)

    def steps(self) -> int:
        return int(self.mask.sum().item())

    def to(self, dtype: torch.dtype) -> Rollouts:
        return Rollouts(self.obs.to(dtype), self.actions.to(dtype), self.rewards.to(dtype), self.mask.to(dtype))

    def __getitem__(self, index) -> Rollouts:
        return Rollouts(self.obs[index], self.actions[index], self.rewards[index], self.mask[index])


def _policy_means(policy: nn.Module, params: Params, obs: torch.Tensor, per_task: bool):
    """obs (K, R, d) -> mean (K, R, A), log_std (K, 1, A) or (1, 1, A)."""
    if per_task:
        mean, log_std = vmap(lambda p, o: functional_call(policy, p, (o,)))(params, obs)
        return mean, log_std[:, None, :]
    mean, log_std = functional_call(policy, params, (obs,))
    return mean, log_std[None, None, :]


class Sampler:
    """Samples rollouts of environment ``env`` for given tasks; keeps MuJoCo environments between calls.

    ``steps_per_s`` is the throughput of the last call (environment steps, policy included)."""

    def __init__(self, env: str, oracle: bool = False, horizon: int | None = None):
        self.env_name = env
        self.oracle = oracle
        self.spec: EnvSpec = env_spec(env, oracle)
        self.horizon = horizon or self.spec.horizon
        self._pool: list | None = None  # MuJoCo cores, created once
        self.steps_per_s = 0.0
        self.total_steps = 0

    def _env(self, tasks: np.ndarray):
        n = len(tasks)
        if self.env_name == "point-nav":
            return make_env(self.env_name, tasks, self.oracle)
        if self._pool is None or len(self._pool) < n:
            env = make_env(self.env_name, tasks, self.oracle)  # a larger batch than before: a new pool
            self._pool = env.envs
            return env
        return make_env(self.env_name, tasks, self.oracle, pool=self._pool)

    @torch.no_grad()
    def sample(self, policy: nn.Module, params: Params, tasks: np.ndarray, rollouts: int,
               generator: torch.Generator, env_seeds: np.random.Generator, per_task: bool = False) -> Rollouts:
        """``rollouts`` rollouts for each of the K ``tasks`` (K, task_dim); ``params`` shared, or per task with a
        leading K axis (``per_task``). Actions are the policy's Gaussian samples (unclipped; the environment
        clips them)."""
        t0 = time.perf_counter()
        k, r, horizon = len(tasks), rollouts, self.horizon
        flat_tasks = np.repeat(np.asarray(tasks), r, axis=0)  # copy i is task i // r
        env = self._env(flat_tasks)
        obs = env.reset(env_seeds.integers(0, 2 ** 31 - 1, size=k * r))
        d, a = self.spec.obs_dim, self.spec.act_dim
        params = {n: p.detach() for n, p in params.items()}
        dtype = next(iter(params.values())).dtype
        obs_buf = torch.zeros(k, r, horizon, d, dtype=dtype)
        act_buf = torch.zeros(k, r, horizon, a, dtype=dtype)
        rew_buf = torch.zeros(k, r, horizon, dtype=dtype)
        mask = torch.zeros(k, r, horizon, dtype=dtype)
        active = np.ones(k * r, bool)
        for t in range(horizon):
            o = torch.as_tensor(obs, dtype=dtype).view(k, r, d)
            mean, log_std = _policy_means(policy, params, o, per_task)
            noise = torch.randn(k, r, a, generator=generator, dtype=dtype)
            action = mean + log_std.exp() * noise
            alive = torch.as_tensor(active).view(k, r)
            obs_buf[:, :, t] = o
            act_buf[:, :, t] = action
            mask[:, :, t] = alive.to(dtype)
            obs, reward, done = env.step(action.reshape(k * r, a).numpy().astype(np.float64), active)
            # finished copies may hold anything: zero them so that no masked-out NaN reaches a later product
            obs = np.where(active[:, None], obs, 0.0)
            if not (np.isfinite(reward[active]).all() and np.isfinite(obs[active]).all()):
                raise NonFiniteRolloutError(
                    f"{self.env_name} returned a non-finite reward or observation at time step {t} of a rollout "
                    f"(lower the step sizes, then resume)")
            rew_buf[:, :, t] = torch.as_tensor(np.where(active, reward, 0.0), dtype=dtype).view(k, r)
            active = active & ~done
            if not active.any():
                break
        steps = int(mask.sum().item())
        self.total_steps += steps
        self.steps_per_s = steps / max(time.perf_counter() - t0, 1e-9)
        return Rollouts(obs_buf, act_buf, rew_buf, mask)
