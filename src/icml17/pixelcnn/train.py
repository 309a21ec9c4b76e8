"""Training (through ``icml17.core.loop.run_loop``): Adam with a linear learning-rate decay, gradient-norm
clipping, periodic exact likelihood on a test subset. Data protocol: ``data.py``; evaluation: ``evaluate.py``.

Devices: the model trains on ``device`` (default the CPU). Batches are drawn and quantized on the CPU with the
run's generator (the same images on every device, the CPU run's numbers unchanged) and moved once per step.
``precision`` bf16 / fp16 runs the training forward under autocast (fp16 with a gradient scaler, whose scale is
not checkpointed: it recalibrates within a few steps of a resume); the periodic likelihood is always fp32.
"""

from __future__ import annotations

from pathlib import Path

import torch

from icml17.core import distributed
from icml17.core.device import autocast, check_precision, explain_out_of_memory, grad_scaler
from icml17.core.loop import GeneratorState, LoopResult, run_loop
from icml17.core.stats import bits_per_dim
from icml17.pixelcnn.data import load_split, make_context, quantize, raw_levels, test_images, to_model_device
from icml17.pixelcnn.evaluate import likelihood
from icml17.pixelcnn.presets import PixelCNNConfig, build_pixelcnn_model


class _LogProb(torch.nn.Module):
    """``forward`` = the model's exact log-likelihood per image, so DistributedDataParallel can wrap it."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, context: object = None) -> torch.Tensor:
        return self.model.log_prob(x, context).total


def adam_linear_decay(
    model: torch.nn.Module, lr: float, lr_final: float, iterations: int
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """The optimizer of the image and video models: Adam, its rate decayed linearly to ``lr_final``.

    Args:
        model: the model whose parameters are trained.
        lr: the first step's learning rate.
        lr_final: the rate reached at step ``iterations`` and kept after it.
        iterations: steps of the decay.

    Returns:
        ``(optimizer, scheduler)``; step the scheduler once per training step.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    decay = lambda step: 1.0 - (1.0 - lr_final / lr) * min(step, iterations) / iterations
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, decay)


def train(
    cfg: PixelCNNConfig,
    run_dir: str | Path,
    data_dir: str | Path | None = None,
    resume: bool = True,
    time_budget_s: float | None = None,
    progress: bool = True,
    argv: list[str] | None = None,
    tensorboard: bool = False,
    device: torch.device | str | None = None,
    precision: str = "fp32",
) -> LoopResult:
    """Train ``cfg`` into ``run_dir`` (resumable) on ``device`` (default the CPU) in ``precision`` (fp32, bf16 or
    fp16 autocast); returns the loop result. Writes ``config.json``.

    Under torchrun the model is wrapped in DistributedDataParallel and each step's global batch (indices and
    binarization noise drawn from the shared seeded stream, as one process would) is split over the ranks, so
    the averaged gradient is the single-process gradient of the same batch."""
    device = torch.device("cpu") if device is None else torch.device(device)
    check_precision(precision, device)
    distributed.check_divisible("batch_size", cfg.batch_size)
    run_dir = Path(run_dir)
    torch.manual_seed(cfg.seed)
    train_x, train_y = load_split(cfg, data_dir, "train")
    if cfg.train_images:
        train_x, train_y = train_x[: cfg.train_images], train_y[: cfg.train_images]
    # periodic scores on the held-out validation images when there are some, else on the first test images
    held_x, held_y = load_split(cfg, data_dir, "val" if cfg.val_images else "test")
    val_x, val_y = test_images(cfg, held_x[: cfg.eval_images]), held_y[: cfg.eval_images]
    model = build_pixelcnn_model(cfg).to(device)
    opt, sched = adam_linear_decay(model, cfg.lr, cfg.lr_final, cfg.iterations)
    gen = torch.Generator().manual_seed(cfg.seed)  # data: indices and binarization, on the CPU on every device
    scaler = grad_scaler(device, precision)
    net = _LogProb(model)
    if distributed.context().enabled:
        net = torch.nn.parallel.DistributedDataParallel(net)

    def train_step(step: int) -> dict[str, float]:
        model.train()
        with explain_out_of_memory("batch_size (the images drawn at each step)", "cpu", param="batch_size"):
            idx = torch.randint(len(train_x), (cfg.batch_size,), generator=gen)
            raw, y = train_x[idx], train_y[idx]
            x = quantize(cfg, raw, gen)
        mine = distributed.shard(cfg.batch_size)  # this rank's share of the global batch
        x, y = x[mine], y[mine]
        x, context = to_model_device((x, make_context(cfg, y, raw_levels(x, cfg))), device)
        with explain_out_of_memory("batch_size or hidden", device, param=("batch_size", "hidden")):
            with autocast(device, precision):
                total = net(x, context)
            loss = bits_per_dim(-total.float().mean(), model.dims)  # of the batch; differentiable
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)  # clip the true gradients (a no-op without fp16's scaler)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)  # fp16: skipped when the scaled gradients overflowed
            scaler.update()
        sched.step()
        if scaler.is_enabled():  # fp16: an overflowed step is skipped by the scaler, not a divergence; norm 0
            grad_norm = torch.nan_to_num(grad_norm, nan=0.0, posinf=0.0, neginf=0.0)
        bpd, norm = torch.stack([loss.detach(), grad_norm.to(loss.dtype)]).cpu().tolist()  # one copy to the host
        metrics = {"bits_per_dim": bpd, "grad_norm": norm, "lr": sched.get_last_lr()[0]}
        if scaler.is_enabled():
            metrics["loss_scale"] = scaler.get_scale()
        return metrics

    def eval_fn(step: int) -> dict[str, float]:
        with explain_out_of_memory("hidden (the likelihood scores 100 images per batch)", device):
            ev = likelihood(model, cfg, val_x, val_y)
        return {"bits_per_dim": ev["bits_per_dim"], "nats": ev["nats"]}

    state = {"model": model, "optimizer": opt, "scheduler": sched, "generator": GeneratorState(gen)}
    return run_loop(
        run_dir,
        cfg.iterations,
        train_step,
        state,
        config=cfg,
        argv=argv,
        eval_fn=eval_fn,
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
        resume=resume,
        progress=progress,
        desc=f"pixelcnn {cfg.experiment}",
        time_budget_s=time_budget_s,
        tensorboard=tensorboard,
    )
