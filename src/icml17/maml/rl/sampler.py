"""Batched rollouts: many tasks x many rollouts stepped together, one policy call per time step.

All ``tasks * rollouts`` environment copies live in one batched environment (:mod:`icml17.maml.rl.envs`); at
each time step the policy is evaluated once on the stacked observations (per-task parameters are applied with
``vmap`` over the task axis), Gaussian noise is added to its means, and the environment steps every copy that is
inside a path. Results are padded tensors with a validity mask, so that everything downstream (baseline, inner
step, TRPO) is one batched program over tasks.

Random streams, one per task (:class:`TaskStreams`): each sampler call draws one seed per task of the *whole*
batch from the caller's ``generator`` (action noise) and one from ``env_seeds`` (environment resets), and every
task then takes its action noise and its reset seeds from its own streams. A task's episodes therefore depend on
its own seeds only, not on which other tasks are sampled beside it: a process that samples a slice of the batch
(``shard``, under torchrun: :mod:`icml17.core.distributed`) draws the seeds of the whole batch, keeps its slice,
and gets the episodes that one process sampling the whole batch gets for those tasks, and the caller's streams
advance alike on every process. (The same episodes up to rounding: a policy call on fewer rows need not round
as the same rows among more do. In float64 that stays far below any tolerance; in float32, MuJoCo's chaotic
dynamics can grow it over a 200-step episode into visibly different trajectories, as any change of batch would.)

Devices: the policy runs on its parameters' device, the environments on the CPU. The action noise is drawn from
CPU generators (it decides the episodes, so a run sees the same ones on every device); each time step makes one
copy to the device (the observations with their noise, packed) and one back (the actions), for all tasks x copies
at once. The rollout buffers fill on the CPU and move to the device in one copy when the batch is done.

Two layouts share one type: one path per row (``starts`` None: every row's path begins at t = 0), or packed
lanes (:meth:`Sampler.sample_lanes`), where one row holds the consecutive paths of one environment copy that
restarts as soon as a path ends, and ``starts`` marks each path's first step. Only returns and the baseline's
time feature look at path boundaries; every loss is a mean over valid steps and ignores the layout.

Batches counted in time steps come in the two forms the reference code uses. Evaluation
(:meth:`Sampler.sample_steps`, rllab's ``BatchSampler``): copies restart finished paths until the task's finished
paths hold the budget, then the paths in flight run to their end and every path counts, whole. Meta-training
(:meth:`Sampler.sample_lanes`, the reference's ``VectorizedSampler``): one copy per task restarting until the
finished paths of all tasks hold the budget; the paths then in flight are dropped, as there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from icml17.core import distributed
from icml17.core.device import to_device
from icml17.core.errors import UserError
from icml17.maml.rl.envs import EnvSpec, env_spec, make_env
from icml17.maml.rl.policy import GaussianMLPPolicy, Params


class NonFiniteRolloutError(UserError, FloatingPointError):
    """The environment produced a NaN or infinite reward or observation."""


@dataclass
class Rollouts:
    """Padded rollouts of K tasks x R rows x T steps; ``mask`` is 1 on steps that happened.

    A row is one path, or with ``starts`` (1 on each path's first step) a lane of consecutive paths. Indexing
    (``rollouts[i]``) indexes the task axis of every tensor.

    Attributes:
        obs: observations, (K, R, T, obs_dim).
        actions: actions taken, (K, R, T, act_dim).
        rewards: rewards, (K, R, T), 0 on padding.
        mask: 1 on steps that happened, 0 on padding, (K, R, T).
        starts: 1 on each path's first step, (K, R, T); None when every row is one path starting at t = 0.
    """

    obs: torch.Tensor  # (K, R, T, obs_dim)
    actions: torch.Tensor  # (K, R, T, act_dim)
    rewards: torch.Tensor  # (K, R, T)
    mask: torch.Tensor  # (K, R, T)
    starts: torch.Tensor | None = None  # (K, R, T); None: one path per row

    @property
    def num_tasks(self) -> int:
        """K, the number of tasks."""
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
        """The number of environment steps that happened (padding left out)."""
        return int(self.mask.sum().item())

    def to(self, dtype: torch.dtype) -> Rollouts:
        """The same rollouts in ``dtype``.

        Args:
            dtype: the floating-point type of every tensor (float64 for the exactness tests).

        Returns:
            New :class:`Rollouts`.
        """
        return Rollouts(
            self.obs.to(dtype),
            self.actions.to(dtype),
            self.rewards.to(dtype),
            self.mask.to(dtype),
            None if self.starts is None else self.starts.to(dtype),
        )

    def to_device(self, device: torch.device) -> Rollouts:
        """The same rollouts on ``device`` (one copy per tensor; none when they are already there).

        Args:
            device: where the policy computes.

        Returns:
            New :class:`Rollouts`.
        """
        moved = to_device([self.obs, self.actions, self.rewards, self.mask, self.starts], device)
        return Rollouts(*moved)

    def __getitem__(self, index) -> Rollouts:
        return Rollouts(
            self.obs[index],
            self.actions[index],
            self.rewards[index],
            self.mask[index],
            None if self.starts is None else self.starts[index],
        )


LANE_SYNC_STEPS = 16  # sharded training lanes: steps between the all-reduces that find the stop
NOISE_CHUNK = 50  # time steps of action noise drawn from a task's stream at once (fixed: it shapes the stream)
SEED_HIGH = 2**62  # per-task stream seeds are drawn below this


class TaskStreams:
    """The random streams of one sampler call, one pair per task of this process's slice.

    ``generator`` and ``env_seeds`` (the caller's streams) each give one seed per task of the whole batch of
    ``total`` tasks, drawn on every process alike (so they advance by the same amount wherever they are used);
    ``shard`` picks this process's tasks. Task i's action noise for time step t is element t of a sequence drawn
    from its own ``torch.Generator`` in blocks of :data:`NOISE_CHUNK` steps; its copies' reset seeds come from its
    own ``numpy`` generator, in copy order. Nothing a task draws depends on the other tasks."""

    def __init__(
        self, generator: torch.Generator, env_seeds: np.random.Generator, total: int, shard: slice | None = None
    ):
        part = shard if shard is not None else slice(None)
        noise = torch.randint(0, SEED_HIGH, (total,), generator=generator)[part].tolist()
        resets = env_seeds.integers(0, SEED_HIGH, size=total)[part].tolist()
        self.noise = [torch.Generator().manual_seed(int(s)) for s in noise]
        self.resets = [np.random.default_rng(int(s)) for s in resets]
        self._block: torch.Tensor | None = None
        self._next = 0

    def __len__(self) -> int:
        return len(self.noise)

    def initial_seeds(self, copies: int) -> np.ndarray:
        """Reset seeds of every task's ``copies`` copies, task by task: (tasks * copies,)."""
        return np.concatenate([rng.integers(0, 2**31 - 1, size=copies) for rng in self.resets])

    def restart_seeds(self, copies: np.ndarray, per_task: int) -> np.ndarray:
        """Reset seeds of restarting copies ``copies`` (ascending flat indices, ``per_task`` copies per task),
        each from its task's stream."""
        return np.array([self.resets[i // per_task].integers(0, 2**31 - 1) for i in copies.tolist()])

    def noise_at(self, t: int, copies: int, act_dim: int, dtype: torch.dtype) -> torch.Tensor:
        """Standard-normal action noise of time step ``t`` for every task's copies: (tasks, copies, act_dim). Steps
        are asked for in order, 0, 1, 2, ... (a call re-asking the current step gets the same noise)."""
        if self._block is None or t >= self._next:
            self._block = torch.stack(
                [torch.randn(NOISE_CHUNK, copies, act_dim, generator=g, dtype=dtype) for g in self.noise], 1
            )
            self._next = (t // NOISE_CHUNK + 1) * NOISE_CHUNK
        return self._block[t % NOISE_CHUNK]


def _plain_mlp(policy: nn.Module) -> list[str | None] | None:
    """The layers of a :class:`GaussianMLPPolicy` whose mean network is Linear and ReLU layers only: each Linear's
    parameter prefix, None for a ReLU; None for any other policy."""
    if not isinstance(policy, GaussianMLPPolicy):
        return None
    layers: list[str | None] = []
    for i, layer in enumerate(policy.mean):
        if type(layer) is nn.Linear:
            layers.append(f"mean.{i}")
        elif type(layer) is nn.ReLU:
            layers.append(None)
        else:
            return None
    return layers


def _policy_means(policy: nn.Module, params: Params, obs: torch.Tensor, per_task: bool):
    """obs (K, R, d) -> mean (K, R, A), log_std (K, 1, A) or (1, 1, A).

    The policy's own computation, written out for the Linear/ReLU policy (one linear or batched matrix product per
    layer: the sampler calls this once per time step, where ``functional_call`` and ``vmap`` would cost several
    times the arithmetic); through ``functional_call`` for any other module."""
    layers = _plain_mlp(policy)
    if layers is not None:
        h = obs
        for name in layers:
            if name is None:
                h = torch.relu(h)
            elif per_task:  # (K, R, in) x (K, in, out) + (K, 1, out)
                h = torch.baddbmm(params[name + ".bias"][:, None, :], h, params[name + ".weight"].transpose(1, 2))
            else:
                h = torch.nn.functional.linear(h, params[name + ".weight"], params[name + ".bias"])
        log_std = params["log_std"]
        return h, (log_std[:, None, :] if per_task else log_std[None, None, :])
    if per_task:
        mean, log_std = vmap(lambda p, o: functional_call(policy, p, (o,)))(params, obs)
        return mean, log_std[:, None, :]
    mean, log_std = functional_call(policy, params, (obs,))
    return mean, log_std[None, None, :]


def _act(
    policy: nn.Module,
    params: Params,
    obs: np.ndarray,
    k: int,
    r: int,
    per_task: bool,
    noise: torch.Tensor,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One policy call for all K x R copies: observations (K, R, d) and Gaussian actions (K, R, A), both on the
    CPU; the policy computes on its parameters' device, its means moved by the CPU ``noise`` (K, R, A) either
    way."""
    o = torch.as_tensor(obs, dtype=dtype).view(k, r, -1)
    device = next(iter(params.values())).device
    if device.type == "cpu":
        mean, log_std = _policy_means(policy, params, o, per_task)
        return o, mean + log_std.exp() * noise
    d = o.shape[-1]
    packed = torch.cat([o, noise], -1).to(device)  # the one copy to the device
    mean, log_std = _policy_means(policy, params, packed[..., :d].contiguous(), per_task)
    return o, (mean + log_std.exp() * packed[..., d:]).cpu()  # the one copy back


def _non_finite(env_name: str, t: int) -> NonFiniteRolloutError:
    return NonFiniteRolloutError(
        f"{env_name} returned a non-finite reward or observation at time step {t} of a "
        f"rollout (lower the step sizes, then resume)"
    )


def _check_finite(env_name: str, reward: np.ndarray, obs: np.ndarray, live: np.ndarray, t: int) -> None:
    if not (np.isfinite(reward[live]).all() and np.isfinite(obs[live]).all()):
        raise _non_finite(env_name, t)


def _local(tasks: np.ndarray, shard: slice | None) -> np.ndarray:
    tasks = np.asarray(tasks)
    return tasks if shard is None else tasks[shard]


class Sampler:
    """Samples rollouts of environment ``env`` for given tasks; keeps MuJoCo environments between calls.

    Every method takes the caller's two streams (``generator`` for the action noise, ``env_seeds`` for the
    resets), from which it draws one seed per task of ``tasks`` (:class:`TaskStreams`). With ``shard`` (a slice of
    ``tasks``, this process's share under torchrun) it samples those tasks only, with the episodes it gives them
    when sampling all of ``tasks`` (up to rounding, see the module's docstring); per-task ``params`` then hold the
    shard's tasks.

    ``steps_per_s`` is the throughput of the last call (environment steps, policy included); ``total_steps``
    counts every environment step taken so far.

    Args:
        env: the environment's name, one of :data:`icml17.maml.rl.envs.ENVS`.
        oracle: append the task to the observation (the oracle baseline).
        horizon: steps per path (None: the environment's).
        frame_skip: MuJoCo substeps of 0.01 s per action, or ``"v5"`` (gymnasium's default, 5).

    Examples:
        Three rollouts on each of two 2D-navigation goals, 5 steps each:

        >>> import numpy as np, torch
        >>> from icml17.maml.rl.policy import GaussianMLPPolicy, params_of
        >>> sampler = Sampler("point-nav", horizon=5)
        >>> policy = GaussianMLPPolicy(2, 2)
        >>> goals = np.array([[0.3, 0.1], [-0.2, 0.4]])
        >>> r = sampler.sample(policy, params_of(policy), goals, 3, torch.Generator().manual_seed(0),
        ...                    np.random.default_rng(1))
        >>> r.obs.shape, r.steps()                     # (K, R, T, obs_dim); 2 x 3 x 5 steps
        (torch.Size([2, 3, 5, 2]), 30)
    """

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

    def _start(self, tasks: np.ndarray, copies: int, params: Params, streams: TaskStreams):
        """``copies`` environment copies per task (copy i is task i // copies), reset from their tasks' streams; the
        parameters detached, and their dtype: (env, observations, params, dtype)."""
        env = self._env(np.repeat(np.asarray(tasks), copies, axis=0))
        obs = env.reset(streams.initial_seeds(copies))
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
    def sample(
        self,
        policy: nn.Module,
        params: Params,
        tasks: np.ndarray,
        rollouts: int,
        generator: torch.Generator,
        env_seeds: np.random.Generator,
        per_task: bool = False,
        shard: slice | None = None,
    ) -> Rollouts:
        """``rollouts`` full rollouts for each task, all stepped together.

        Actions are the policy's Gaussian samples (unclipped; the environment clips them).

        Args:
            policy: the policy network, run with ``params``.
            params: the policy's parameters, shared by every task or per task with a leading K axis.
            tasks: the K tasks, (K, task_dim), as :func:`icml17.maml.rl.envs.sample_tasks` draws them.
            rollouts: rollouts per task.
            generator: the caller's action-noise stream (one seed per task is drawn from it).
            env_seeds: the caller's reset stream (one seed per task is drawn from it).
            per_task: ``params`` has a leading task axis (adapted policies).
            shard: sample only ``tasks[shard]``, with the episodes they get in the whole batch.

        Returns:
            :class:`Rollouts` (K, rollouts, horizon) on the parameters' device.
        """
        t0 = time.perf_counter()
        streams = TaskStreams(generator, env_seeds, len(tasks), shard)
        tasks = _local(tasks, shard)
        k, r, horizon = len(tasks), rollouts, self.horizon
        env, obs, params, dtype = self._start(tasks, r, params, streams)
        d, a = self.spec.obs_dim, self.spec.act_dim
        obs_buf = torch.zeros(k, r, horizon, d, dtype=dtype)
        act_buf = torch.zeros(k, r, horizon, a, dtype=dtype)
        rew_buf = torch.zeros(k, r, horizon, dtype=dtype)
        mask = torch.zeros(k, r, horizon, dtype=dtype)
        active = np.ones(k * r, bool)
        for t in range(horizon):
            o, action = _act(policy, params, obs, k, r, per_task, streams.noise_at(t, r, a, dtype), dtype)
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
    def sample_steps(
        self,
        policy: nn.Module,
        params: Params,
        tasks: np.ndarray,
        copies: int,
        min_steps: int,
        generator: torch.Generator,
        env_seeds: np.random.Generator,
        per_task: bool = False,
        shard: slice | None = None,
    ) -> Rollouts:
        """Batches as the reference's test scripts collect them (rllab's ``BatchSampler``:
        ``sample_paths(max_samples=min_steps)``, whose workers each finish the path they are on and keep it):
        ``copies`` copies per task step together, a copy whose path ends (done, or the horizon) starting a new
        path at once while the task's finished paths hold fewer than ``min_steps`` steps. From then on the task
        starts no new path; the paths in flight run to their end, and every path counts, whole. Every path that is
        started is kept, so the batch's mean return estimates the expected return of an episode (a ratio
        estimator: bias of order 1 / paths); dropping the paths still running would discard the long episodes
        that a fixed step budget cuts and keep the short ones. A task gets at least ``min_steps`` steps, and at
        most ``min_steps - 1 + copies * horizon``.

        Args:
            policy: the policy network, run with ``params``.
            params: shared, or per task with a leading K axis (``per_task``).
            tasks: the K tasks, (K, task_dim).
            copies: environment copies per task stepping together.
            min_steps: the finished paths' step budget per task.
            generator: the caller's action-noise stream.
            env_seeds: the caller's reset stream.
            per_task: ``params`` has a leading task axis.
            shard: sample only ``tasks[shard]``.

        Returns:
            :class:`Rollouts` (K, P, T) with P the largest number of paths of a task; missing paths are all-zero
            masks.

        Raises:
            ValueError: ``copies`` or ``min_steps`` < 1.
        """
        if copies < 1 or min_steps < 1:
            raise ValueError(f"sample_steps needs copies >= 1 and min_steps >= 1, got {copies} and {min_steps}")
        t0 = time.perf_counter()
        streams = TaskStreams(generator, env_seeds, len(tasks), shard)
        tasks = _local(tasks, shard)
        k, r, horizon = len(tasks), copies, self.horizon
        n = k * r
        env, obs, params, dtype = self._start(tasks, r, params, streams)
        d, a = self.spec.obs_dim, self.spec.act_dim
        cur_obs, cur_act = torch.zeros(n, horizon, d, dtype=dtype), torch.zeros(n, horizon, a, dtype=dtype)
        cur_rew, length = torch.zeros(n, horizon, dtype=dtype), np.zeros(n, int)
        paths: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in range(k)]
        finished = np.zeros(k, int)
        open_task = np.ones(k, bool)  # tasks that still start new paths
        active = np.ones(n, bool)  # copies inside a path
        rows = np.arange(n)
        t = 0
        while active.any():
            o, action = _act(policy, params, obs, k, r, per_task, streams.noise_at(t, r, a, dtype), dtype)
            t += 1
            action = action.view(n, a)
            cur_obs[rows, length] = o.view(n, d)
            cur_act[rows, length] = action
            obs, reward, done = env.step(action.numpy().astype(np.float64), active)
            _check_finite(self.env_name, reward, obs, active, int(length.max()))
            cur_rew[rows, length] = torch.as_tensor(np.where(active, reward, 0.0), dtype=dtype)
            length = length + active
            ended = active & (done | (length == horizon))
            for i in np.flatnonzero(ended):
                steps = length[i]
                paths[i // r].append(
                    (cur_obs[i, :steps].clone(), cur_act[i, :steps].clone(), cur_rew[i, :steps].clone())
                )
                finished[i // r] += steps
            length[ended] = 0
            open_task &= finished < min_steps
            restart = np.flatnonzero(ended & np.repeat(open_task, r))
            active &= ~ended  # a closed task's copies stop when their path ends; the others run on
            active[restart] = True
            if restart.size:
                obs[restart] = env.reset_copies(restart, streams.restart_seeds(restart, r))
            obs = np.where(active[:, None], obs, 0.0)  # idle copies hold anything
        p = max(len(ps) for ps in paths)
        out = Rollouts(
            torch.zeros(k, p, horizon, d, dtype=dtype),
            torch.zeros(k, p, horizon, a, dtype=dtype),
            torch.zeros(k, p, horizon, dtype=dtype),
            torch.zeros(k, p, horizon, dtype=dtype),
        )
        for task, ps in enumerate(paths):
            for j, (po, pa, pr) in enumerate(ps):
                steps = len(pr)
                out.obs[task, j, :steps], out.actions[task, j, :steps] = po, pa
                out.rewards[task, j, :steps], out.mask[task, j, :steps] = pr, 1.0
        return self._finish(out, t0, params)

    @torch.no_grad()
    def sample_lanes(
        self,
        policy: nn.Module,
        params: Params,
        tasks: np.ndarray,
        total_steps: int,
        generator: torch.Generator,
        env_seeds: np.random.Generator,
        per_task: bool = False,
        shard: slice | None = None,
    ) -> Rollouts:
        """A training batch as the reference's MAML sampler collects it (its ``VectorizedSampler``, ``batch_size``
        counted in time steps, one environment copy per task): the K copies step together, each starting a new
        path as soon as its path ends (done, or the horizon), until the finished paths of all tasks hold
        ``total_steps`` steps; each copy's unfinished path is then dropped (the reference keeps only the paths
        that ended). Where paths end early (2D navigation at the goal), a task gets many short paths instead of a
        fixed number of long ones. Packed Rollouts (K, 1, S) with ``starts``.

        With ``shard`` the stop still counts the finished steps of all ``tasks``: under torchrun the processes
        add up their counts, so each stops where one process sampling every task stops. No stop is possible before
        ``total_steps / K`` steps; from then on each process steps ahead in blocks of :data:`LANE_SYNC_STEPS`, sums
        the block's counts over the processes in one all-reduce, and cuts its lanes at the first step where the
        sum reaches the budget (the steps taken beyond it are discarded; each task's streams are its own, so
        nothing after them changes). A non-finite step is an error only if it lies before the stop.

        Args:
            policy: the policy network, run with ``params``.
            params: shared, or per task with a leading K axis (``per_task``).
            tasks: the K tasks, (K, task_dim).
            total_steps: the finished paths' step budget, summed over all tasks.
            generator: the caller's action-noise stream.
            env_seeds: the caller's reset stream.
            per_task: ``params`` has a leading task axis.
            shard: sample only ``tasks[shard]`` (the stop still counts every task's steps).

        Returns:
            Packed :class:`Rollouts` (K, 1, S) with ``starts``.

        Raises:
            ValueError: ``total_steps`` < 1.
        """
        if total_steps < 1:
            raise ValueError(f"sample_lanes needs total_steps >= 1, got {total_steps}")
        t0 = time.perf_counter()
        everyone_k = len(tasks)
        streams = TaskStreams(generator, env_seeds, everyone_k, shard)
        tasks = _local(tasks, shard)
        sharded = shard is not None and distributed.context().enabled
        if len(tasks) < everyone_k and not sharded:
            raise ValueError(
                "sample_lanes stops on the finished steps of all tasks: a shard of them needs the other "
                "torchrun ranks to count theirs"
            )
        k, horizon = len(tasks), self.horizon
        earliest = -(-total_steps // everyone_k)  # at step t no lane has finished more than t steps
        length_max = earliest + horizon  # by then each lane has finished more than t - horizon: the stop came
        env, obs, params, dtype = self._start(tasks, 1, params, streams)
        d, a = self.spec.obs_dim, self.spec.act_dim
        obs_buf = torch.zeros(k, 1, length_max, d, dtype=dtype)
        act_buf = torch.zeros(k, 1, length_max, a, dtype=dtype)
        rew_buf = torch.zeros(k, 1, length_max, dtype=dtype)
        starts = torch.zeros(k, 1, length_max, dtype=dtype)
        finished_until = np.zeros(k, int)  # each lane's steps before its running path
        history = np.zeros((length_max, k), int)  # finished_until after each step
        path_len = np.zeros(k, int)
        everyone = np.ones(k, bool)
        t, stop, block, bad = 0, 0, earliest, None  # block: the first step count of the next sharded check
        while not stop:
            o, action = _act(policy, params, obs, k, 1, per_task, streams.noise_at(t, 1, a, dtype), dtype)
            obs_buf[:, 0, t], act_buf[:, 0, t] = o[:, 0], action[:, 0]
            starts[:, 0, t] = torch.as_tensor(path_len == 0, dtype=dtype)
            obs, reward, done = env.step(action.reshape(k, a).numpy().astype(np.float64), everyone)
            try:
                _check_finite(self.env_name, reward, obs, everyone, t)
            except NonFiniteRolloutError:
                if not sharded:
                    raise
                bad = t if bad is None else bad  # speculative: an error if the stop comes after it
            rew_buf[:, 0, t] = torch.as_tensor(reward, dtype=dtype)
            path_len += 1
            t += 1
            ended = done | (path_len == horizon)
            finished_until[ended] = t
            history[t - 1] = finished_until
            path_len[ended] = 0
            if not sharded:
                if t >= earliest and finished_until.sum() >= total_steps:
                    stop = t
            elif t == min(block + LANE_SYNC_STEPS - 1, length_max):  # the counts after steps block..t, summed
                counts = distributed.sum_over_ranks(history[block - 1 : t].sum(1))
                reached = [i for i, c in enumerate(counts) if c >= total_steps]
                stop, block = (block + reached[0] if reached else 0), t + 1
            restart = np.flatnonzero(ended)
            if restart.size and not stop:
                obs[restart] = env.reset_copies(restart, streams.restart_seeds(restart, 1))
        if bad is not None and bad < stop:
            raise _non_finite(self.env_name, bad)
        t, finished_until = stop, history[stop - 1]
        mask = (torch.arange(t) < torch.as_tensor(finished_until)[:, None]).to(dtype)[:, None, :]
        return self._finish(
            Rollouts(
                obs_buf[..., :t, :] * mask[..., None],
                act_buf[..., :t, :] * mask[..., None],
                rew_buf[..., :t] * mask,
                mask,
                starts[..., :t] * mask,
            ),
            t0,
            params,
        )
