"""Batched rollouts: many tasks x many rollouts stepped together, one policy call per time step.

All ``tasks * rollouts`` environment copies live in one batched environment (:mod:`icml17.maml.rl.envs`); at
each time step the policy is evaluated once on the stacked observations (per-task parameters are applied with
``vmap`` over the task axis), Gaussian noise comes from one explicit ``torch.Generator``, and the environment
steps every copy that has not finished. Results are padded tensors with a validity mask, so that everything
downstream (baseline, inner step, TRPO) is one batched program over tasks.

Devices: the policy runs on its parameters' device, the environments on the CPU. The action noise is drawn from
the CPU generator (it decides the episodes, so a run sees the same ones on every device); each time step makes
one copy to the device (the observations with their noise, packed) and one back (the actions), for all tasks x
copies at once. The rollout buffers fill on the CPU and move to the device in one copy when the batch is done.

Two layouts share one type: one path per row (``starts`` None: every row's path begins at t = 0), or packed
lanes (:meth:`Sampler.sample_lanes`), where one row holds the consecutive paths of one environment copy that
restarts as soon as a path ends, and ``starts`` marks each path's first step. Only returns and the baseline's
time feature look at path boundaries; every loss is a mean over valid steps and ignores the layout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from icml17.core.device import to_device
from icml17.core.errors import UserError
from icml17.maml.rl.envs import EnvSpec, env_spec, make_env
from icml17.maml.rl.policy import Params


class NonFiniteRolloutError(UserError, FloatingPointError):
    """The environment produced a NaN or infinite reward or observation."""


@dataclass
class Rollouts:
    """Padded rollouts of K tasks x R rows x T steps; ``mask`` is 1 on steps that happened. A row is one path,
    or with ``starts`` (1 on each path's first step) a lane of consecutive paths."""

    obs: torch.Tensor      # (K, R, T, obs_dim)
    actions: torch.Tensor  # (K, R, T, act_dim)
    rewards: torch.Tensor  # (K, R, T)
    mask: torch.Tensor     # (K, R, T)
    starts: torch.Tensor | None = None  # (K, R, T); None: one path per row

    @property
    def num_tasks(self) -> int:
        return self.obs.shape[0]

    def path_starts(self) -> torch.Tensor:
        """1 on the first step of every path: (K, R, T)."""
        if self.starts is not None:
            return self.starts * self.mask
        out = torch.zeros_like(self.mask)
        out[..., 0] = self.mask[..., 0]
        return out

    def returns(self) -> torch.Tensor:
        """Undiscounted return of each rollout (one path per row only): (K, R)."""
        if self.starts is not None:
            raise ValueError("returns() is per row; packed lanes hold several paths per row (use mean_returns)")
        return (self.rewards * self.mask).sum(-1)

    def mean_returns(self) -> torch.Tensor:
        """Mean return of each task's paths, padding left out: (K,)."""
        paths = self.path_starts().sum((1, 2))
        return (self.rewards * self.mask).sum((1, 2)) / paths.clamp_min(1)

    def steps(self) -> int:
        return int(self.mask.sum().item())

    def to(self, dtype: torch.dtype) -> Rollouts:
        return Rollouts(self.obs.to(dtype), self.actions.to(dtype), self.rewards.to(dtype), self.mask.to(dtype),
                        None if self.starts is None else self.starts.to(dtype))

    def to_device(self, device: torch.device) -> Rollouts:
        """The same rollouts on ``device`` (one copy per tensor; none when they are already there)."""
        moved = to_device([self.obs, self.actions, self.rewards, self.mask, self.starts], device)
        return Rollouts(*moved)

    def __getitem__(self, index) -> Rollouts:
        return Rollouts(self.obs[index], self.actions[index], self.rewards[index], self.mask[index],
                        None if self.starts is None else self.starts[index])


def _policy_means(policy: nn.Module, params: Params, obs: torch.Tensor, per_task: bool):
    """obs (K, R, d) -> mean (K, R, A), log_std (K, 1, A) or (1, 1, A)."""
    if per_task:
        mean, log_std = vmap(lambda p, o: functional_call(policy, p, (o,)))(params, obs)
        return mean, log_std[:, None, :]
    mean, log_std = functional_call(policy, params, (obs,))
    return mean, log_std[None, None, :]


def _act(policy: nn.Module, params: Params, obs: np.ndarray, k: int, r: int, per_task: bool,
         generator: torch.Generator, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """One policy call for all K x R copies: observations (K, R, d) and Gaussian actions (K, R, A), both on the
    CPU; the policy computes on its parameters' device, with the noise of the CPU ``generator`` either way."""
    o = torch.as_tensor(obs, dtype=dtype).view(k, r, -1)
    device = next(iter(params.values())).device
    if device.type == "cpu":
        mean, log_std = _policy_means(policy, params, o, per_task)
        return o, mean + log_std.exp() * torch.randn(mean.shape, generator=generator, dtype=dtype)
    d = o.shape[-1]
    noise = torch.randn(k, r, policy.act_dim, generator=generator, dtype=dtype)
    packed = torch.cat([o, noise], -1).to(device)  # the one copy to the device
    mean, log_std = _policy_means(policy, params, packed[..., :d].contiguous(), per_task)
    return o, (mean + log_std.exp() * packed[..., d:]).cpu()  # the one copy back


def _check_finite(env_name: str, reward: np.ndarray, obs: np.ndarray, live: np.ndarray, t: int) -> None:
    if not (np.isfinite(reward[live]).all() and np.isfinite(obs[live]).all()):
        raise NonFiniteRolloutError(f"{env_name} returned a non-finite reward or observation at time step {t} of a "
                                    f"rollout (lower the step sizes, then resume)")


class Sampler:
    """Samples rollouts of environment ``env`` for given tasks; keeps MuJoCo environments between calls.

    ``steps_per_s`` is the throughput of the last call (environment steps, policy included)."""

    def __init__(self, env: str, oracle: bool = False, horizon: int | None = None, frame_skip: int | str = "v5"):
        self.env_name = env
        self.oracle = oracle
        self.frame_skip = frame_skip  # MuJoCo substeps per action (the control interval); "v5": gymnasium's 5
        self.spec: EnvSpec = env_spec(env, oracle)
        self.horizon = horizon or self.spec.horizon
        self._pool: list | None = None  # MuJoCo cores, created once
        self.steps_per_s = 0.0
        self.total_steps = 0

    def _env(self, tasks: np.ndarray):
        n = len(tasks)
        if self.env_name == "point-nav":
            return make_env(self.env_name, tasks, self.oracle)
        if self._pool is None or len(self._pool) < n:  # a larger batch than before: a new pool
            env = make_env(self.env_name, tasks, self.oracle, frame_skip=self.frame_skip)
            self._pool = env.envs
            return env
        return make_env(self.env_name, tasks, self.oracle, pool=self._pool, frame_skip=self.frame_skip)

    def _start(self, tasks: np.ndarray, copies: int, params: Params, env_seeds: np.random.Generator):
        """``copies`` environment copies per task (copy i is task i // copies), reset from their own seeds; the
        parameters detached, and their dtype: (env, observations, params, dtype)."""
        env = self._env(np.repeat(np.asarray(tasks), copies, axis=0))
        obs = env.reset(env_seeds.integers(0, 2 ** 31 - 1, size=len(tasks) * copies))
        params = {name: p.detach() for name, p in params.items()}
        return env, obs, params, next(iter(params.values())).dtype

    def _finish(self, out: Rollouts, t0: float, params: Params) -> Rollouts:
        """The batch (filled on the CPU) moved to the parameters' device; its steps counted into
        ``total_steps`` and ``steps_per_s``."""
        steps = out.steps()
        out = out.to_device(next(iter(params.values())).device)
        self.total_steps += steps
        self.steps_per_s = steps / max(time.perf_counter() - t0, 1e-9)
        return out

    @torch.no_grad()
    def sample(self, policy: nn.Module, params: Params, tasks: np.ndarray, rollouts: int,
               generator: torch.Generator, env_seeds: np.random.Generator, per_task: bool = False) -> Rollouts:
        """``rollouts`` rollouts for each of the K ``tasks`` (K, task_dim); ``params`` shared, or per task with a
        leading K axis (``per_task``). Actions are the policy's Gaussian samples (unclipped; the environment
        clips them)."""
        t0 = time.perf_counter()
        k, r, horizon = len(tasks), rollouts, self.horizon
        env, obs, params, dtype = self._start(tasks, r, params, env_seeds)
        d, a = self.spec.obs_dim, self.spec.act_dim
        obs_buf = torch.zeros(k, r, horizon, d, dtype=dtype)
        act_buf = torch.zeros(k, r, horizon, a, dtype=dtype)
        rew_buf = torch.zeros(k, r, horizon, dtype=dtype)
        mask = torch.zeros(k, r, horizon, dtype=dtype)
        active = np.ones(k * r, bool)
        for t in range(horizon):
            o, action = _act(policy, params, obs, k, r, per_task, generator, dtype)
            alive = torch.as_tensor(active).view(k, r)
            obs_buf[:, :, t] = o
            act_buf[:, :, t] = action
            mask[:, :, t] = alive.to(dtype)
            obs, reward, done = env.step(action.reshape(k * r, a).numpy().astype(np.float64), active)
            # finished copies may hold anything: zero them so that no masked-out NaN reaches a later product
            obs = np.where(active[:, None], obs, 0.0)
            _check_finite(self.env_name, reward, obs, active, t)
            rew_buf[:, :, t] = torch.as_tensor(np.where(active, reward, 0.0), dtype=dtype).view(k, r)
            active = active & ~done
            if not active.any():
                break
        return self._finish(Rollouts(obs_buf, act_buf, rew_buf, mask), t0, params)

    @torch.no_grad()
    def sample_steps(self, policy: nn.Module, params: Params, tasks: np.ndarray, copies: int, min_steps: int,
                     generator: torch.Generator, env_seeds: np.random.Generator, per_task: bool = False) -> Rollouts:
        """Batches as the reference's samplers collect them (rllab's vectorised sampler, ``batch_size`` counted in
        time steps): ``copies`` copies per task step together; a copy whose path ends (done, or the horizon)
        starts a new path at once; a task's batch closes as soon as its finished paths hold ``min_steps`` steps,
        and the paths still running then are dropped. Where paths end early (2D navigation at the goal), a task
        gets more than ``copies`` paths and the short ones count more often, as in the reference's numbers.
        Rollouts (K, P, T) with P the largest number of paths of a task; missing paths are all-zero masks."""
        if copies < 1 or min_steps < 1:
            raise ValueError(f"sample_steps needs copies >= 1 and min_steps >= 1, got {copies} and {min_steps}")
        t0 = time.perf_counter()
        k, r, horizon = len(tasks), copies, self.horizon
        n = k * r
        env, obs, params, dtype = self._start(tasks, r, params, env_seeds)
        d, a = self.spec.obs_dim, self.spec.act_dim
        cur_obs, cur_act = torch.zeros(n, horizon, d, dtype=dtype), torch.zeros(n, horizon, a, dtype=dtype)
        cur_rew, length = torch.zeros(n, horizon, dtype=dtype), np.zeros(n, int)
        paths: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in range(k)]
        finished = np.zeros(k, int)
        open_task = np.ones(k, bool)
        rows = np.arange(n)
        while open_task.any():
            running = np.repeat(open_task, r)
            o, action = _act(policy, params, obs, k, r, per_task, generator, dtype)
            action = action.view(n, a)
            cur_obs[rows, length] = o.view(n, d)
            cur_act[rows, length] = action
            obs, reward, done = env.step(action.numpy().astype(np.float64), running)
            _check_finite(self.env_name, reward, obs, running, int(length.max()))
            cur_rew[rows, length] = torch.as_tensor(np.where(running, reward, 0.0), dtype=dtype)
            length = length + running
            ended = running & (done | (length == horizon))
            for i in np.flatnonzero(ended):
                steps = length[i]
                paths[i // r].append((cur_obs[i, :steps].clone(), cur_act[i, :steps].clone(),
                                      cur_rew[i, :steps].clone()))
                finished[i // r] += steps
            length[ended] = 0
            open_task &= finished < min_steps
            restart = np.flatnonzero(ended & np.repeat(open_task, r))
            if restart.size:
                obs[restart] = env.reset_copies(restart, env_seeds.integers(0, 2 ** 31 - 1, size=restart.size))
            obs = np.where(np.repeat(open_task, r)[:, None], obs, 0.0)  # closed tasks' copies hold anything
        p = max(len(ps) for ps in paths)
        out = Rollouts(torch.zeros(k, p, horizon, d, dtype=dtype), torch.zeros(k, p, horizon, a, dtype=dtype),
                       torch.zeros(k, p, horizon, dtype=dtype), torch.zeros(k, p, horizon, dtype=dtype))
        for task, ps in enumerate(paths):
            for j, (po, pa, pr) in enumerate(ps):
                steps = len(pr)
                out.obs[task, j, :steps], out.actions[task, j, :steps] = po, pa
                out.rewards[task, j, :steps], out.mask[task, j, :steps] = pr, 1.0
        return self._finish(out, t0, params)

    @torch.no_grad()
    def sample_lanes(self, policy: nn.Module, params: Params, tasks: np.ndarray, total_steps: int,
                     generator: torch.Generator, env_seeds: np.random.Generator, per_task: bool = False) -> Rollouts:
        """A training batch as the reference's MAML sampler collects it (``batch_size`` counted in time steps, one
        environment copy per task): the K copies step together, each starting a new path as soon as its path
        ends (done, or the horizon), until the finished paths of all tasks hold ``total_steps`` steps; each
        copy's unfinished path is then dropped. Where paths end early (2D navigation at the goal), a task gets
        many short paths instead of a fixed number of long ones. Packed Rollouts (K, 1, S) with ``starts``."""
        if total_steps < 1:
            raise ValueError(f"sample_lanes needs total_steps >= 1, got {total_steps}")
        t0 = time.perf_counter()
        k, horizon = len(tasks), self.horizon
        length_max = -(-total_steps // k) + horizon  # no lane can finish fewer than (its steps - horizon)
        env, obs, params, dtype = self._start(tasks, 1, params, env_seeds)
        d, a = self.spec.obs_dim, self.spec.act_dim
        obs_buf = torch.zeros(k, 1, length_max, d, dtype=dtype)
        act_buf = torch.zeros(k, 1, length_max, a, dtype=dtype)
        rew_buf = torch.zeros(k, 1, length_max, dtype=dtype)
        starts = torch.zeros(k, 1, length_max, dtype=dtype)
        finished_until = np.zeros(k, int)  # each lane's steps before its running path
        path_len = np.zeros(k, int)
        everyone = np.ones(k, bool)
        t = 0
        while finished_until.sum() < total_steps:
            o, action = _act(policy, params, obs, k, 1, per_task, generator, dtype)
            obs_buf[:, 0, t], act_buf[:, 0, t] = o[:, 0], action[:, 0]
            starts[:, 0, t] = torch.as_tensor(path_len == 0, dtype=dtype)
            obs, reward, done = env.step(action.reshape(k, a).numpy().astype(np.float64), everyone)
            _check_finite(self.env_name, reward, obs, everyone, t)
            rew_buf[:, 0, t] = torch.as_tensor(reward, dtype=dtype)
            path_len += 1
            t += 1
            ended = done | (path_len == horizon)
            finished_until[ended] = t
            path_len[ended] = 0
            restart = np.flatnonzero(ended)
            if restart.size:
                obs[restart] = env.reset_copies(restart, env_seeds.integers(0, 2 ** 31 - 1, size=restart.size))
        mask = (torch.arange(t) < torch.as_tensor(finished_until)[:, None]).to(dtype)[:, None, :]
        return self._finish(Rollouts(obs_buf[..., :t, :] * mask[..., None], act_buf[..., :t, :] * mask[..., None],
                                     rew_buf[..., :t] * mask, mask, starts[..., :t] * mask), t0, params)
