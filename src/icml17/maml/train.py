"""Meta-training (Finn et al. 2017, Algorithm 2) through the shared training loop ``icml17.core.run_loop``.

Each step: sample a meta-batch of tasks -> accumulate the meta-gradient (``MAML.meta_backward``) -> clip
entries (MiniImagenet: [-10, 10], as the reference) -> Adam step. Periodic evaluation on validation tasks
(fixed seed, so the curve compares like with like) logs query accuracy/MSE after the training and test
number of inner steps. Checkpoints hold the engine (model and learned learning rates), the optimizer and the
task generator; a killed run resumes exactly.

Devices: ``train(..., device=...)`` builds the model on the CPU (the same initialisation everywhere) and moves
it there; tasks are drawn from CPU generators, so a run sees the same tasks on every device, and each step's
meta-batch moves to the device once (pinned, asynchronous on CUDA). ``precision`` bf16/fp16 trains first-order
MAML under autocast (fp16 with a gradient scaler, whose scale restarts on resume); evaluation is always fp32.
A device out of memory stops with one line naming :data:`MEMORY_KNOBS`.

``iterations`` is where a run stops, not what it is, and ``vectorize`` / ``chunk_size`` only say how tasks are
batched (the same meta-gradient up to rounding): ``MAMLConfig.RESUME_FREE`` lets a resume change them, so a run
can be extended with a larger ``--iterations`` or resumed with another chunking.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from icml17.core import device as devices
from icml17.core import distributed
from icml17.core.config import ConfigError
from icml17.core.loop import GeneratorState, LoopResult, run_loop
from icml17.maml.engine import MAML, TaskMetrics, check_output_size, check_training_precision
from icml17.maml.losses import make_losses
from icml17.maml.models import build_maml_model, is_norm_parameter
from icml17.maml.presets import MAMLConfig
from icml17.maml.tasks import TaskSource, make_task_source

EVAL_SEED_OFFSET = 1_000_003  # validation tasks come from their own stream, never the training one
MEMORY_KNOBS = "chunk_size (tasks meta-differentiated at once, 0 = all) or meta_batch"


def adapt_names(cfg: MAMLConfig, model: torch.nn.Module) -> list[str]:
    """Parameters adapted in the inner loop: ``cfg.adapt`` prefixes, or all but normalisation parameters."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if cfg.adapt:
        chosen = [n for n in names if any(n.startswith(prefix) for prefix in cfg.adapt)]
        if not chosen:
            raise ConfigError(f"adapt={list(cfg.adapt)} matches no parameter; the model has {names}")
        return chosen
    return [n for n in names if not is_norm_parameter(n, model)]


def build_engine(cfg: MAMLConfig, input_shape: tuple[int, ...], device: torch.device | str | None = None) -> MAML:
    """Model + engine for ``cfg`` (model initialised from ``cfg.seed`` on the CPU, then moved to ``device``)."""
    torch.manual_seed(cfg.seed)
    channels = input_shape[0] if len(input_shape) == 3 else 1
    model = build_maml_model(cfg.model, ways=cfg.ways, in_channels=channels, image_size=cfg.image_size)
    loss_fn, score_fn, _ = make_losses(cfg.task, cfg.shots, cfg.loss_scale)
    engine = MAML(
        model,
        loss_fn=loss_fn,
        score_fn=score_fn,
        inner_steps=cfg.inner_steps,
        inner_lr=cfg.inner_lr,
        lr_mode=cfg.inner_lr_mode,
        first_order=cfg.first_order,
        adapt_names=adapt_names(cfg, model),
        bn_policy=cfg.bn_policy,
        vectorize=cfg.vectorize,
        chunk_size=cfg.chunk_size,
    )
    return engine if device is None else engine.to(device)


def summarize(metrics: TaskMetrics, score_name: str, prefix: str = "") -> dict[str, float]:
    """Mean loss and score, read back from the device in one copy."""
    loss, score = torch.stack([metrics.loss.mean(), metrics.score.mean().to(metrics.loss.dtype)]).cpu().tolist()
    return {f"{prefix}loss": loss, f"{prefix}{score_name}": score}


def iter_tasks(
    source: TaskSource,
    split: str,
    tasks: int,
    generator: torch.Generator,
    *,
    queries: int | None = None,
    chunk: int = 50,
):
    """The ``tasks`` evaluation tasks of a split, in TaskBatches of at most ``chunk`` (the same tasks for the
    same generator state, whoever asks: MAML evaluation and the baselines see identical tasks)."""
    for start in range(0, tasks, chunk):
        yield source.eval(split, min(chunk, tasks - start), generator, queries)


def evaluate_tasks(
    engine: MAML,
    source: TaskSource,
    split: str,
    tasks: int,
    steps: int,
    generator: torch.Generator,
    *,
    queries: int | None = None,
    chunk: int = 50,
    done: Callable[[int], object] | None = None,
) -> TaskMetrics:
    """Query loss/score after 0..steps inner steps on ``tasks`` fresh tasks: each (tasks, steps + 1), on the
    engine's device (tasks are drawn on the CPU with ``generator`` and moved). ``done(n)`` is called after each
    chunk of ``n`` tasks (a progress bar's ``update``).

    Under torchrun every rank draws the same tasks and scores its share of each chunk; the scores are gathered
    back in task order, so the result is the single-process one."""
    ctx = distributed.context()
    losses, scores = [], []
    for batch in iter_tasks(source, split, tasks, generator, queries=queries, chunk=chunk):
        if ctx.enabled and batch.num_tasks % ctx.world_size == 0:
            m = engine.evaluate(batch[distributed.shard(batch.num_tasks)], steps)
            m = TaskMetrics(distributed.all_gather_cat(m.loss), distributed.all_gather_cat(m.score))
        else:
            m = engine.evaluate(batch, steps)
        losses.append(m.loss)
        scores.append(m.score)
        if done is not None:
            done(batch.num_tasks)
    return TaskMetrics(torch.cat(losses), torch.cat(scores))


def train(
    cfg: MAMLConfig,
    run_dir: str | Path,
    data_dir: str | Path | None = None,
    *,
    resume: bool = True,
    time_budget_s: float | None = None,
    progress: bool = True,
    argv: list[str] | None = None,
    tensorboard: bool = False,
    device: torch.device | str | None = None,
    precision: str = "fp32",
) -> LoopResult:
    """Meta-train ``cfg`` into ``run_dir`` (config.json, metrics.jsonl, checkpoints/last.pt) on ``device``
    (default: the CPU; under torchrun with NCCL, this process's GPU) in ``precision`` (fp32, or bf16/fp16 autocast
    for first-order MAML).

    Under torchrun the meta-batch's tasks are sharded over the processes: every rank draws the same global
    meta-batch from the seeded task stream, meta-differentiates its share, and the meta-gradients are averaged
    (all-reduce), so the update is the single-process one on the same tasks."""
    device = distributed.device() if device is None else torch.device(device)
    check_training_precision(precision, device, cfg.first_order)  # before any work
    cfg.validate()
    distributed.check_divisible("meta_batch", cfg.meta_batch)
    run_dir = Path(run_dir)
    source = make_task_source(cfg, data_dir)  # raises ConfigError if the episodes do not fit the data
    engine = build_engine(cfg, source.input_shape, device)
    probe = source.train(1, torch.Generator().manual_seed(0))
    check_output_size(
        engine.model,
        probe.support_x[0],
        1 if cfg.task == "sinusoid" else cfg.ways,
        "outputs" if cfg.task == "sinusoid" else "ways",
    )
    optimizer = torch.optim.Adam(engine.parameters(), lr=cfg.meta_lr)
    scaler = devices.grad_scaler(device, precision)
    scaler = scaler if scaler.is_enabled() else None
    task_gen = torch.Generator().manual_seed(cfg.seed)
    _, _, score_name = make_losses(cfg.task, cfg.shots, cfg.loss_scale)

    def train_step(step: int) -> dict[str, float]:
        with devices.explain_out_of_memory("meta_batch (the tasks drawn at each step)", "cpu", param="meta_batch"):
            batch = source.train(cfg.meta_batch, task_gen)  # drawn on the CPU: the same tasks on every device
        local = engine.place(batch[distributed.shard(batch.num_tasks)])  # one (pinned, async) copy per step
        optimizer.zero_grad(set_to_none=True)
        with devices.explain_out_of_memory(MEMORY_KNOBS, device, param=("chunk_size", "meta_batch")):
            metrics = engine.meta_backward(local, precision=precision, scaler=scaler)
        distributed.average_gradients(engine.parameters())
        if scaler is not None:
            scaler.unscale_(optimizer)  # clip the true gradients
        if cfg.clip_value > 0:
            torch.nn.utils.clip_grad_value_(engine.parameters(), cfg.clip_value)
        if scaler is not None:
            scaler.step(optimizer)  # skipped when the scaled gradients overflowed
            scaler.update()
        else:
            optimizer.step()
        return summarize(metrics, score_name)

    def eval_fn(step: int) -> dict[str, float]:
        g = torch.Generator().manual_seed(cfg.seed + EVAL_SEED_OFFSET)
        with devices.explain_out_of_memory(MEMORY_KNOBS, device):
            m = evaluate_tasks(engine, source, "val", cfg.eval_tasks, cfg.eval_inner_steps, g)
        keys = sorted({0, cfg.inner_steps, cfg.eval_inner_steps})
        means = torch.stack([m.score[:, k].mean() for k in keys]).cpu().tolist()  # one copy back
        return {f"{score_name}_step{k}": v for k, v in zip(keys, means)}

    return run_loop(
        run_dir,
        cfg.iterations,
        train_step,
        {"engine": engine, "optimizer": optimizer, "tasks": GeneratorState(task_gen)},
        config=cfg,
        argv=argv,
        eval_fn=eval_fn,
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
        log_every=cfg.log_every,
        resume=resume,
        progress=progress,
        desc=cfg.preset,
        time_budget_s=time_budget_s,
        tensorboard=tensorboard,
    )
