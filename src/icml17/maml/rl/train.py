"""Meta-training for RL (Finn et al. 2017, Algorithm 3) through the project's one training loop.

One meta-iteration: draw ``meta_batch`` tasks; sample ``rollouts`` rollouts per task with theta (one batched
sampler call for all tasks; with ``batch=steps``, the same number of time steps as the reference counts
them, one copy per task restarting finished paths); adapt by one policy-gradient step per task
(:func:`icml17.maml.rl.inner.adapt`); sample post-update rollouts with the adapted policies; update theta by
TRPO (or Adam) on the post-update surrogate through the adaptation (:mod:`icml17.maml.rl.trpo`). In
``pretrained`` and ``oracle`` modes there is no inner step: the same TRPO trains one policy on the pre-update
rollouts of all tasks.

Resume is exact: the policy, the Adam state, the task stream, the environments' reset seeds and the action
noise generator are all in the checkpoint (:func:`icml17.core.loop.run_loop`).

Under torchrun (:mod:`icml17.core.distributed`) the meta-batch's tasks are sharded over the processes: every
rank draws the whole meta-batch's tasks and the seeds of its per-task random streams
(:class:`icml17.maml.rl.sampler.TaskStreams`) and keeps its slice, samples, fits baselines and adapts on its own
tasks, and the TRPO step sums its surrogate, gradient, KL and curvature products over the ranks
(:func:`icml17.maml.rl.trpo.trpo_step`), so every rank takes the same step. Each task's episodes are the ones one
process gets, so the update is the single-process one on the same seed up to floating-point rounding (summation
order over tasks and ranks, a policy call on fewer rows): in float64 the parameters agree to 1e-10
(``tests/maml/rl/test_distributed.py``); in float32 the rounding differences, amplified by chaotic MuJoCo
episodes, make a run on N processes a different (equally valid) sample path from one on 1 process. The random
streams advance alike on every rank, so one checkpoint, written by rank 0 with the log, holds them all; a run
resumes on the same number of processes. A meta-batch that the processes cannot share equally is refused before
any work; the periodic evaluation shares its tasks out too when they divide.

Devices: the policy, the inner step, the baseline and TRPO compute on ``device``; the environments step on the
CPU (:mod:`icml17.maml.rl.sampler`). Every random stream (tasks, reset seeds, action noise) is a CPU generator,
so a run sees the same tasks and episodes on every device, and its checkpoint
resumes on any.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from icml17.core import distributed
from icml17.core.config import ConfigError
from icml17.core.device import explain_out_of_memory
from icml17.core.loop import GeneratorState, LoopResult, run_loop
from icml17.maml.rl.envs import env_spec, sample_tasks
from icml17.maml.rl.inner import PGData, adapt, pg_data
from icml17.maml.rl.policy import (
    GaussianMLPPolicy,
    Params,
    check_action_size,
    params_of,
    xavier_init_,
)
from icml17.maml.rl.presets import MAMLRLConfig
from icml17.maml.rl.sampler import Rollouts, Sampler
from icml17.maml.rl.trpo import MetaObjective, adam_step, trpo_step

VALIDATION_SEED_OFFSET = 1_000_003  # validation tasks come from their own stream, never the training one


@dataclass
class RandomStreams:
    """The random streams of meta-training, one per role, all derived from one seed.

    Each role has its own stream so that changing how one is used (more rollouts, another environment) does not
    shift the others. ``RandomStreams.from_seed(s)`` is what :func:`train` uses with ``s = cfg.seed``.

    Attributes:
        tasks: draws each meta-batch's tasks (goals, velocities, directions).
        env_seeds: draws the seeds of the environments' resets (one stream per task, see
            :class:`icml17.maml.rl.sampler.TaskStreams`).
        noise: draws the seeds of the policy's action noise (a CPU generator: the same episodes on every device).

    Examples:
        >>> streams = RandomStreams.from_seed(0)
        >>> sorted(streams.checkpoint_state())
        ['env_seeds', 'noise', 'tasks']
    """

    tasks: np.random.Generator
    env_seeds: np.random.Generator
    noise: torch.Generator

    @classmethod
    def from_seed(cls, seed: int) -> RandomStreams:
        """The three streams of a run with this seed: ``seed``, ``seed + 1`` and ``seed + 2``.

        Args:
            seed: the run's seed (``cfg.seed``).

        Returns:
            Fresh streams.
        """
        return cls(
            np.random.default_rng(seed), np.random.default_rng(seed + 1), torch.Generator().manual_seed(seed + 2)
        )

    def checkpoint_state(self) -> dict[str, GeneratorState]:
        """The streams as :func:`icml17.core.run_loop` checkpoints them, under the names every checkpoint uses.

        Returns:
            ``{"tasks": ..., "env_seeds": ..., "noise": ...}``, each a :class:`icml17.core.GeneratorState`.
        """
        return {
            "tasks": GeneratorState(self.tasks),
            "env_seeds": GeneratorState(self.env_seeds),
            "noise": GeneratorState(self.noise),
        }


def build_policy(
    cfg: MAMLRLConfig, seed: int | None = None, device: torch.device | str | None = None
) -> GaussianMLPPolicy:
    """The policy for ``cfg``'s environment, initialised on the CPU (the same weights on every device).

    Args:
        cfg: the run's config (validated here: one made with ``dataclasses.replace`` is checked too).
        seed: the initialisation's seed (default ``cfg.seed``); seeds the global torch generator.
        device: where the policy computes (default: the CPU).

    Returns:
        A :class:`icml17.maml.rl.policy.GaussianMLPPolicy` with ``cfg.hidden`` layers.

    Raises:
        ConfigError: an invalid config.
    """
    cfg.validate()
    spec = env_spec(cfg.env, cfg.oracle)
    torch.manual_seed(cfg.seed if seed is None else seed)
    policy = GaussianMLPPolicy(spec.obs_dim, spec.act_dim, tuple(cfg.hidden))
    if cfg.init == "xavier":
        xavier_init_(policy)
    check_action_size(policy, spec.act_dim, spec.obs_dim, cfg.env)
    return policy if device is None else policy.to(device)


def make_sampler(cfg: MAMLRLConfig) -> Sampler:
    """The batched rollout sampler of ``cfg``'s environment, horizon and control interval.

    Args:
        cfg: the run's config (validated here).

    Returns:
        A :class:`icml17.maml.rl.sampler.Sampler`.

    Raises:
        ConfigError: an invalid config.
        MujocoMissingError: a locomotion environment without the ``rl`` extra installed.
    """
    cfg.validate()
    return Sampler(cfg.env, cfg.oracle, cfg.horizon or None, frame_skip=cfg.frame_skip)


def sample_and_adapt(
    cfg: MAMLRLConfig,
    policy: GaussianMLPPolicy,
    theta: Params,
    sampler: Sampler,
    tasks: np.ndarray,
    rollouts: int,
    steps: int,
    lr: float | Sequence[float],
    generator: torch.Generator,
    env_seeds: np.random.Generator,
    min_steps: int = 0,
    total_steps: int = 0,
    shard: slice | None = None,
) -> tuple[list[Rollouts], list[PGData], Params]:
    """Rollouts before and after each of ``steps`` adaptation steps, each adapted policy sampling the next batch.

    Args:
        cfg: the run's config (discount, GAE lambda, first order).
        policy: the policy network (its parameters are not used: ``theta`` is).
        theta: the pre-update parameters.
        sampler: the batched sampler.
        tasks: the K tasks, as :func:`icml17.maml.rl.envs.sample_tasks` draws them.
        rollouts: rollouts (or copies, with ``min_steps``) per task and batch.
        steps: adaptation steps.
        lr: the step size, or one per step.
        generator: the action-noise stream.
        env_seeds: the environment reset stream.
        min_steps: > 0: each batch as the reference's test scripts collect it, ``rollouts`` copies per task
            restarting finished paths until the finished ones hold ``min_steps`` steps, then finishing the paths
            in flight, every path whole (:meth:`Sampler.sample_steps`).
        total_steps: > 0: as the reference's meta-training collects it, one copy per task restarting until all
            finished paths hold ``total_steps`` steps (:meth:`Sampler.sample_lanes`).
        shard: only the tasks ``tasks[shard]`` (this rank's), with the episodes they get in the whole batch.

    Returns:
        ``(samples, batches, adapted)``: ``steps + 1`` :class:`Rollouts`, the ``steps`` inner batches, and the
        final adapted parameters (K, ...).
    """
    batches: list[PGData] = []
    samples: list[Rollouts] = []
    current, per_task = theta, False
    for step in range(steps + 1):
        if total_steps:
            r = sampler.sample_lanes(
                policy, current, tasks, total_steps, generator, env_seeds, per_task=per_task, shard=shard
            )
        elif min_steps:
            r = sampler.sample_steps(
                policy, current, tasks, rollouts, min_steps, generator, env_seeds, per_task=per_task, shard=shard
            )
        else:
            r = sampler.sample(policy, current, tasks, rollouts, generator, env_seeds, per_task=per_task, shard=shard)
        samples.append(r)
        if step == steps:
            break
        batches.append(pg_data(r, cfg.gamma, cfg.gae_lambda))
        current = adapt(policy, theta, batches, lr, step + 1, cfg.first_order)
        current = {k: v.detach() for k, v in current.items()}
        per_task = True
    return samples, batches, current


def adaptation_returns(
    cfg: MAMLRLConfig,
    policy: GaussianMLPPolicy,
    theta: Params,
    sampler: Sampler,
    tasks: np.ndarray,
    rollouts: int,
    steps: int,
    lr: float | Sequence[float],
    generator: torch.Generator,
    env_seeds: np.random.Generator,
    min_steps: int = 0,
    shard: slice | None = None,
) -> tuple[torch.Tensor, list[Rollouts]]:
    """Mean return per task after 0..steps adaptation steps (see :func:`sample_and_adapt` for the arguments).

    Args:
        cfg: the run's config.
        policy: the policy network.
        theta: the pre-update parameters.
        sampler: the batched sampler.
        tasks: the K tasks.
        rollouts: rollouts (or copies) per task and batch.
        steps: adaptation steps.
        lr: the step size, or one per step.
        generator: the action-noise stream.
        env_seeds: the environment reset stream.
        min_steps: > 0: batches counted in time steps, as the reference's test scripts.
        shard: only the tasks ``tasks[shard]``.

    Returns:
        ``(returns, samples)``: (K, steps + 1) mean returns (of ``tasks[shard]`` with ``shard``), and the rollouts.
    """
    samples, _, _ = sample_and_adapt(
        cfg, policy, theta, sampler, tasks, rollouts, steps, lr, generator, env_seeds, min_steps, shard=shard
    )
    return torch.stack([s.mean_returns() for s in samples], 1), samples


def meta_iteration(
    cfg: MAMLRLConfig,
    policy: GaussianMLPPolicy,
    sampler: Sampler,
    optimizer: torch.optim.Optimizer | None,
    streams: RandomStreams | np.random.Generator,
    env_seeds: np.random.Generator | None = None,
    noise: torch.Generator | None = None,
) -> dict[str, Any]:
    """One meta-update of ``policy`` in place (Algorithm 3): sample, adapt every task, step through the adaptation.

    Draws ``cfg.meta_batch`` tasks, samples them with the policy, adapts each by ``cfg.inner_steps``
    policy-gradient steps, samples again with the adapted policies, and updates the policy by TRPO (or Adam)
    on the post-update objective. Under torchrun this rank samples and adapts its share of the tasks; the outer
    step and the metrics are summed over ranks, so they are the whole meta-batch's.

    Args:
        cfg: the run's config (validated here: one made with ``dataclasses.replace`` is checked too).
        policy: the policy, updated in place.
        sampler: :func:`make_sampler`'s sampler for ``cfg``.
        optimizer: the outer optimizer when ``cfg.outer == "adam"``; unused (None is fine) with TRPO.
        streams: the run's :class:`RandomStreams` (advanced in place). The three generators ``task_rng,
            env_seeds, noise`` may be passed instead, in that order (the former form).
        env_seeds: with a task generator as ``streams`` only: the environment reset stream.
        noise: with a task generator as ``streams`` only: the action-noise stream.

    Returns:
        The metrics: mean returns before and after adaptation (``return_pre``, ``return_post``), the surrogate
        before and after the step, its KL, environment steps and timings.

    Raises:
        ConfigError: an invalid config, or ``outer="adam"`` without an optimizer.
        FloatingPointError: the Adam step made parameters non-finite.

    Examples:
        Two 2D-navigation tasks of 2 x 10 time steps each (the preset has 20 tasks of 20 x 100), TRPO outer step:

        >>> import torch
        >>> from icml17.maml.rl import RandomStreams, build_policy, make_config, make_sampler, meta_iteration
        >>> cfg = make_config("point-nav", overrides={"meta_batch": 2, "rollouts": 2, "horizon": 10})
        >>> policy, sampler = build_policy(cfg), make_sampler(cfg)
        >>> before = [p.detach().clone() for p in policy.parameters()]
        >>> m = meta_iteration(cfg, policy, sampler, optimizer=None, streams=RandomStreams.from_seed(0))
        >>> int(m["env_steps"])                # 2 tasks x 2 x 10 steps, before and after the inner step
        80
        >>> any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))   # the policy moved
        True
    """
    cfg.validate()
    if isinstance(streams, RandomStreams):
        if env_seeds is not None or noise is not None:
            raise TypeError("pass either RandomStreams or the three generators (task_rng, env_seeds, noise)")
        task_rng, env_seeds, noise = streams.tasks, streams.env_seeds, streams.noise
    else:
        if env_seeds is None or noise is None:
            raise TypeError(
                "meta_iteration needs RandomStreams.from_seed(seed), or the three generators task_rng, env_seeds, noise"
            )
        task_rng = streams
    if cfg.outer == "adam" and optimizer is None:
        raise ConfigError("outer='adam' needs an optimizer: pass torch.optim.Adam(policy.parameters(), lr=cfg.meta_lr)")
    t0 = time.perf_counter()
    steps0 = sampler.total_steps
    ctx = distributed.context()
    tasks = sample_tasks(cfg.env, cfg.meta_batch, task_rng)  # the whole meta-batch, on every rank
    mine = distributed.shard(cfg.meta_batch) if ctx.enabled else None
    theta = {k: v.detach().clone() for k, v in params_of(policy).items()}
    total = cfg.meta_batch * cfg.rollouts * sampler.horizon if cfg.batch == "steps" else 0
    samples, batches, _ = sample_and_adapt(
        cfg,
        policy,
        theta,
        sampler,
        tasks,
        cfg.rollouts,
        cfg.train_inner_steps,
        cfg.inner_lr,
        noise,
        env_seeds,
        total_steps=total,
        shard=mine,
    )
    sample_s = time.perf_counter() - t0
    objective = MetaObjective(
        policy,
        theta,
        batches,
        pg_data(samples[-1], cfg.gamma, cfg.gae_lambda),
        cfg.inner_lr,
        cfg.train_inner_steps,
        cfg.first_order,
        total_tasks=cfg.meta_batch,
        first_task=mine.start if mine else 0,
        sharded=ctx.enabled,
    )
    sums = torch.stack(
        [samples[0].mean_returns().sum(), samples[-1].mean_returns().sum(), samples[-1].path_starts().sum()]
    ).tolist()  # one copy back
    env_steps = sampler.total_steps - steps0
    pre, post, paths, env_steps = distributed.sum_over_ranks([*sums, env_steps])  # the whole batch's
    metrics: dict[str, Any] = {
        "return_pre": pre / cfg.meta_batch,
        "return_post": post / cfg.meta_batch,
        "paths_post": paths / cfg.meta_batch,
    }
    if cfg.outer == "trpo":
        new, result = trpo_step(
            objective,
            theta,
            max_kl=cfg.max_kl,
            damping=cfg.cg_damping,
            cg_iters=cfg.cg_iters,
            backtrack_ratio=cfg.backtrack_ratio,
            max_backtracks=cfg.max_backtracks,
            hvp_tasks=cfg.hvp_tasks,
            curvature=cfg.curvature,
        )
        with torch.no_grad():
            for name, p in policy.named_parameters():
                p.copy_(new[name])
        metrics.update(
            surrogate_before=result.loss_before, step_accepted=int(result.accepted), backtracks=result.backtracks
        )
        if result.accepted:
            metrics.update(surrogate_after=result.loss_after, kl=result.kl)
        else:  # parameters unchanged; the candidate's numbers as text, out of the finite-metrics check (may be NaN)
            metrics.update(
                surrogate_after=result.loss_before,
                kl=0.0,
                rejected_candidate=f"surrogate {result.loss_after:.4g}, kl {result.kl:.4g}",
            )
    else:
        metrics["surrogate_before"] = adam_step(objective, theta, optimizer, dict(policy.named_parameters()))
        named = list(policy.named_parameters())
        finite = torch.stack([torch.isfinite(p).all() for _, p in named]).tolist()  # one copy back
        bad = [n for (n, _), ok in zip(named, finite) if not ok]
        if bad:  # a finite loss with an infinite gradient: never checkpoint these parameters
            raise FloatingPointError(f"the Adam step made parameters {', '.join(bad)} non-finite (lower meta_lr)")
    wall = time.perf_counter() - t0
    metrics.update(
        env_steps=env_steps, env_steps_per_s=env_steps / max(sample_s, 1e-9), sample_s=sample_s, iteration_s=wall
    )
    return metrics


def validation_returns(cfg: MAMLRLConfig, policy: GaussianMLPPolicy, sampler: Sampler) -> dict[str, float]:
    """The periodic evaluation: mean return after 0..max(inner_steps, 1) steps on ``eval_tasks`` validation tasks.

    The validation tasks come from their own seeded stream, never the training one. Under torchrun the ranks
    share the tasks out when they divide (and gather the returns, in task order).

    Args:
        cfg: the run's config.
        policy: the policy to evaluate (not changed).
        sampler: the batched sampler.

    Returns:
        ``{"return_step0": ..., "return_step1": ..., ...}``, means over the validation tasks.
    """
    seed = cfg.seed + VALIDATION_SEED_OFFSET
    tasks = sample_tasks(cfg.env, cfg.eval_tasks, np.random.default_rng(seed))
    steps = max(cfg.inner_steps, 1)
    ctx = distributed.context()
    mine = distributed.shard(cfg.eval_tasks) if ctx.enabled and cfg.eval_tasks % ctx.world_size == 0 else None
    returns, _ = adaptation_returns(
        cfg,
        policy,
        params_of(policy),
        sampler,
        tasks,
        cfg.eval_rollouts,
        steps,
        cfg.inner_lr,
        torch.Generator().manual_seed(seed),
        np.random.default_rng(seed),
        shard=mine,
    )
    if mine is not None:
        returns = distributed.all_gather_cat(returns)
    means = returns.mean(0).cpu().tolist()  # one copy back
    return {f"return_step{k}": means[k] for k in range(steps + 1)}


OUT_OF_MEMORY_KNOBS = "meta_batch or rollouts, or hvp_tasks"


def train(
    cfg: MAMLRLConfig,
    run_dir: str | Path,
    *,
    resume: bool = True,
    time_budget_s: float | None = None,
    progress: bool = True,
    argv: list[str] | None = None,
    tensorboard: bool = False,
    device: torch.device | str | None = None,
) -> LoopResult:
    """Meta-train ``cfg`` into ``run_dir`` through :func:`icml17.core.run_loop`: resumable, logged, checkpointed.

    Writes ``config.json``, ``metrics.jsonl`` and ``checkpoints/last.pt``; rerunning resumes exactly (the policy,
    the optimizer and every random stream are checkpointed). Under torchrun the meta-batch is sharded over the
    processes (see the module's docstring).

    Args:
        cfg: the run's config.
        run_dir: the run directory.
        resume: resume from ``run_dir``'s checkpoint when there is one (False sets the old run aside).
        time_budget_s: stop (after a checkpoint) once this many seconds have passed.
        progress: show a progress bar.
        argv: the command line, stored in ``config.json``.
        tensorboard: also write TensorBoard events.
        device: where the policy computes (default: the CPU; under torchrun with NCCL, this process's GPU); the
            environments always step on the CPU.

    Returns:
        The loop's :class:`icml17.core.LoopResult`.

    Raises:
        ConfigError: an invalid config, or a meta-batch the processes cannot share equally.
        CheckpointError: a checkpoint of another config or kind of run in ``run_dir``.
    """
    cfg.validate()
    distributed.check_divisible("meta_batch", cfg.meta_batch)  # before any work
    device = distributed.device() if device is None else torch.device(device)
    policy = build_policy(cfg, device=device)
    sampler = make_sampler(cfg)
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.meta_lr)
    streams = RandomStreams.from_seed(cfg.seed)

    def train_step(step: int) -> dict[str, Any]:
        with explain_out_of_memory(OUT_OF_MEMORY_KNOBS, device):
            return meta_iteration(cfg, policy, sampler, optimizer, streams)

    def eval_fn(step: int) -> dict[str, float]:
        with explain_out_of_memory("eval_rollouts or eval_tasks", device):
            return validation_returns(cfg, policy, sampler)

    return run_loop(
        run_dir,
        cfg.iterations,
        train_step,
        {"policy": policy, "optimizer": optimizer, **streams.checkpoint_state()},
        config=cfg,
        argv=argv,
        eval_fn=eval_fn,
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
        log_every=cfg.log_every,
        resume=resume,
        progress=progress,
        desc=cfg.experiment,
        time_budget_s=time_budget_s,
        tensorboard=tensorboard,
    )
